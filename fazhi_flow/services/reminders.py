"""Operations on deadlines and reminders: the policy, extension requests (申请延期), 催报 by hand,
channel choices, group robots, and retrying dead outbox messages. They flush; the caller commits."""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from .. import policy as access
from ..database import lock_row
from ..errors import DomainError, NotFound
from ..extensions import db
from ..limits import column_length
from ..models import Assignment, Contribution, ReportCycle, Section, Unit
from ..models.reminder import (
    WEBHOOK_KINDS,
    ExtensionRequest,
    OutboxMessage,
    Reminder,
    ReminderPolicy,
    UserChannelPreference,
    WebhookTarget,
)
from ..notify import messages as M
from ..notify.outbox import admins, liaisons, send_to_users
from ..reminders import dispatch
from ..workdays import due_status
from ..reminders.jobs import as_utc
from ..reminders.policy import REMINDABLE_STATES, DueReminder
from ..reminders.settings import int_field, parse_day_list, parse_send_time, policy_for
from ..timeutil import cn_date_text, local_today, local_zone, utcnow
from .audit import record

MAX_NOTE = 500


def _require_admin(actor) -> None:
    access.require(actor, "admin.manage", None, "只有管理员可以执行该操作。")


# ------------------------------------------------------------------ policy


def update_policy(cycle: ReportCycle, actor, *, enabled: bool, before_due_days: str, on_due_day: bool,
                  overdue_every, overdue_max, escalate_after, backlog_days, backlog_max,
                  daily_digest: bool, send_time: str) -> ReminderPolicy:
    """Save the cycle's reminder policy (all fields validated first; nothing changes on error)."""
    _require_admin(actor)
    if access.region_of(cycle) != actor.region_id:
        raise NotFound("该年度报告不存在。")
    values = {
        "enabled": bool(enabled),
        "before_due_days": parse_day_list(before_due_days),
        "on_due_day": bool(on_due_day),
        "overdue_every": int_field(overdue_every, "逾期后每隔几个工作日催报", 1, 30),
        "overdue_max": int_field(overdue_max, "逾期催报最多次数", 0, 50),
        "escalate_after": int_field(escalate_after, "逾期几个工作日后升级提醒", 0, 60),
        "backlog_days": int_field(backlog_days, "待审核超过几个工作日提醒审核人", 0, 60),
        "backlog_max": int_field(backlog_max, "待审核提醒最多次数", 0, 50),
        "daily_digest": bool(daily_digest),
        "send_time": parse_send_time(send_time),
    }
    policy = policy_for(cycle)
    for key, value in values.items():
        setattr(policy, key, value)
    policy.updated_at, policy.updated_by_id = utcnow(), actor.id
    db.session.add(policy)
    record(actor, "reminder.policy", f"cycle:{cycle.id}", **values)
    db.session.flush()
    return policy


# ------------------------------------------------------------------ extension requests


def can_request_extension(user, assignment: Assignment) -> bool:
    return access.can(user, "assignment.request_extension", assignment)


def pending_extension(assignment: Assignment) -> ExtensionRequest | None:
    return db.session.scalar(select(ExtensionRequest).where(
        ExtensionRequest.assignment_id == assignment.id, ExtensionRequest.status == "pending"))


def _parse_date(raw, label: str) -> date:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw or "").strip())
    except ValueError:
        raise DomainError(f"“{label}”不是有效日期，请按 2025-01-20 的格式填写。") from None


def request_extension(assignment: Assignment, actor, requested_due, reason: str,
                      today: date | None = None) -> ExtensionRequest:
    """A liaison asks for a later due date with a reason (申请延期); the admins are told."""
    access.require(actor, "assignment.ask_extension", assignment, "只有本单位联络员可以申请延期。")
    lock_row(assignment)  # one pending request per assignment, even when two colleagues ask at once
    if assignment.section.cycle.state != "collecting":
        raise DomainError("只有征集中的年度报告可以申请延期。")
    contribution = assignment.contribution
    if contribution is not None and contribution.state not in REMINDABLE_STATES:
        raise DomainError(f"材料当前为“{contribution.state_label}”，已提交的材料无需申请延期。")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("请填写申请延期的理由。")
    if len(reason) > MAX_NOTE:
        raise DomainError(f"理由最多{MAX_NOTE}字。")
    new_due = _parse_date(requested_due, "申请延至")
    current = assignment.effective_due()
    today = today or local_today()
    if new_due <= today:
        raise DomainError("申请延至的日期必须晚于今天。")
    if current is not None and new_due <= current:
        raise DomainError(f"申请延至的日期必须晚于当前截止日期（{cn_date_text(current)}）。")
    if (new_due - today).days > 366:
        raise DomainError("申请延至的日期过远，请填写一年以内的日期。")
    if pending_extension(assignment) is not None:
        raise DomainError("该任务已有待审批的延期申请，请等待管理员处理。")
    req = ExtensionRequest(assignment=assignment, requested_by_id=actor.id, reason=reason,
                           current_due=current, requested_due=new_due, status="pending",
                           created_at=utcnow())
    db.session.add(req)
    db.session.flush()
    db.session.refresh(req, ["requested_by"])
    send_to_users(admins(assignment.section.cycle.region_id), M.extension_requested_message(req),
                  "extension:requested", inapp_kind="other")
    record(actor, "extension.request", f"assignment:{assignment.id}", requested_due=new_due.isoformat())
    db.session.flush()
    return req


def decide_extension(req: ExtensionRequest, actor, grant: bool, comment: str | None = None,
                     granted_due=None) -> ExtensionRequest:
    """An admin of the request's region grants (the assignment's due date moves; reminders follow it)
    or refuses."""
    _require_admin(actor)
    if access.region_of(req) != actor.region_id:
        raise NotFound("该延期申请不存在。")
    lock_row(req)  # two admins deciding at once: the second sees the first's decision
    if req.status != "pending":
        raise DomainError(f"该延期申请已处理（{req.status_label}），不能重复审批。")
    comment = (comment or "").strip() or None
    if comment and len(comment) > MAX_NOTE:
        raise DomainError(f"意见最多{MAX_NOTE}字。")
    if grant:
        new_due = _parse_date(granted_due, "同意延至") if granted_due else req.requested_due
        current = req.assignment.effective_due()
        if current is not None and new_due <= current:
            raise DomainError(f"同意延至的日期必须晚于当前截止日期（{cn_date_text(current)}）。")
        req.assignment.due = new_due
        req.granted_due, req.status = new_due, "granted"
    else:
        if not comment:
            raise DomainError("不同意延期时请填写意见。")
        req.status = "refused"
    req.decided_by_id, req.decided_at, req.decision_comment = actor.id, utcnow(), comment
    db.session.flush()
    send_to_users(liaisons(req.assignment.unit_id), M.extension_decided_message(req),
                  f"extension:{req.status}", inapp_kind="other")
    record(actor, f"extension.{req.status}", f"assignment:{req.assignment_id}",
           granted_due=req.granted_due.isoformat() if req.granted_due else None)
    db.session.flush()
    return req


def withdraw_extension(req: ExtensionRequest, actor) -> ExtensionRequest:
    access.require(actor, "extension.withdraw", req, "只能撤回本人提交的延期申请。")
    lock_row(req)
    if req.status != "pending":
        raise DomainError("该延期申请已处理，不能撤回。")
    req.status, req.decided_at = "withdrawn", utcnow()
    record(actor, "extension.withdraw", f"assignment:{req.assignment_id}")
    db.session.flush()
    return req


# ------------------------------------------------------------------ 催报 by hand


def remindable(cycle: ReportCycle, unit_ids=None, only_overdue: bool = False,
               today: date | None = None) -> list[Contribution]:
    q = (select(Contribution).where(Contribution.cycle_id == cycle.id,
                                    Contribution.state.in_(REMINDABLE_STATES)).order_by(Contribution.id))
    if unit_ids is not None:
        q = q.where(Contribution.unit_id.in_(list(unit_ids)))
    rows = list(db.session.scalars(q))
    if only_overdue:
        rows = [c for c in rows if due_status(c, today=today).overdue]
    return rows


def _targets(cycle: ReportCycle, unit_ids=None, only_overdue: bool = False, today: date | None = None) -> list:
    """As ``remindable``, as ``dispatch.facts_select`` rows (no ORM objects), filtered in SQL."""
    c = Contribution.__table__
    q, due = dispatch.facts_select([cycle.id])
    q = q.where(c.c.cycle_id == cycle.id, c.c.state.in_(REMINDABLE_STATES))
    if unit_ids is not None:
        q = q.where(c.c.unit_id.in_(list(unit_ids)))
    if only_overdue:
        q = q.where(due < (today or local_today()))  # as DueStatus.overdue: today after the due date
    return db.session.execute(q.order_by(c.c.id)).all()


def send_manual_reminder(cycle: ReportCycle, actor, unit_ids=None, all_overdue: bool = False,
                         note: str | None = None, now: datetime | None = None) -> list:
    """催报 now: remind the chosen units (or every overdue one) of their unsubmitted material.

    Each contribution gets one logged Reminder of kind ``manual`` (its own key) and messages by every
    channel, like the scheduled ones.
    """
    _require_admin(actor)
    if access.region_of(cycle) != actor.region_id:
        raise NotFound("该年度报告不存在。")
    if cycle.state != "collecting":
        raise DomainError("只有征集中的年度报告可以催报。")
    note = (note or "").strip() or None
    if note and len(note) > MAX_NOTE:
        raise DomainError(f"附言最多{MAX_NOTE}字。")
    now_aware = as_utc(now)
    today = now_aware.astimezone(local_zone()).date()
    if all_overdue:
        targets = _targets(cycle, only_overdue=True, today=today)
        if not targets:
            raise DomainError("当前没有逾期未提交的材料。")
    else:
        ids = {int(u) for u in (unit_ids or [])}
        if not ids:
            raise DomainError("请选择要催报的单位，或选择“全部逾期单位”。")
        targets = _targets(cycle, unit_ids=ids, today=today)
        if not targets:
            raise DomainError("所选单位没有需要催报的材料（都已提交）。")
    batch = uuid.uuid4().hex[:12]
    now_utc = now_aware.replace(tzinfo=None)
    directory = dispatch.Directory(cycle, now=now_utc)
    facts = {row.id: directory.facts(row) for row in targets}
    specs = [DueReminder("manual", f"{now_utc:%Y%m%dT%H%M%S}/{batch}", row.id, due=row.due) for row in targets]
    done = dispatch.queue(cycle, specs, facts, directory, today, now_utc, note=note, actor_id=actor.id)
    ids = [q.id for q in done.queued]
    reminders = []
    for i in range(0, len(ids), 500):
        reminders += db.session.scalars(select(Reminder).where(Reminder.id.in_(ids[i:i + 500]))).all()
    reminders.sort(key=lambda r: r.contribution_id)
    record(actor, "reminder.manual", f"cycle:{cycle.id}", count=len(reminders),
           units=sorted({row.unit_id for row in targets}), note=note)
    db.session.flush()
    return reminders


# ------------------------------------------------------------------ channels and robots


def set_channel_preferences(user, email: bool, inapp: bool) -> UserChannelPreference:
    pref = db.session.scalar(select(UserChannelPreference).where(UserChannelPreference.user_id == user.id))
    if pref is None:
        pref = UserChannelPreference(user_id=user.id)
        db.session.add(pref)
    pref.email, pref.inapp, pref.updated_at = bool(email), bool(inapp), utcnow()
    record(user, "user.channels", f"user:{user.id}", email=bool(email), inapp=bool(inapp))
    db.session.flush()
    return pref


def add_webhook(actor, name: str, kind: str, url: str, secret: str | None = None, unit_id=None,
                cycle_id=None) -> WebhookTarget:
    _require_admin(actor)
    name, url, secret = (name or "").strip(), (url or "").strip(), (secret or "").strip() or None
    if not name or len(name) > column_length(WebhookTarget.name):
        raise DomainError(f"请填写群机器人名称（{column_length(WebhookTarget.name)}字以内）。")
    if kind not in WEBHOOK_KINDS:
        raise DomainError("请选择群机器人类型：企业微信或钉钉。")
    if not re.match(r"^https?://[^\s/]+", url) or len(url) > column_length(WebhookTarget.url):
        raise DomainError(f"群机器人地址应以 http:// 或 https:// 开头（{column_length(WebhookTarget.url)}字符以内）。")
    if secret and len(secret) > column_length(WebhookTarget.secret):
        raise DomainError("加签密钥过长。")
    if (unit_id is None) == (cycle_id is None):
        raise DomainError("群机器人必须属于一个单位或一个年度报告。")
    owner = db.session.get(Unit, unit_id) if unit_id is not None else db.session.get(ReportCycle, cycle_id)
    if owner is None or access.region_of(owner) != actor.region_id:
        # A robot only for the admin's own region's units and cycles; another's is not told apart.
        raise NotFound("所选单位不存在。" if unit_id is not None else "所选年度报告不存在。")
    target = WebhookTarget(name=name, kind=kind, url=url, secret=secret, unit_id=unit_id,
                           cycle_id=cycle_id, active=True, created_at=utcnow())
    db.session.add(target)
    db.session.flush()
    record(actor, "webhook.add", f"webhook:{target.id}", name=name, kind=kind)
    return target


def remove_webhook(actor, target: WebhookTarget) -> None:
    _require_admin(actor)
    if access.region_of(target) != actor.region_id:
        raise NotFound("该群机器人不存在。")
    target.active = False
    record(actor, "webhook.remove", f"webhook:{target.id}", name=target.name)
    db.session.flush()


# ------------------------------------------------------------------ outbox


def outbox_of_region(region_id: int):
    """The condition on OutboxMessage for messages of ``region_id``: to its people, or by the robots
    of its units and cycles (one statement, whatever the number of regions)."""
    from sqlalchemy import or_

    from ..models import User

    people = select(User.id).where(User.region_id == region_id)
    robots = select(WebhookTarget.id).where(or_(
        WebhookTarget.unit_id.in_(select(Unit.id).where(Unit.region_id == region_id)),
        WebhookTarget.cycle_id.in_(select(ReportCycle.id).where(ReportCycle.region_id == region_id))))
    return or_(OutboxMessage.user_id.in_(people), OutboxMessage.webhook_id.in_(robots))


def units_outside(unit_ids, region_id: int) -> bool:
    """Whether any of ``unit_ids`` is not a unit of ``region_id`` (another region's, or none)."""
    ids = set(unit_ids)
    if not ids:
        return False
    found = db.session.scalar(select(func.count(Unit.id)).where(Unit.id.in_(ids), Unit.region_id == region_id))
    return found != len(ids)


def retry_message(actor, message: OutboxMessage, now: datetime | None = None) -> OutboxMessage:
    """Put a dead (or cancelled) message back in the queue for delivery at once, after checking it
    against the current state: a reminder whose stage has passed (the material was submitted, the
    due date moved or passed, a newer reminder exists) is cancelled with the reason instead, so no
    stale reminder goes out. A reminder keeps its expiry; any other message gets a new
    OUTBOX_MAX_AGE_HOURS from now (the admin chose to send it). Returns the message; its status
    says which happened."""
    _require_admin(actor)
    if not db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.id == message.id,
                                                            outbox_of_region(actor.region_id))):
        raise NotFound("该消息不存在。")
    if message.status not in ("dead", "cancelled"):
        raise DomainError(f"该消息当前为“{message.status_label}”，只有发送失败或已取消的消息可以重试。")
    _retry([message], actor, now)
    return message


def retry_all_dead(actor, now: datetime | None = None) -> tuple[int, int]:
    """Retry every dead message of the actor's region, each re-checked as ``retry_message`` does, in a
    fixed number of statements; returns (re-queued, cancelled as no longer relevant)."""
    _require_admin(actor)
    rows = list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.status == "dead", outbox_of_region(actor.region_id)).order_by(OutboxMessage.id)))
    _retry(rows, actor, now)
    cancelled = sum(1 for row in rows if row.status == "cancelled")
    return len(rows) - cancelled, cancelled


def _retry(rows: list[OutboxMessage], actor, now: datetime | None) -> None:
    from flask import current_app

    from ..reminders.jobs import max_age_hours, stale_reasons

    at = as_utc(now).replace(tzinfo=None)
    stale = stale_reasons(rows, at)
    renewed = at + timedelta(hours=max_age_hours(current_app.config))
    for message in rows:
        previous = message.last_error
        if message.id in stale:
            message.status, message.last_error = stale[message.id]
            record(actor, "outbox.retry_refused", f"outbox:{message.id}", previous_error=previous,
                   reason=message.last_error)
            continue
        message.status, message.attempts, message.next_attempt_at = "pending", 0, at
        if message.reminder_id is None:
            message.expires_at = renewed
        record(actor, "outbox.retry", f"outbox:{message.id}", previous_error=previous)
    db.session.flush()


__all__ = [
    "Section", "add_webhook", "decide_extension", "policy_for", "remindable", "request_extension",
    "retry_all_dead", "retry_message", "send_manual_reminder", "set_channel_preferences",
    "update_policy", "withdraw_extension",
]
