"""The scheduled jobs, as plain functions of ``now``: ``sweep`` queues due reminders, ``deliver``
sends the outbox. Both are idempotent; APScheduler, the CLI and the tests call them the same way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import select, text, update
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle, Section
from ..models.reminder import OutboxMessage, Reminder, ReminderPolicy, WebhookTarget
from ..notify import PermanentFailure, TemporaryFailure, Unreachable
from ..notify import webhook as webhook_channel
from ..notify.email import SmtpSender, build_message
from ..timeutil import local_zone, utcnow
from . import dispatch
from .calendar import current_calendar
from .policy import REMINDABLE_STATES, Item, PolicySettings, due_reminders, is_unit_review

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key: one sweep at a time across all scheduler processes.
SWEEP_LOCK_KEY = 0x66617A68  # "fazh"
# A message left "sending" this long (its process died mid-send) is released for another try.
STALE_CLAIM = timedelta(minutes=10)


def as_utc(now: datetime | None) -> datetime:
    """Aware UTC ``now``; a naive value is read as local time (config TIMEZONE)."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=local_zone())
    return now.astimezone(timezone.utc)


@dataclass
class QueuedReminder:
    key: str
    kind: str
    kind_label: str
    cycle: str
    unit: str
    section: str
    recipients: int

    def line(self) -> str:
        where = f"{self.unit} {self.section}".strip() or self.cycle
        return f"{self.kind_label}\t{where}\t收件{self.recipients}个\t{self.key}"


@dataclass
class SweepResult:
    at: datetime
    locked_out: bool = False
    queued: list[QueuedReminder] = field(default_factory=list)
    skipped_existing: int = 0


def _items(contributions, zone) -> list[Item]:
    items = []
    for c in contributions:
        submitted_on = None
        if c.submitted_at is not None:
            submitted_on = c.submitted_at.replace(tzinfo=timezone.utc).astimezone(zone).date()
        items.append(Item(c.id, c.state, c.assignment.effective_due(), submitted_on, c.submitted_at))
    return items


def _try_lock() -> bool:
    if db.session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: every write transaction begins IMMEDIATE, which serialises sweeps
    return bool(db.session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY}))


def sweep(now: datetime | None = None, dry_run: bool = False, use_lock: bool = True) -> SweepResult:
    """Queue every reminder due at ``now`` that has not been queued before; commit once.

    With ``dry_run`` everything is computed and then rolled back. On PostgreSQL a transaction-level
    advisory lock makes a concurrent sweep return at once (``locked_out``); the unique reminder keys
    guarantee exactly once even without it.
    """
    now = as_utc(now)
    now_utc = now.replace(tzinfo=None)
    zone = local_zone()
    local_now = now.astimezone(zone)
    calendar = current_calendar()
    result = SweepResult(at=now)
    session = db.session
    try:
        if use_lock and not _try_lock():
            result.locked_out = True
            session.rollback()
            return result
        cycles = session.scalars(select(ReportCycle).where(ReportCycle.state == "collecting")
                                 .order_by(ReportCycle.id)).all()
        for cycle in cycles:
            policy = session.scalar(select(ReminderPolicy).where(ReminderPolicy.cycle_id == cycle.id))
            settings = PolicySettings.from_model(policy)
            contributions = session.scalars(
                select(Contribution).where(Contribution.cycle_id == cycle.id)
                .options(joinedload(Contribution.assignment).joinedload(Assignment.section)
                         .joinedload(Section.parent), joinedload(Contribution.unit))
                .order_by(Contribution.id)
            ).unique().all()
            specs = due_reminders(cycle.id, _items(contributions, zone), local_now, settings, calendar)
            if not specs:
                continue
            existing = _existing_keys([s.key for s in specs])
            by_id = {c.id: c for c in contributions}
            for spec in specs:
                if spec.key in existing:
                    result.skipped_existing += 1
                    continue
                reminder = dispatch.insert_reminder(spec, cycle.id, local_now.date(), now_utc)
                if reminder is None:
                    result.skipped_existing += 1
                    continue
                contribution = by_id.get(spec.contribution_id)
                told = dispatch.fan_out(reminder, cycle, contribution, local_now.date(), settings, now_utc)
                result.queued.append(_describe(reminder, cycle, contribution, told))
        session.flush()
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except Exception:
        session.rollback()
        raise
    if result.queued:
        logger.info("Sweep at %s queued %d reminders", now.isoformat(), len(result.queued))
    return result


def _existing_keys(keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        found.update(db.session.scalars(select(Reminder.key).where(Reminder.key.in_(chunk))))
    return found


def _describe(reminder, cycle, contribution, told) -> QueuedReminder:
    return QueuedReminder(
        key=reminder.key, kind=reminder.kind, kind_label=reminder.kind_label, cycle=cycle.title,
        unit=contribution.unit.name if contribution else "",
        section=contribution.section.path_label if contribution else "", recipients=told,
    )


# ------------------------------------------------------------------ delivery


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.dead + self.cancelled + self.deferred


def backoff(attempts: int, config) -> timedelta:
    """Delay before the next try after ``attempts`` failures: base × 2^(n-1), capped."""
    base = int(config.get("OUTBOX_RETRY_BASE_SECONDS", 60))
    cap = int(config.get("OUTBOX_RETRY_MAX_SECONDS", 3600))
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _cancel_reason(msg: OutboxMessage, now_utc: datetime) -> str | None:
    if msg.expires_at is not None and msg.expires_at <= now_utc:
        return "已过时：截止日期已过，不再发送该提醒。"
    reminder = msg.reminder
    if reminder is None or reminder.contribution is None:
        return None
    contribution = reminder.contribution
    if is_unit_review(reminder.kind, reminder.occurrence):
        if contribution.state != "unit_review":
            return "单位负责人已处理该材料，无需再提醒。"
        return None
    if reminder.kind == "backlog":
        if contribution.state != "submitted":
            return "材料已处理，无需再提醒审核。"
        return None
    if reminder.kind == "digest":
        return None
    if contribution.state not in REMINDABLE_STATES:
        return f"材料已提交（{contribution.state_label}），无需再催报。"
    if reminder.kind != "manual" and reminder.due != contribution.assignment.effective_due():
        return "截止日期已调整，按新日期提醒。"
    return None


def _polite_time(msg: OutboxMessage, now_utc: datetime) -> datetime | None:
    """For a reminder retried outside working hours: the next working day's send time, else None.

    Reminders go out only on working days from the cycle's send time, also when a retry falls later.
    """
    if msg.cause != "reminder" or msg.reminder is None:
        return None
    policy = db.session.scalar(select(ReminderPolicy).where(ReminderPolicy.cycle_id == msg.reminder.cycle_id))
    send_time = PolicySettings.from_model(policy).send_time
    zone, calendar = local_zone(), current_calendar()
    local = now_utc.replace(tzinfo=timezone.utc).astimezone(zone)
    if calendar.is_working_day(local.date()) and local.time() >= send_time:
        return None
    day = local.date()
    if not calendar.is_working_day(day) or local.time() >= send_time:
        day = calendar.add_working_days(day, 1)
    at = datetime.combine(day, send_time, tzinfo=zone)
    return at.astimezone(timezone.utc).replace(tzinfo=None)


def _claim(msg_id: int, now_utc: datetime) -> dict | None:
    """Mark one pending message as being sent and copy what sending needs; commit."""
    session = db.session
    claimed = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == msg_id, OutboxMessage.status == "pending",
               OutboxMessage.next_attempt_at <= now_utc)
        .values(status="sending", claimed_at=utcnow())
    ).rowcount
    if not claimed:
        session.rollback()
        return None
    msg = session.get(OutboxMessage, msg_id)
    reason = _cancel_reason(msg, now_utc)
    later = None if reason else _polite_time(msg, now_utc)
    if later is not None:
        msg.status, msg.next_attempt_at, msg.claimed_at = "pending", later, None
        session.commit()
        return {"deferred": True}
    if reason:
        msg.status, msg.last_error, msg.claimed_at = "cancelled", reason, None
        session.commit()
        return {"cancelled": True}
    job = {
        "id": msg.id, "channel": msg.channel, "address": msg.address, "subject": msg.subject,
        "body": msg.body, "payload": msg.payload or {}, "cause": msg.cause,
        "user_name": msg.user.name if msg.user else None,
        "reminder_key": msg.reminder.key if msg.reminder else None,
        "contribution_id": msg.contribution_id,
    }
    if msg.channel == "webhook":
        target = session.get(WebhookTarget, msg.webhook_id) if msg.webhook_id else None
        job["webhook"] = None if target is None or not target.active else {
            "url": target.url, "secret": target.secret, "kind": target.kind}
    session.commit()
    return job


def _send(job: dict, smtp: SmtpSender, config) -> None:
    if job["channel"] == "email":
        headers = {"X-Fazhi-Outbox-Id": str(job["id"]), "X-Fazhi-Cause": job["cause"]}
        if job["reminder_key"]:
            headers["X-Fazhi-Reminder-Key"] = job["reminder_key"]
        if job["contribution_id"]:
            headers["X-Fazhi-Contribution"] = str(job["contribution_id"])
        smtp.send(build_message(config, job["address"], job["user_name"], job["subject"], job["body"],
                                headers))
        return
    target = job.get("webhook")
    if target is None:
        raise PermanentFailure("群机器人已删除或停用。")
    body = webhook_channel.payload(target["kind"], job["body"], job["payload"].get("mobiles"))
    webhook_channel.post(target["url"], target["secret"], body,
                         timeout=float(config.get("WEBHOOK_TIMEOUT") or 10))


def _record(msg_id: int, now_utc: datetime, error: Exception | None, config, result: DeliveryResult,
            count_attempt: bool = True) -> None:
    session = db.session
    msg = session.get(OutboxMessage, msg_id)
    msg.claimed_at = None
    if error is None:
        msg.status, msg.sent_at, msg.last_error = "sent", now_utc, None
        msg.attempts += 1
        result.sent += 1
    elif not count_attempt:
        msg.status, msg.next_attempt_at = "pending", now_utc + backoff(1, config)
        result.deferred += 1
    else:
        msg.attempts += 1
        max_attempts = int(config.get("OUTBOX_MAX_ATTEMPTS", 10))
        text_ = getattr(error, "message", str(error))
        if getattr(error, "temporary", False) and msg.attempts < max_attempts:
            msg.status, msg.last_error = "pending", text_
            msg.next_attempt_at = now_utc + backoff(msg.attempts, config)
            result.retried += 1
        else:
            if getattr(error, "temporary", False):
                text_ = f"重试{msg.attempts}次仍失败：{text_}"
            msg.status, msg.last_error = "dead", text_
            result.dead += 1
            logger.warning("Outbox message %s dead: %s", msg_id, text_)
        result.errors.append(f"#{msg_id} {text_}")
    session.commit()


def deliver(now: datetime | None = None, limit: int = 500) -> DeliveryResult:
    """Send the pending outbox messages that are due at ``now``; each outcome is committed at once.

    Temporary failures are retried later with exponential backoff; permanent ones are marked dead.
    While the SMTP server cannot be reached, the remaining e-mails of the run wait without using up
    their tries.
    """
    now_utc = as_utc(now).replace(tzinfo=None)
    config = current_app.config
    session = db.session
    result = DeliveryResult()
    # Claims are timed by the wall clock, not by ``now`` (which a caller may set to any moment).
    session.execute(update(OutboxMessage)
                    .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at < utcnow() - STALE_CLAIM)
                    .values(status="pending", claimed_at=None))
    session.commit()
    ids = session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now_utc)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
    ).all()
    session.commit()
    smtp = SmtpSender(config)
    smtp_unreachable = False
    try:
        for msg_id in ids:
            job = _claim(msg_id, now_utc)
            if job is None:
                continue
            if job.get("cancelled"):
                result.cancelled += 1
                continue
            if job.get("deferred"):
                result.deferred += 1
                continue
            if job["channel"] == "email" and smtp_unreachable:
                _record(msg_id, now_utc, Unreachable("邮件服务器暂时无法连接"), config, result,
                        count_attempt=False)
                continue
            try:
                _send(job, smtp, config)
            except (TemporaryFailure, PermanentFailure) as exc:
                if job["channel"] == "email" and isinstance(exc, Unreachable):
                    smtp_unreachable = True
                _record(msg_id, now_utc, exc, config, result)
            except Exception as exc:  # noqa: BLE001 - an unexpected error must not stop the batch
                logger.exception("Outbox message %s failed unexpectedly", msg_id)
                _record(msg_id, now_utc, PermanentFailure(f"{type(exc).__name__}: {exc}"), config, result)
            else:
                _record(msg_id, now_utc, None, config, result)
    finally:
        smtp.close()
        session.rollback()
    return result
