"""In-app notifications caused by workflow events (the inbox).

Connected to ``transition_fired``; receivers only add rows to the session, so a notification is
committed with the transition that caused it, or not at all. Nobody is told about their own action,
and users who switched the in-app channel off (通知设置) get nothing here.
"""
from __future__ import annotations

from flask import has_request_context, url_for
from sqlalchemy import select

from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle, Section, User, UserRole
from ..workflow.machine import transition_fired
from ..notify.inapp import notify


def _link(endpoint: str, fallback: str, **values) -> str:
    if has_request_context():
        try:
            return url_for(endpoint, **values)
        except Exception:  # noqa: BLE001 - the area may not be registered (e.g. CLI-only app)
            pass
    return fallback


def _unit_users(unit_id: int, role: str) -> list[User]:
    """A unit's active people with ``role`` (a unit and its people lie in one region)."""
    return list(db.session.scalars(
        select(User).join(UserRole).where(User.unit_id == unit_id, User.active.is_(True), UserRole.role == role)
        .order_by(User.id)
    ))


def section_reviewers(contribution: Contribution) -> list[User]:
    """The reviewers who may act on ``contribution``: those named for the section, else every reviewer
    of the cycle's region; never one of another region (nor of the contribution's own unit)."""
    from ..policy import region_of

    region_id = region_of(contribution)
    named = [u for u in contribution.section.effective_reviewers() if u.active]
    if not named:
        named = list(db.session.scalars(
            select(User).join(UserRole).where(UserRole.role == "reviewer", User.active.is_(True),
                                              User.region_id == region_id)
            .order_by(User.id)
        ))
    return [u for u in named if u.unit_id != contribution.unit_id and u.region_id == region_id]


def _where(contribution: Contribution) -> str:
    return f"{contribution.unit.name} · {contribution.section.path_label}"


def _others(users, actor) -> list[User]:
    """``users`` without the person who acted."""
    actor_id = getattr(actor, "id", None)
    return [u for u in users if u.id != actor_id]


def _on_contribution(c: Contribution, event: str, to_state: str, actor, comment: str | None, context):
    where = _where(c)
    task_link = _link("tasks.edit", f"/tasks/{c.id}", contribution_id=c.id)
    if to_state == "submitted" and event != "approve":  # (a 会签同意 leaves it waiting: no news)
        link = _link("review.show", f"/review/{c.id}", contribution_id=c.id)
        for user in _others(section_reviewers(c), actor):
            notify(user, "to_review", f"有新材料待审核：{c.unit.name}", where, link)
    elif to_state == "unit_review":
        link = _link("tasks.unit_review", f"/tasks/{c.id}/unit-review", contribution_id=c.id)
        for user in _others(_unit_users(c.unit_id, "unit_head"), actor):
            notify(user, "to_unit_review", "本单位有材料待您同意报送", where, link)
    elif to_state == "returned":
        body = where + (f"\n意见：{comment}" if comment else "")
        if context and context.get("paragraph"):
            body += f"（第{context['paragraph']}段）"
        title = "材料已被重新打开，请修改" if event == "reopen" else "材料被退回修改"
        for user in _others(_unit_users(c.unit_id, "liaison"), actor):
            notify(user, "returned", title, body, task_link)
        if event == "return":
            _tell_countersigners(c, actor, body)
    elif to_state == "approved":
        for user in _others(_unit_users(c.unit_id, "liaison"), actor):
            notify(user, "approved", "材料已通过审核", where, task_link)


def _tell_countersigners(c: Contribution, actor, body: str) -> None:
    """会签: the reviewers who approved the returned revision learn that it went back (their approval
    no longer counts; the resubmitted material waits for them again)."""
    from ..policy import countersign_approvals, countersign_required

    if not countersign_required(c):
        return
    link = _link("review.show", f"/review/{c.id}", contribution_id=c.id)
    for approval in countersign_approvals(c):
        if approval.reviewer_id != actor.id:
            notify(approval.reviewer, "returned", "您会签同意的材料已被其他审核人退回修改", body, link)


def _on_cycle(cycle: ReportCycle, event: str, actor):
    if event != "open":
        return
    unit_ids = set(db.session.scalars(
        select(Assignment.unit_id).join(Section).where(Section.cycle_id == cycle.id)
    ))
    link = _link("tasks.index", "/tasks/")
    for unit_id in sorted(unit_ids):
        for user in _others(_unit_users(unit_id, "liaison"), actor):
            notify(user, "cycle", f"{cycle.title}开始征集材料",
                        "请在“我的任务”中查看本单位需要报送的章节和截止日期。", link)


def on_transition(sender, event=None, to_state=None, actor=None, comment=None, context=None, **_):
    if isinstance(sender, Contribution):
        _on_contribution(sender, event, to_state, actor, comment, context)
    elif isinstance(sender, ReportCycle):
        _on_cycle(sender, event, actor)


def connect() -> None:
    """Connect the receiver (idempotent: blinker keeps one connection per receiver)."""
    transition_fired.connect(on_transition)
