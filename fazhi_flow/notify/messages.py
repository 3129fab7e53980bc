"""The Chinese texts of every message: the section, the unit, the due date, the state and a link.

Each builder returns a ``Message``: ``subject`` and ``body`` for e-mail, ``short`` for group robots and
the in-app inbox, ``link`` (absolute, from app.config BASE_URL) for e-mail and robots, and ``path`` (the
same target, site-relative: path and query) for the in-app inbox, which follows only local paths.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from flask import current_app, has_app_context
from werkzeug.routing import BuildError

from ..workdays import DueStatus, due_status

FOOTER = "（本消息由法治政府建设报告编报系统自动发送，请勿直接回复。）"


@dataclass
class Message:
    subject: str
    body: str
    short: str
    link: str  # absolute, for e-mail and robots
    path: str = ""  # site-relative, for the in-app inbox; derived from ``link`` when not given

    def __post_init__(self):
        if not self.path:
            self.path = site_path(self.link)


def absolute(path: str) -> str:
    base = (current_app.config.get("BASE_URL") or "").rstrip("/")
    return f"{base}{path}"


def site_path(link: str | None) -> str | None:
    """The site-relative target (path, query, fragment) of ``link``: BASE_URL taken off an absolute link
    of this site, the scheme and host off any other; a relative link as it is."""
    if not link:
        return link
    base = (current_app.config.get("BASE_URL") or "").rstrip("/") if has_app_context() else ""
    if base and (link == base or link.startswith(base + "/") or link.startswith(base + "?")):
        rest = link[len(base):]
        return rest if rest.startswith("/") else "/" + rest
    parts = urlsplit(link)
    if not parts.scheme and not parts.netloc:
        return link
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def _path(endpoints: list[tuple[str, dict]], fallback: str) -> str:
    """The path of the first endpoint that exists (pages belong to other packages), else ``fallback``."""
    app = current_app._get_current_object()
    adapter = app.url_map.bind("localhost", script_name=app.config.get("APPLICATION_ROOT") or "/")
    for endpoint, values in endpoints:
        if endpoint in app.view_functions:
            try:
                return adapter.build(endpoint, values)
            except BuildError:
                continue
    return fallback


def contribution_link(contribution) -> str:
    cid = contribution.id
    return absolute(_path([("tasks.edit", {"contribution_id": cid}),
                           ("tasks.contribution", {"contribution_id": cid}),
                           ("tasks.view", {"contribution_id": cid})], f"/tasks/{cid}"))


def review_link(contribution) -> str:
    cid = contribution.id
    return absolute(_path([("review.review", {"contribution_id": cid}),
                           ("review.contribution", {"contribution_id": cid}),
                           ("review.show", {"contribution_id": cid})], f"/review/{cid}"))


def unit_review_link(contribution) -> str:
    cid = contribution.id
    return absolute(_path([("tasks.unit_review", {"contribution_id": cid})], f"/tasks/{cid}/unit-review"))


def unit_decision_link(contribution) -> str:
    """The admin's page to decide for a unit that has no active unit head (代单位负责人处理)."""
    cid = contribution.id
    return absolute(_path([("admin.contribution_unit_decision", {"contribution_id": cid})],
                          f"/admin/contributions/{cid}/unit-decision"))


def stand_in_note(unit: str) -> str:
    """Why the admins are told of material waiting for a unit head, and what they may do."""
    return (f"{unit}没有启用的单位负责人账号，这份材料无人能同意报送。您可以代单位负责人同意报送或退回修改"
            "（流转记录和操作记录中会注明“管理员代单位负责人”），或在“用户”中为该单位添加单位负责人。")


def tasks_link() -> str:
    return absolute(_path([("tasks.index", {}), ("tasks.list", {})], "/tasks/"))


def cycle_link(cycle) -> str:
    # The dashboard picks its report from ``?cycle=`` (web/dashboard/routes.py).
    return absolute(_path([("dashboard.index", {"cycle": cycle.id})], f"/dashboard/?cycle={cycle.id}"))


def extension_link() -> str:
    return absolute(_path([("reminders.extensions", {})], "/reminders/extensions"))


def _d(day) -> str:
    return f"{day.year}年{day.month}月{day.day}日" if day else "未设定"


def _facts(contribution, status: DueStatus) -> str:
    a = contribution.assignment
    lines = [
        f"单位：{contribution.unit.name}",
        f"章节：{contribution.section.path_label}（{a.role_label}）",
        f"截止日期：{status.date_label or '未设定'}" + (f"，{status.label}" if status.label else ""),
        f"当前状态：{contribution.state_label}",
    ]
    return "\n".join(lines)


def reminder_message(kind: str, contribution, status: DueStatus, note: str | None = None) -> Message:
    """A reminder to a unit's liaisons: before the due date, on it, overdue, or by hand (催报)."""
    unit, section = contribution.unit.name, contribution.section.path_label
    when = status.label or _d(status.due)
    if kind == "before_due":
        head = f"【催报提醒】“{section}”材料{when}截止"
        ask = "请抓紧撰写并提交审核。"
    elif kind == "due_today" and status.holiday_ahead:
        # Sent on the last working day before a deadline that falls on a holiday: not "today".
        head = f"【催报提醒】“{section}”材料截止日为节假日，今天是截止前最后一个工作日"
        ask = "截止日为节假日，今天是截止前最后一个工作日，请尽快提交审核。"
    elif kind == "due_today":
        head = f"【催报提醒】“{section}”材料今天截止"
        ask = "今天是截止日期，请尽快提交审核。"
    elif kind == "overdue":
        head = f"【逾期催报】“{section}”材料{when}"
        ask = "材料已超过截止日期，请立即提交审核；如确有困难，请在系统中申请延期并说明理由。"
    else:  # manual
        head = f"【催报】请尽快报送“{section}”材料"
        ask = "依法治区办提醒您尽快完成并提交审核。"
    link = contribution_link(contribution)
    parts = [f"{unit}联络员：", "", ask, "", _facts(contribution, status)]
    if note:
        parts += ["", f"附言：{note}"]
    parts += ["", f"填写和提交：{link}", "如需延期，可在上述页面申请延期。", "", FOOTER]
    short = f"{head}\n单位：{unit}\n截止日期：{status.date_label}，{status.label or '—'}\n" \
            f"当前状态：{contribution.state_label}" + (f"\n附言：{note}" if note else "") + f"\n{link}"
    return Message(subject=f"{head}（{unit}）", body="\n".join(parts), short=short, link=link)


def escalation_message(contribution, status: DueStatus) -> Message:
    unit, section = contribution.unit.name, contribution.section.path_label
    link = contribution_link(contribution)
    head = f"【逾期升级】{unit}“{section}”材料{status.label}"
    body = "\n".join([
        "您好：", "",
        f"{unit}承担的材料已逾期且尚未提交，现按催报规则告知单位负责人和依法治区办，请督促办理。", "",
        _facts(contribution, status), "", f"查看：{link}", "", FOOTER,
    ])
    return Message(subject=head, body=body, short=f"{head}\n{link}", link=link)


def backlog_message(contribution, waited: int) -> Message:
    unit, section = contribution.unit.name, contribution.section.path_label
    link = review_link(contribution)
    head = f"【待审核提醒】{unit}“{section}”材料已等待审核{waited}个工作日"
    body = "\n".join([
        "审核人您好：", "",
        f"以下材料提交后已等待{waited}个工作日，请尽快通过或退回修改。", "",
        _facts(contribution, due_status(contribution, done=True)), "", f"审核：{link}", "", FOOTER,
    ])
    return Message(subject=head, body=body, short=f"{head}\n{link}", link=link)


def unit_review_message(contribution, waited: int, stand_in: bool | None = None) -> Message:
    """To the unit heads: material their liaison submitted still waits for their decision. To the
    admins instead (``stand_in``) when the unit has no active unit head; None: as the unit is now (a
    text written again at delivery says what is true then)."""
    unit, section = contribution.unit.name, contribution.section.path_label
    if stand_in is None:
        from ..policy import unit_has_unit_head

        stand_in = not unit_has_unit_head(contribution.unit_id)
    if stand_in:
        link = unit_decision_link(contribution)
        head = f"【待单位审核提醒】{unit}“{section}”材料已等待单位审核{waited}个工作日（该单位没有单位负责人）"
        body = "\n".join([
            "管理员您好：", "",
            f"{unit}联络员提交的以下材料已等待单位审核{waited}个工作日。{stand_in_note(unit)}", "",
            _facts(contribution, due_status(contribution, done=True)), "", f"代单位负责人处理：{link}", "",
            FOOTER,
        ])
        return Message(subject=head, body=body, short=f"{head}\n{link}", link=link)
    link = unit_review_link(contribution)
    head = f"【待单位审核提醒】{unit}“{section}”材料已等待单位审核{waited}个工作日"
    body = "\n".join([
        f"{unit}负责人您好：", "",
        f"本单位联络员提交的以下材料已等待您审核{waited}个工作日，请尽快同意报送或退回修改，"
        "以免影响报送进度。", "",
        _facts(contribution, due_status(contribution, done=True)), "", f"单位审核：{link}", "", FOOTER,
    ])
    return Message(subject=head, body=body, short=f"{head}\n{link}", link=link)


def digest_message(cycle, day, counts: dict, overdue: list, waiting: int, dead: int = 0) -> Message:
    """The daily progress digest for the office's admins; ``dead``: messages that could not be sent
    (failed or expired) since the digest before, with a link to the outbox."""
    from ..workflow.states import CONTRIBUTION_STATE_LABELS

    total = sum(counts.values())
    link = cycle_link(cycle)
    state_line = "，".join(f"{label}{counts.get(state, 0)}份" for state, label in CONTRIBUTION_STATE_LABELS.items())
    done = counts.get("approved", 0)
    rate = f"{done * 100 // total}%" if total else "—"
    head = f"【每日进度】{cycle.title}（{_d(day)}）"
    lines = [f"{cycle.title}材料征集进度（截至{_d(day)}）：", "",
             f"共{total}份材料：{state_line}；通过率{rate}。",
             f"待审核超过期限的材料：{waiting}份。"]
    if overdue:
        lines += ["", f"已逾期未提交（{len(overdue)}份）："]
        lines += [f"  {i}. {u}  {s}  {label}" for i, (u, s, label) in enumerate(overdue[:50], 1)]
        if len(overdue) > 50:
            lines.append(f"  ……另有{len(overdue) - 50}份")
    else:
        lines += ["", "目前没有逾期未提交的材料。"]
    failed = ""
    if dead:
        outbox = absolute(_path([("reminders.outbox", {"status": "dead"})], "/reminders/outbox?status=dead"))
        failed = f"自上次汇总以来本地区有{dead}条消息发送失败或超时未能发出，请查看：{outbox}"
        lines += ["", failed]
    lines += ["", f"查看进度：{link}", "", FOOTER]
    short = f"{head}\n共{total}份，已通过{done}份，逾期未交{len(overdue)}份" + (f"\n{failed}" if failed else "") \
        + f"\n{link}"
    return Message(subject=head, body="\n".join(lines), short=short, link=link)


TRANSITION_HEADS = {
    "return": "【退回修改】",
    "unit_return": "【退回修改】",
    "reopen": "【重新打开】",
    "approve": "【已通过】",
    "submit": "【待审核】",
    "unit_approve": "【待审核】",
}


def transition_message(event: str, contribution, actor, comment: str | None, to_state: str) -> Message:
    unit, section = contribution.unit.name, contribution.section.path_label
    status = due_status(contribution, done=to_state not in ("draft", "returned"))
    if event == "submit" and to_state == "unit_review":
        head = "【待单位审核】"
        link = unit_review_link(contribution)
        what = f"{unit}联络员{actor.name}提交了材料，请单位负责人审核后同意报送或退回修改。"
    elif to_state == "submitted":
        head, link = TRANSITION_HEADS[event], review_link(contribution)
        what = f"{unit}报送的材料已提交，等待您审核。"
    elif event == "approve":
        head, link = TRANSITION_HEADS[event], contribution_link(contribution)
        what = f"您单位报送的材料已由{actor.name}审核通过。"
    else:
        head, link = TRANSITION_HEADS.get(event, "【通知】"), contribution_link(contribution)
        what = f"您单位报送的材料被{actor.name}退回修改，请根据意见修改后重新提交审核。"
    subject = f"{head}{unit}“{section}”"
    parts = ["您好：", "", what, "", _facts(contribution, status)]
    if comment:
        parts += ["", f"意见：{comment}"]
    parts += ["", f"查看：{link}", "", FOOTER]
    return Message(subject=subject, body="\n".join(parts), short=f"{subject}\n{link}", link=link)


def unit_review_stand_in_message(contribution, actor) -> Message:
    """提交 into 待单位审核 of a unit without an active unit head: to the admins, who may decide for it."""
    unit, section = contribution.unit.name, contribution.section.path_label
    link = unit_decision_link(contribution)
    subject = f"【待单位审核】{unit}“{section}”（该单位没有单位负责人）"
    body = "\n".join([
        "管理员您好：", "", f"{unit}联络员{actor.name}提交了材料，等待单位负责人同意报送。{stand_in_note(unit)}", "",
        _facts(contribution, due_status(contribution, done=True)), "", f"代单位负责人处理：{link}", "", FOOTER,
    ])
    return Message(subject=subject, body=body, short=f"{subject}\n{link}", link=link)


def cycle_open_message(cycle, user, assignments) -> Message:
    """征集 has started: the liaison's sections with their due dates."""
    link = tasks_link()
    subject = f"【材料征集】{cycle.title}开始征集材料"
    lines = [f"{user.name}您好：", "", f"{cycle.title}已开始征集材料，请您单位按时报送以下章节：", ""]
    for i, a in enumerate(assignments, 1):
        st = due_status(a.effective_due())
        lines.append(f"  {i}. {a.section.path_label}（{a.role_label}），截止日期：{st.date_label or '未设定'}")
    lines += ["", f"进入我的任务：{link}", "", FOOTER]
    short = f"{subject}\n" + "\n".join(
        f"{a.section.path_label}（{a.role_label}）截止{_d(a.effective_due())}" for a in assignments
    ) + f"\n{link}"
    return Message(subject=subject, body="\n".join(lines), short=short, link=link)


def collection_reopened_message(cycle, assignments, comment: str | None, moved_to: str | None) -> Message:
    """重新征集: to a unit whose material is collected again, its sections still to finish with their
    due dates as they now are; ``moved_to``: the date past due dates were moved to, if they were."""
    link = tasks_link()
    subject = f"【重新征集】{cycle.title}重新开始征集材料"
    lines = ["您好：", "", f"{cycle.title}已回到征集中，请您单位继续完成以下章节的材料：", ""]
    for i, a in enumerate(assignments, 1):
        st = due_status(a.effective_due())
        state = a.contribution.state_label if a.contribution is not None else "未开始"
        lines.append(f"  {i}. {a.section.path_label}（{a.role_label}），当前状态：{state}，"
                     f"截止日期：{st.date_label or '未设定'}")
    if moved_to:
        lines += ["", f"已过的截止日期已顺延至{moved_to}。"]
    if comment:
        lines += ["", f"理由：{comment}"]
    lines += ["", "已通过审核的材料保持不变。", "", f"进入我的任务：{link}", "", FOOTER]
    short = f"{subject}\n" + "\n".join(
        f"{a.section.path_label}（{a.role_label}）截止{_d(a.effective_due())}" for a in assignments
    ) + (f"\n已过的截止日期已顺延至{moved_to}。" if moved_to else "") + f"\n{link}"
    return Message(subject=subject, body="\n".join(lines), short=short, link=link)


def collection_reopened_group_message(cycle, moved_to: str | None) -> Message:
    link = tasks_link()
    subject = f"【重新征集】{cycle.title}重新开始征集材料"
    moved = f"已过的截止日期已顺延至{moved_to}。" if moved_to else ""
    short = f"{subject}。{moved}请尚未完成的单位联络员登录系统查看本单位任务并按时提交。\n{link}"
    return Message(subject=subject, body=short, short=short, link=link)


def cycle_open_group_message(cycle) -> Message:
    link = tasks_link()
    due = f"，总截止日期{_d(cycle.due)}" if cycle.due else ""
    subject = f"【材料征集】{cycle.title}开始征集材料"
    short = f"{subject}{due}。请各单位联络员登录系统查看本单位任务并按时提交。\n{link}"
    return Message(subject=subject, body=short, short=short, link=link)


def extension_requested_message(req) -> Message:
    a = req.assignment
    link = extension_link()
    subject = f"【延期申请】{a.unit.name}申请延期“{a.section.path_label}”"
    body = "\n".join([
        "管理员您好：", "",
        f"{a.unit.name}联络员{req.requested_by.name if req.requested_by else ''}申请延期，请审批。", "",
        f"章节：{a.section.path_label}（{a.role_label}）",
        f"原截止日期：{_d(req.current_due)}", f"申请延至：{_d(req.requested_due)}", f"理由：{req.reason}", "",
        f"审批：{link}", "", FOOTER,
    ])
    return Message(subject=subject, body=body, short=f"{subject}，申请延至{_d(req.requested_due)}\n{link}",
                   link=link)


def extension_decided_message(req) -> Message:
    a = req.assignment
    link = absolute(_path([("reminders.my_extensions", {})], "/reminders/my-extensions"))
    if req.status == "granted":
        subject = f"【延期已同意】“{a.section.path_label}”截止日期调整为{_d(req.granted_due)}"
        what = f"您的延期申请已同意，新的截止日期为{_d(req.granted_due)}。"
    else:
        subject = f"【延期未同意】“{a.section.path_label}”仍按{_d(req.current_due)}截止"
        what = f"您的延期申请未获同意，截止日期仍为{_d(req.current_due)}。"
    parts = [f"{a.unit.name}联络员：", "", what]
    if req.decision_comment:
        parts += [f"意见：{req.decision_comment}"]
    parts += ["", f"查看：{link}", "", FOOTER]
    return Message(subject=subject, body="\n".join(parts), short=f"{subject}\n{link}", link=link)


# ------------------------------------------------------------------ sign-off and publication


def signoff_link(cycle) -> str:
    return absolute(_path([("compile.signoff", {"cycle_id": cycle.id})], f"/compile/{cycle.id}/signoff"))


def compile_link(cycle) -> str:
    return absolute(_path([("compile.edit", {"cycle_id": cycle.id})], f"/compile/{cycle.id}"))


def publication_link(publication) -> str:
    return absolute(_path([("public.show", {"publication_id": publication.id})],
                          f"/reports/{publication.id}"))


def _announcement(subject: str, greeting: str, lines: list[str], link_label: str, link: str) -> Message:
    body = "\n".join([greeting, "", *lines, "", f"{link_label}：{link}", "", FOOTER])
    # ``short`` is the inbox notice's text (these go to no robot): what happened, with the note or
    # reason, so that it is read without opening the page; “查看” opens the link.
    return Message(subject=subject, body=body, short="\n".join(line for line in lines if line), link=link)


def signoff_requested_message(cycle, actor, note: str | None, correcting: bool = False) -> Message:
    """To the leaders: 提请签发 (or 提请签发更正), with the admin's note."""
    if correcting:
        subject = f"【待签发更正】{cycle.title}的更正请您签发"
        what = "管理员{}提请签发已发布报告的更正。签发后更正即作为新版本发布，此前的版本仍公开可查。"
        note_line = f"更正说明：{note}" if note else None
    else:
        subject = f"【待签发】{cycle.title}请您签发"
        what = "管理员{}提请签发合并稿，请阅读全文后签发，或填写意见退回修改。"
        note_line = f"管理员附言：{note}" if note else None
    lines = [what.format(actor.name)] + (["", note_line] if note_line else [])
    return _announcement(subject, "签发领导您好：", lines, "阅读并签发", signoff_link(cycle))


def signoff_returned_message(cycle, actor, reason: str | None, correcting: bool = False) -> Message:
    """To the admins: the leader returned the draft (or the correction), with the reason."""
    if correcting:
        subject = f"【更正退回】{cycle.title}的更正被退回"
        what = f"签发领导{actor.name}退回了更正，已发布的版本保持不变。请根据意见修改后重新提请签发更正。"
    else:
        subject = f"【签发退回】{cycle.title}被退回修改"
        what = f"签发领导{actor.name}退回了合并稿，请根据意见修改后重新提请签发。"
    lines = [what] + (["", f"退回意见：{reason}"] if reason else [])
    return _announcement(subject, "管理员您好：", lines, "修改合并稿", compile_link(cycle))


def signed_message(cycle, actor, comment: str | None, version_number: int | None) -> Message:
    """To the admins: the leader signed (签发); the report waits to be published."""
    draft = f"第{version_number}稿" if version_number else "合并稿"
    subject = f"【已签发】{cycle.title}{draft}已签发，请发布"
    lines = [f"签发领导{actor.name}已签发{cycle.title}{draft}。请在汇总签发页面发布，发布后报告在公开页面上线。"]
    if comment:
        lines += ["", f"签发意见：{comment}"]
    return _announcement(subject, "管理员您好：", lines, "发布", compile_link(cycle))


def correction_published_message(cycle, actor, note: str | None, comment: str | None = None) -> Message:
    """To the admins and the other leaders: a signed correction was published as the next version."""
    subject = f"【更正已发布】{cycle.title}的更正已签发并发布"
    lines = [f"签发领导{actor.name}签发了更正，更正已作为新版本发布，此前的版本仍公开可查。"]
    if note:
        lines += ["", f"更正说明：{note}"]
    if comment:
        lines += [f"签发意见：{comment}"]
    return _announcement(subject, "您好：", lines, "查看", signoff_link(cycle))


def published_message(cycle, publication) -> Message:
    """To everyone who contributed: the report is published on the public pages."""
    subject = f"【报告已发布】{cycle.title}已发布"
    lines = [f"{cycle.title}已正式发布，感谢您参与材料报送和审核。"]
    return _announcement(subject, "您好：", lines, "查看已发布的报告", publication_link(publication))
