"""Every message leads somewhere: for each kind of message (workflow notices, each reminder, the digest,
extension requests and decisions, and the announcements around the signature) its recipient opens the
inbox in a real browser, clicks the notice's “查看” and lands on the page the message is about; the
link in the e-mail, taken off BASE_URL and opened on the live server, lands on the same page."""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fazhi_flow.models import Notification
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.reminders.jobs import sweep
from fazhi_flow.services import compile as svc
from fazhi_flow.services.assignments import UnitChoice, set_section_assignments
from fazhi_flow.services.contributions import (approve_contribution, reopen_contribution, return_contribution,
                                               submit_contribution)
from fazhi_flow.services.cycles import compile_cycle, open_cycle, reopen_collection
from fazhi_flow.services.reminders import decide_extension, request_extension, send_manual_reminder
from fazhi_flow.timeutil import local_today

pytestmark = pytest.mark.browser

SWEEP_AT = datetime(2025, 3, 12, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Wednesday, no holiday near


@dataclass
class Case:
    """One message: who gets it, how its notice and e-mail are recognised, where they must lead."""

    user: object
    title: str | None  # a part of the in-app notice's title (None: no in-app notice of this kind)
    subject: str | None  # a part of the e-mail's subject (None: no e-mail of this kind)
    path: str  # path and query of the page to land on
    heading: str  # a part of that page's <h1>


def _cycle(factory, title, **kw):
    cycle = factory.cycle(**kw)
    cycle.title = title
    return cycle


def _unit_with_liaison(factory, name, code, head=False):
    unit = factory.unit(name, code=code)
    liaison = factory.user("liaison", unit=unit, name=f"{name}联络员")
    unit_head = factory.user("unit_head", unit=unit, name=f"{name}负责人") if head else None
    return unit, liaison, unit_head


def _material(factory, cycle, section, unit, due=None, body="全年开展执法培训4期，参训320人次。"):
    assignment = factory.assignment(section, unit, due=due)
    return factory.contribution(assignment, body=body)


def _back_to(db, contribution, when: datetime):
    """Date a submission back (as if made then), so the waiting reminders fall due at SWEEP_AT."""
    contribution.submitted_at = when
    db.session.flush()


def _people(factory):
    office = factory.unit("区委依法治区办", code="yfzqb", kind="party")
    units = {key: _unit_with_liaison(factory, name, key, head=key in ("czj", "wjj"))
             for key, name in (("sfj", "区司法局"), ("scj", "区市场监管局"), ("czj", "区财政局"),
                               ("jyj", "区教育局"), ("wjj", "区卫生健康局"), ("gxj", "区工业和信息化局"),
                               ("fgj", "区发展和改革局"))}
    return SimpleNamespace(
        admin=factory.user("admin", unit=office, name="管理员"),
        leader=factory.user("leader", unit=office, name="签发领导"),
        reviewer=factory.user("reviewer", unit=office, name="审核人"), **units)


def _signature(factory, db, w) -> list[Case]:
    """A report compiled, returned, signed, published, then corrected (returned once, then signed)."""
    admin, leader = w.admin, w.leader
    signed = _cycle(factory, "2023年法治政府建设年度报告", year=2023, state="collecting", region="示例区")
    section = factory.section(signed, "推进严格规范公正文明执法", reviewers=[w.reviewer])
    material = _material(factory, signed, section, w.fgj[0])
    db.session.commit()
    submit_contribution(material, w.fgj[1])
    approve_contribution(material, w.reviewer)
    compile_cycle(signed, admin)
    svc.request_signoff(signed, admin, comment="执法数据已与各单位核对，请审阅。")
    svc.return_report(signed, leader, "第二部分请补充案卷评查情况。")
    svc.request_signoff(signed, admin, comment="已补充。")
    svc.sign_report(signed, leader, svc.latest_version(signed).number)
    publication = svc.publish_report(signed, admin)
    db.session.commit()
    view = svc.section_views(signed)[0]
    svc.save_section_text(signed, view.section, admin, view.text.replace("320人次", "350人次"),
                          view.draft.version if view.draft else 0)
    note = "参训人次由320更正为350（统计笔误）。"
    svc.request_correction(signed, admin, note, publication.version, svc.latest_version(signed).number)
    svc.return_report(signed, leader, "请写明更正的段落。")
    svc.request_correction(signed, admin, note, publication.version, svc.latest_version(signed).number)
    svc.sign_report(signed, leader, svc.latest_version(signed).number)
    db.session.commit()
    edit, signoff, report = f"/compile/{signed.id}", f"/compile/{signed.id}/signoff", f"/reports/{publication.id}"
    return [
        Case(leader, "【待签发】", "【待签发】", signoff, f"签发：{signed.title}"),
        Case(admin, "【签发退回】", "【签发退回】", edit, signed.title),
        Case(admin, "【已签发】", "【已签发】", edit, signed.title),
        Case(w.fgj[1], "【报告已发布】", "【报告已发布】", report, signed.title),
        Case(w.reviewer, "【报告已发布】", "【报告已发布】", report, signed.title),
        Case(leader, "【待签发更正】", "【待签发更正】", signoff, f"签发：{signed.title}"),
        Case(admin, "【更正退回】", "【更正退回】", edit, signed.title),
        Case(admin, "【更正已发布】", "【更正已发布】", signoff, f"签发：{signed.title}"),
    ]


def _opening(factory, db, w) -> list[Case]:
    """征集 opened through the service, then one more unit given the section while collecting."""
    opened = _cycle(factory, "2025年度依法行政工作报告", year=2025, region="示例区")
    opened.due = local_today() + timedelta(days=30)
    section = factory.section(opened, "依法行政工作情况")
    _material(factory, opened, section, w.gxj[0], body="")
    db.session.commit()
    open_cycle(opened, w.admin)
    db.session.commit()
    set_section_assignments(section, w.admin, {w.gxj[0].id: UnitChoice("lead"), w.fgj[0].id: UnitChoice("support")},
                            section_due=section.due)
    db.session.commit()
    compile_cycle(opened, w.admin, force_reason="先行汇总")
    reopen_collection(opened, w.admin, comment="请补充全年数据。")
    db.session.commit()
    return [Case(w.gxj[1], "开始征集材料", "【材料征集】", "/tasks/", "我的任务"),
            Case(w.fgj[1], "新的填报任务", None, "/tasks/", "我的任务"),
            Case(w.gxj[1], "【重新征集】", "【重新征集】", "/tasks/", "我的任务")]


def _stand_in(db, w, c_headless) -> list[Case]:
    """Submitted by a unit without a unit head under unit-head review: the admin may decide for it."""
    submit_contribution(c_headless, w.scj[1])
    _back_to(db, c_headless, datetime(2025, 3, 6, 2, 0))
    db.session.commit()
    page = f"/admin/contributions/{c_headless.id}/unit-decision"
    return [Case(w.admin, "【待单位审核】区市场监管局", "【待单位审核】区市场监管局", page, "代单位负责人处理"),
            Case(w.admin, "【待单位审核提醒】区市场监管局", "【待单位审核提醒】区市场监管局", page, "代单位负责人处理")]


def _workflow(db, w, c_waiting, c_unit, c_flow) -> list[Case]:
    """Submitted, sent to the unit head, returned, approved, reopened: each tells the next person."""
    submit_contribution(c_waiting, w.jyj[1])
    submit_contribution(c_unit, w.wjj[1])
    submit_contribution(c_flow, w.gxj[1])
    return_contribution(c_flow, w.reviewer, comment="请补充执法公示数据。")
    submit_contribution(c_flow, w.gxj[1])
    approve_contribution(c_flow, w.reviewer)
    reopen_contribution(c_flow, w.admin, comment="数据口径有变，请按新口径修改。")
    _back_to(db, c_waiting, datetime(2025, 3, 6, 2, 0))
    _back_to(db, c_unit, datetime(2025, 3, 6, 2, 0))
    db.session.commit()
    task = f"/tasks/{c_flow.id}"
    return [
        Case(w.reviewer, "有新材料待审核：区教育局", "【待审核】区教育局", f"/review/{c_waiting.id}", "严格规范执法"),
        Case(w.wjj[2], "本单位有材料待您同意报送", "【待单位审核】区卫生健康局", f"/tasks/{c_unit.id}/unit-review",
             "普法宣传教育"),
        Case(w.gxj[1], "材料被退回修改", "【退回修改】", task, "严格规范执法"),
        Case(w.gxj[1], "材料已通过审核", "【已通过】", task, "严格规范执法"),
        Case(w.gxj[1], "材料已被重新打开", "【重新打开】", task, "严格规范执法"),
    ]


def _extensions(db, w, c_before, c_today) -> list[Case]:
    asked = local_today() + timedelta(days=20)
    granted = request_extension(c_before.assignment, w.sfj[1], asked.isoformat(), "数据需年底统计。")
    refused = request_extension(c_today.assignment, w.scj[1], asked.isoformat(), "负责人出差。")
    db.session.commit()
    decide_extension(granted, w.admin, grant=True)
    decide_extension(refused, w.admin, grant=False, comment="请按时报送。")
    db.session.commit()
    return [
        Case(w.admin, "【延期申请】区司法局", "【延期申请】区司法局", "/reminders/extensions", "延期申请审批"),
        Case(w.sfj[1], "【延期已同意】", "【延期已同意】", "/reminders/my-extensions", "本单位延期申请"),
        Case(w.scj[1], "【延期未同意】", "【延期未同意】", "/reminders/my-extensions", "本单位延期申请"),
    ]


def build(factory, db):
    """Every kind of message, each to its recipients; the cases to open, and {cycle id: title} of the
    reports whose digests are among them."""
    w = _people(factory)
    cases = _signature(factory, db, w) + _opening(factory, db, w)

    # The reminders' report: one unit per stage of the policy on SWEEP_AT.
    main = _cycle(factory, "2024年法治政府建设年度报告", year=2024, state="collecting", region="示例区")
    main.opened_at = datetime(2025, 2, 3, 1, 0)
    section = factory.section(main, "严格规范执法", reviewers=[w.reviewer])
    day = SWEEP_AT.date()
    c_before = _material(factory, main, section, w.sfj[0], due=day + timedelta(days=5))
    c_today = _material(factory, main, section, w.scj[0], due=day)
    c_overdue = _material(factory, main, section, w.czj[0], due=day - timedelta(days=5))
    c_waiting = _material(factory, main, section, w.jyj[0], due=day + timedelta(days=20))
    c_flow = _material(factory, main, section, w.gxj[0], due=day + timedelta(days=20))
    # A neighbouring county's report with unit-head review, so that material waits for the unit head.
    heads = _cycle(factory, "2024年度法治政府建设工作情况报告", year=2024, state="collecting", region="示例县",
                   unit_head_review=True)
    heads.opened_at = main.opened_at
    heads_section = factory.section(heads, "普法宣传教育", reviewers=[w.reviewer])
    c_unit = _material(factory, heads, heads_section, w.wjj[0], due=day + timedelta(days=20))
    c_headless = _material(factory, heads, heads_section, w.scj[0], due=day + timedelta(days=20))
    db.session.commit()
    cases += _workflow(db, w, c_waiting, c_unit, c_flow)
    cases += _stand_in(db, w, c_headless)

    result = sweep(now=SWEEP_AT)
    assert {q.kind for q in result.queued} >= {"before_due", "due_today", "overdue", "escalation", "backlog",
                                                "digest"}, result.queued
    send_manual_reminder(main, w.admin, unit_ids=[w.sfj[0].id], note="请本周内报送。",
                         now=SWEEP_AT + timedelta(hours=1))
    cases += _extensions(db, w, c_before, c_today)

    task = "/tasks/{}".format
    cases += [
        Case(w.sfj[1], "【催报提醒】", "【催报提醒】", task(c_before.id), "严格规范执法"),
        Case(w.scj[1], "材料今天截止", "材料今天截止", task(c_today.id), "严格规范执法"),
        Case(w.czj[1], "【逾期催报】", "【逾期催报】", task(c_overdue.id), "严格规范执法"),
        Case(w.czj[2], "【逾期升级】", "【逾期升级】", task(c_overdue.id), "严格规范执法"),
        Case(w.admin, "【逾期升级】", "【逾期升级】", task(c_overdue.id), "严格规范执法"),
        Case(w.reviewer, "【待审核提醒】", "【待审核提醒】", f"/review/{c_waiting.id}", "严格规范执法"),
        Case(w.wjj[2], "【待单位审核提醒】", "【待单位审核提醒】", f"/tasks/{c_unit.id}/unit-review", "普法宣传教育"),
        Case(w.sfj[1], "【催报】请尽快报送", "【催报】请尽快报送", task(c_before.id), "严格规范执法"),
        # The digest of each collecting report opens that report's progress, not the first one listed.
        Case(w.admin, f"【每日进度】{main.title}", f"【每日进度】{main.title}", f"/dashboard/?cycle={main.id}",
             "填报进度"),
        Case(w.admin, f"【每日进度】{heads.title}", f"【每日进度】{heads.title}", f"/dashboard/?cycle={heads.id}",
             "填报进度"),
    ]
    return cases, {c.id: c.title for c in (main, heads)}


def _where(page) -> str:
    parts = urlsplit(page.url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _assert_landed(page, case: Case, how: str, cycles: dict):
    page.wait_for_load_state()
    assert _where(page) == case.path, f"{how} “{case.title or case.subject}” led to {page.url}"
    heading = page.locator("h1").first.inner_text()
    assert case.heading in heading, f"{how} “{case.title or case.subject}”: <h1> is “{heading}”"
    if case.path.startswith("/dashboard/"):
        # The progress shown is of the digest's own report, not the first collecting one.
        wanted = case.path.rsplit("=", 1)[1]
        assert page.locator("#f-cycle").input_value() == wanted
        assert cycles[int(wanted)] in page.locator(".page-head .lead").inner_text()


def _email_path(db, case: Case, base_url: str) -> str:
    """The site-relative part of the link in the latest e-mail of ``case``'s kind to its recipient."""
    mails = [m for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.user_id == case.user.id, OutboxMessage.channel == "email")
        .order_by(OutboxMessage.id.desc())) if case.subject in m.subject]
    assert mails, f"no e-mail “{case.subject}” to {case.user.name}"
    links = re.findall(re.escape(base_url.rstrip("/")) + r"(/\S*)", mails[0].body)
    assert len(links) == 1, mails[0].body
    return links[0]


def test_every_message_leads_to_its_page(app, factory, db, person, live_server):
    cases, cycles = build(factory, db)
    base_url = app.config["BASE_URL"]
    # Every in-app notice stores a site-relative link, whatever wrote it.
    links = db.session.scalars(select(Notification.link)).all()
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links if link), links
    # Read everything the browser part needs now: the test's session must hold no SQLite lock while
    # the server answers.
    mail_paths = [_email_path(db, case, base_url) if case.subject else None for case in cases]
    people = {}
    for case in cases:
        if case.user.id not in people:
            people[case.user.id] = person(case.user)
    cases = [(people[case.user.id], case, path) for case, path in zip(cases, mail_paths)]
    db.session.commit()

    for who in people.values():
        who.login()
    for who, case, mail_path in cases:
        page = who.page
        if case.title:
            page.goto("/inbox/")
            item = page.locator(".inbox-item").filter(has_text=case.title).first
            assert item.count() == 1, f"{who.username} has no notice “{case.title}”"
            item.locator("button:has-text('查看')").click()
            _assert_landed(page, case, "notice", cycles)
        if mail_path:
            page.goto(mail_path)
            _assert_landed(page, case, "e-mail", cycles)
