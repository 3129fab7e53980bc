"""The scheduled jobs, as plain functions of ``now``: ``sweep`` queues due reminders, ``deliver``
sends the outbox. Both are idempotent; APScheduler, the CLI and the tests call them the same way.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import String, and_, exists, func, literal, or_, select, text, update
from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..models import Contribution, ReportCycle, User
from ..models.reminder import OutboxMessage, Reminder, ReminderPolicy, WebhookTarget
from ..notify import PermanentFailure, TemporaryFailure, Unreachable
from ..notify import webhook as webhook_channel
from ..notify.email import SmtpSender, build_message
from ..timeutil import local_zone, utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS
from . import dispatch
from ..workdays import current_calendar
from .dispatch import QueuedReminder
from .policy import (
    REMINDABLE_STATES, Item, PolicySettings, contribution_stages, digest_reminder, due_reminders, is_unit_review,
    sweep_day, waiting_stages,
)

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key: one sweep at a time across all scheduler processes.
SWEEP_LOCK_KEY = 0x66617A68  # "fazh"
# How long a sweep waits for a concurrent one to finish before leaving the moment to it.
SWEEP_LOCK_WAIT = timedelta(seconds=5)
# The claims of a batch being sent are renewed this often (checked before each send), so that a
# slow but live deliverer keeps them.
CLAIM_REFRESH = timedelta(seconds=30)
# smtplib and urllib time each socket operation on its own; one e-mail takes at most this many
# (connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA, end of data, QUIT), a robot fewer.
SEND_SOCKET_OPERATIONS = 11


def stale_claim(config) -> timedelta:
    """How long a message may stay "sending" before it counts as abandoned (its deliverer died
    mid-send) and is released for another try.

    A live deliverer leaves its claims untouched at most CLAIM_REFRESH plus one send at its
    slowest (every socket operation waiting its whole timeout); twice that leaves room for a slow
    database. Shorter could send a slow deliverer's message twice; longer holds a dead one's back.
    """
    timeout = max(float(config.get("MAIL_TIMEOUT") or 10), float(config.get("WEBHOOK_TIMEOUT") or 10))
    return 2 * (CLAIM_REFRESH + timedelta(seconds=SEND_SOCKET_OPERATIONS * timeout))


# The window with the default 10-second timeouts: 2 × (30 s + 110 s) = 4 min 40 s.
STALE_CLAIM = stale_claim({})


def as_utc(now: datetime | None) -> datetime:
    """Aware UTC ``now``; a naive value is read as local time (config TIMEZONE)."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=local_zone())
    return now.astimezone(timezone.utc)


@dataclass
class SweepResult:
    at: datetime
    locked_out: bool = False
    queued: list[QueuedReminder] = field(default_factory=list)
    # Reminders due now that were queued before (earlier today, or by a concurrent sweep).
    skipped_existing: int = 0
    # Contributions the SQL selection returned as possibly due (the policy then decides).
    candidates: int = 0
    duration: float = 0.0

    @property
    def skipped(self) -> int:
        return self.skipped_existing


def _try_lock() -> bool:
    """Take the sweep lock, waiting up to ``SWEEP_LOCK_WAIT`` for a sweep that holds it; False when
    it is still held then (the transaction is rolled back).

    Waiting a moment rather than giving up at once means a sweep that arrives while another runs
    still sweeps its own moment afterwards (finding little left to do), instead of skipping it.
    """
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: every write transaction begins IMMEDIATE, which serialises sweeps
    if session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY}):
        return True
    wait_ms = int(SWEEP_LOCK_WAIT.total_seconds() * 1000)
    try:
        session.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})
        session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    except OperationalError:  # lock_timeout: the other sweep is still running
        session.rollback()
        return False
    return True


def _since(column):
    """SQL text of a naive UTC timestamp as the policy writes it in occurrences (%Y%m%dT%H%M%S)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, 'YYYYMMDD"T"HH24MISS', type_=String)
    return func.strftime("%Y%m%dT%H%M%S", column, type_=String)


def candidates(cycle_id: int, today: date, settings: PolicySettings, calendar, opened: date | None = None) -> list:
    """The contributions of a cycle (last opened on the local day ``opened``) that may have a reminder
    due ``today`` not queued yet, as ``dispatch.facts_select`` rows ordered by id; one statement.

    The due-date and submission-day ranges come from the policy (``contribution_stages``,
    ``waiting_stages``); a contribution whose reminder for its stage exists is left out by an
    anti-join on the reminder table. The selection may return more than is due, never less: the
    policy functions decide on the rows returned and the unique key stops any duplicate.
    """
    c, r = Contribution.__table__, Reminder.__table__
    q, due = dispatch.facts_select([cycle_id])
    conds = []
    for st in contribution_stages(today, settings, calendar, opened):
        cond = [c.c.state.in_(st.states), due <= st.last if st.first is None else due.between(st.first, st.last)]
        if st.suffix is not None:
            seen = select(r.c.id).where(r.c.contribution_id == c.c.id, r.c.kind == st.kind, r.c.due == due)
            if st.suffix:
                seen = seen.where(r.c.occurrence.like(f"%{st.suffix}"))
            cond.append(~exists(seen))
        conds.append(and_(*cond))
    for st in waiting_stages(today, settings, calendar):
        cond = [c.c.state.in_(st.states), c.c.submitted_at < dispatch.start_of_local_day_utc(st.last + timedelta(days=1))]
        if st.first is not None:
            cond.append(c.c.submitted_at >= dispatch.start_of_local_day_utc(st.first))
        if st.suffix is not None:
            occurrence = literal(st.prefix, String) + _since(c.c.submitted_at) + literal(st.suffix, String)
            cond.append(~exists(select(r.c.id).where(r.c.contribution_id == c.c.id, r.c.kind == st.kind,
                                                     r.c.occurrence == occurrence)))
        conds.append(and_(*cond))
    if not conds:
        return []
    # A cheap pre-test first: the whole span of the ranges, so that the many rows outside every
    # range are dropped after a comparison or two instead of being tested range by range.
    spans = []
    stages = contribution_stages(today, settings, calendar, opened)
    if stages:
        last = max(st.last for st in stages)
        firsts = [st.first for st in stages]
        spans.append(and_(c.c.state.in_(REMINDABLE_STATES),
                          due <= last if None in firsts else due.between(min(firsts), last)))
    waits = waiting_stages(today, settings, calendar)
    if waits:
        spans.append(and_(c.c.state.in_(sorted({s for st in waits for s in st.states})),
                          c.c.submitted_at >= dispatch.start_of_local_day_utc(min(st.first for st in waits)),
                          c.c.submitted_at < dispatch.start_of_local_day_utc(max(st.last for st in waits)
                                                                             + timedelta(days=1))))
    return db.session.execute(q.where(c.c.cycle_id == cycle_id, or_(*spans), or_(*conds))
                              .order_by(c.c.id)).all()


def _item(row, zone) -> Item:
    submitted_on = None
    # Only the waiting reminders look at the day of submission (converting costs per row).
    if row.submitted_at is not None and row.state not in REMINDABLE_STATES:
        submitted_on = row.submitted_at.replace(tzinfo=timezone.utc).astimezone(zone).date()
    return Item(row.id, row.state, row.due, submitted_on, row.submitted_at)


def sweep(now: datetime | None = None, dry_run: bool = False, use_lock: bool = True,
          batch_size: int = dispatch.BATCH_SIZE) -> SweepResult:
    """Queue every reminder due at ``now`` that has not been queued before; commit once.

    Only the contributions SQL finds possibly due are read (``candidates``); their reminders,
    notifications and outbox rows are written ``batch_size`` reminders at a time. With
    ``dry_run`` everything is computed and then rolled back. On PostgreSQL a transaction-level
    advisory lock makes a concurrent sweep return at once (``locked_out``); the unique reminder
    keys (``INSERT … ON CONFLICT DO NOTHING``) guarantee exactly once even without it.
    """
    started = time.perf_counter()
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
        policies = {p.cycle_id: p for p in session.scalars(
            select(ReminderPolicy).where(ReminderPolicy.cycle_id.in_([c.id for c in cycles])))} if cycles else {}
        for cycle in cycles:
            settings = PolicySettings.from_model(policies.get(cycle.id))
            today = sweep_day(local_now, settings, calendar)
            if today is None:
                continue
            _sweep_cycle(cycle, today, local_now, now_utc, settings, calendar, zone, result, batch_size)
        session.flush()
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except Exception:
        session.rollback()
        raise
    result.duration = time.perf_counter() - started
    if result.queued:
        logger.info("Sweep at %s queued %d reminders", now.isoformat(), len(result.queued))
    return result


def _sweep_cycle(cycle, today, local_now, now_utc, settings, calendar, zone, result, batch_size) -> None:
    session = db.session
    # A late open counts its overdue stages from the open (reminders.policy); the local day is enough.
    opened = cycle.opened_at.replace(tzinfo=timezone.utc).astimezone(zone).date() if cycle.opened_at else None
    rows = candidates(cycle.id, today, settings, calendar, opened)
    result.candidates += len(rows)
    digest = digest_reminder(cycle.id, today, settings)
    if digest is not None and session.scalar(select(Reminder.id).where(Reminder.key == digest.key)):
        digest = None
    result.skipped_existing += session.scalar(select(func.count()).select_from(Reminder).where(
        Reminder.cycle_id == cycle.id, Reminder.day == today, Reminder.kind != "manual")) or 0
    if not rows and digest is None:
        return
    directory = dispatch.Directory(cycle)
    step = max(1, batch_size)
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        items = [_item(r, zone) for r in chunk]
        specs = [s for s in due_reminders(cycle.id, items, local_now, settings, calendar, opened)
                 if s.kind != "digest"]
        if not specs:
            continue
        facts = {r.id: directory.facts(r) for r in chunk}
        done = dispatch.queue(cycle, specs, facts, directory, today, now_utc, settings, batch_size=step)
        result.queued.extend(done.queued)
        result.skipped_existing += done.skipped
    if digest is not None:
        done = dispatch.queue(cycle, [digest], {}, directory, today, now_utc, settings)
        result.queued.extend(done.queued)
        result.skipped_existing += done.skipped


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


# Messages claimed per statement: what a dead deliverer holds back (and may send twice) is bounded
# by it; a slow batch keeps its claims by renewing them (CLAIM_REFRESH).
CLAIM_BATCH = 50


def _cancel_reason(msg, reminder, contribution, now_utc: datetime) -> str | None:
    """Why a claimed message is no longer worth sending, or None. ``reminder`` and ``contribution``
    are the rows read for the batch (None when the message has none)."""
    if msg.expires_at is not None and msg.expires_at <= now_utc:
        return "已过时：截止日期已过，不再发送该提醒。"
    if reminder is None or contribution is None:
        return None
    state = contribution.state
    if is_unit_review(reminder.kind, reminder.occurrence):
        if state != "unit_review":
            return "单位负责人已处理该材料，无需再提醒。"
        return None
    if reminder.kind == "backlog":
        if state != "submitted":
            return "材料已处理，无需再提醒审核。"
        return None
    if reminder.kind == "digest":
        return None
    if state not in REMINDABLE_STATES:
        return f"材料已提交（{CONTRIBUTION_STATE_LABELS[state]}），无需再催报。"
    if reminder.kind != "manual" and reminder.due != contribution.due:
        return "截止日期已调整，按新日期提醒。"
    return None


def _polite_time(send_time, now_utc: datetime) -> datetime | None:
    """For a reminder retried outside working hours: the next working day's send time, else None.

    Reminders go out only on working days from the cycle's send time, also when a retry falls later.
    """
    zone, calendar = local_zone(), current_calendar()
    local = now_utc.replace(tzinfo=timezone.utc).astimezone(zone)
    if calendar.is_working_day(local.date()) and local.time() >= send_time:
        return None
    day = local.date()
    if not calendar.is_working_day(day) or local.time() >= send_time:
        day = calendar.add_working_days(day, 1)
    at = datetime.combine(day, send_time, tzinfo=zone)
    return at.astimezone(timezone.utc).replace(tzinfo=None)


_OUTBOX = OutboxMessage.__table__


def _claim_batch(now_utc: datetime, n: int) -> tuple[list, datetime]:
    """Mark up to ``n`` due pending messages as being sent, in one UPDATE … RETURNING; commit.

    On PostgreSQL rows another deliverer is claiming are skipped (FOR UPDATE SKIP LOCKED); on
    SQLite the write lock serialises deliverers. Either way a message is claimed by one only.
    Returns the rows and the claim's time, which tells our claims from a later deliverer's.
    """
    t, session = _OUTBOX, db.session
    due = (select(t.c.id).where(t.c.status == "pending", t.c.next_attempt_at <= now_utc)
           .order_by(t.c.next_attempt_at, t.c.id).limit(n))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # A CTE, not "id IN (subquery)": PostgreSQL may run such a subquery again for every row of a
    # nested loop, each run skipping the rows just updated and taking the next n, so that one
    # claim took the whole queue. A CTE that locks rows is evaluated once.
    due = due.cte("due")
    stamp = utcnow()
    rows = session.execute(
        update(t).where(t.c.id.in_(select(due.c.id)), t.c.status == "pending")
        .values(status="sending", claimed_at=stamp)
        .returning(t.c.id, t.c.channel, t.c.user_id, t.c.webhook_id, t.c.address, t.c.subject, t.c.body,
                   t.c.payload, t.c.cause, t.c.reminder_id, t.c.contribution_id, t.c.attempts,
                   t.c.next_attempt_at, t.c.expires_at, t.c.created_at)
    ).all()
    session.commit()
    return sorted(rows, key=lambda r: (r.next_attempt_at, r.id)), stamp


def _refresh_claims(ids: list[int], stamp: datetime) -> tuple[set[int], datetime]:
    """Renew our claims on ``ids`` (those still ``sending`` with our claim time ``stamp``); commit.

    Returns the ids still ours and the new claim time. A message missing from the answer was
    released as abandoned and claimed again by another deliverer: it must not be sent by us too.
    """
    t, session = _OUTBOX, db.session
    fresh = utcnow()
    kept = set(session.scalars(
        update(t).where(t.c.id.in_(ids), t.c.status == "sending", t.c.claimed_at == stamp)
        .values(claimed_at=fresh).returning(t.c.id)))
    session.commit()
    lost = set(ids) - kept
    if lost:
        logger.warning("Outbox messages %s were taken over by another deliverer; not sent here",
                       ", ".join(str(i) for i in sorted(lost)))
    return kept, fresh


def _set(ids, **values) -> None:
    if ids:
        db.session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(list(ids))).values(**values))


def _prepare(rows, now_utc: datetime, result: DeliveryResult) -> list[dict]:
    """Cancel or defer what should not go out now, in bulk; return the jobs to send (committed).

    What the decisions need is read for the whole batch at once: the reminders, their
    contributions' state and effective due date, the cycles' send times, names and robots.
    """
    session = db.session
    r = Reminder.__table__
    reminder_ids = {row.reminder_id for row in rows if row.reminder_id is not None}
    reminders = {x.id: x for x in session.execute(
        select(r.c.id, r.c.key, r.c.kind, r.c.occurrence, r.c.due, r.c.cycle_id, r.c.contribution_id)
        .where(r.c.id.in_(reminder_ids)))} if reminder_ids else {}
    contributions = {}
    contribution_ids = {x.contribution_id for x in reminders.values() if x.contribution_id is not None}
    if contribution_ids:
        q, _due = dispatch.facts_select({x.cycle_id for x in reminders.values()})
        c = Contribution.__table__
        contributions = {x.id: x for x in session.execute(q.where(c.c.id.in_(contribution_ids)))}
    cycle_ids = {x.cycle_id for x in reminders.values()}
    policies = {p.cycle_id: p for p in session.scalars(
        select(ReminderPolicy).where(ReminderPolicy.cycle_id.in_(cycle_ids)))} if cycle_ids else {}
    send_times = {cid: PolicySettings.from_model(policies.get(cid)).send_time for cid in cycle_ids}
    user_ids = {row.user_id for row in rows if row.user_id is not None and row.channel == "email"}
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all()) \
        if user_ids else {}
    webhook_ids = {row.webhook_id for row in rows if row.webhook_id is not None}
    targets = {w.id: w for w in session.scalars(select(WebhookTarget).where(WebhookTarget.id.in_(webhook_ids)))} \
        if webhook_ids else {}

    cancelled: dict[str, list[int]] = {}
    deferred: dict[datetime, list[int]] = {}
    jobs = []
    for row in rows:
        reminder = reminders.get(row.reminder_id)
        contribution = contributions.get(reminder.contribution_id) if reminder is not None else None
        reason = _cancel_reason(row, reminder, contribution, now_utc)
        if reason:
            cancelled.setdefault(reason, []).append(row.id)
            continue
        if row.cause == "reminder" and reminder is not None:
            later = _polite_time(send_times[reminder.cycle_id], now_utc)
            if later is not None:
                deferred.setdefault(later, []).append(row.id)
                continue
        job = {
            "id": row.id, "channel": row.channel, "address": row.address, "subject": row.subject,
            "body": row.body, "payload": row.payload or {}, "cause": row.cause,
            "user_name": names.get(row.user_id), "reminder_key": reminder.key if reminder is not None else None,
            "contribution_id": row.contribution_id, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at, "created_at": row.created_at,
        }
        if row.channel == "webhook":
            target = targets.get(row.webhook_id)
            job["webhook"] = None if target is None or not target.active else {
                "url": target.url, "secret": target.secret, "kind": target.kind}
        jobs.append(job)
    for reason, ids in cancelled.items():
        _set(ids, status="cancelled", last_error=reason, claimed_at=None)
        result.cancelled += len(ids)
    for later, ids in deferred.items():
        _set(ids, status="pending", next_attempt_at=later, claimed_at=None)
        result.deferred += len(ids)
    session.commit()
    return jobs


def _send(job: dict, smtp: SmtpSender, config) -> None:
    if job["channel"] == "email":
        headers = {"X-Fazhi-Outbox-Id": str(job["id"]), "X-Fazhi-Cause": job["cause"]}
        if job["reminder_key"]:
            headers["X-Fazhi-Reminder-Key"] = job["reminder_key"]
        if job["contribution_id"]:
            headers["X-Fazhi-Contribution"] = str(job["contribution_id"])
        smtp.send(build_message(config, job["address"], job["user_name"], job["subject"], job["body"],
                                headers, outbox_id=job["id"], created_at=job.get("created_at")))
        return
    target = job.get("webhook")
    if target is None:
        raise PermanentFailure("群机器人已删除或停用。")
    body = webhook_channel.payload(target["kind"], job["body"], job["payload"].get("mobiles"))
    webhook_channel.post(target["url"], target["secret"], body,
                         timeout=float(config.get("WEBHOOK_TIMEOUT") or 10))


class _Outcomes:
    """Outcomes of sends, each written and committed right after its send (one UPDATE), so that a
    process dying mid-batch leaves at most the message in flight unrecorded (sent again once its
    claim is stale). Messages waiting for the mail server were not sent: they are written in bulk."""

    def __init__(self, now_utc: datetime, config, result: DeliveryResult):
        self.now, self.config, self.result = now_utc, config, result
        self.waiting: list[int] = []

    def ok(self, job: dict) -> None:
        t = _OUTBOX
        db.session.execute(update(t).where(t.c.id == job["id"])
                           .values(status="sent", sent_at=self.now, last_error=None,
                                   attempts=t.c.attempts + 1, claimed_at=None))
        db.session.commit()
        self.result.sent += 1

    def wait(self, job: dict) -> None:
        """The mail server cannot be reached: try again soon without using up a try."""
        self.waiting.append(job["id"])
        self.result.deferred += 1

    def fail(self, job: dict, error: Exception) -> None:
        attempts = job["attempts"] + 1
        max_attempts = int(self.config.get("OUTBOX_MAX_ATTEMPTS", 10))
        text_ = getattr(error, "message", str(error))
        if getattr(error, "temporary", False) and attempts < max_attempts:
            status, next_at = "pending", self.now + backoff(attempts, self.config)
            self.result.retried += 1
        else:
            if getattr(error, "temporary", False):
                text_ = f"重试{attempts}次仍失败：{text_}"
            status, next_at = "dead", job["next_attempt_at"]
            self.result.dead += 1
            logger.warning("Outbox message %s dead: %s", job["id"], text_)
        db.session.execute(update(_OUTBOX).where(_OUTBOX.c.id == job["id"])
                           .values(status=status, last_error=text_, attempts=attempts, next_attempt_at=next_at,
                                   claimed_at=None))
        db.session.commit()
        self.result.errors.append(f"#{job['id']} {text_}")

    def write_waiting(self, stamp: datetime) -> None:
        """Release the waiting messages still claimed by us (claim time ``stamp``); commit."""
        if self.waiting:
            t = _OUTBOX
            db.session.execute(update(t).where(t.c.id.in_(self.waiting), t.c.status == "sending",
                                               t.c.claimed_at == stamp)
                               .values(status="pending", next_attempt_at=self.now + backoff(1, self.config),
                                       claimed_at=None))
            db.session.commit()
            self.waiting = []


def deliver(now: datetime | None = None, limit: int = 500, batch_size: int = CLAIM_BATCH) -> DeliveryResult:
    """Send the pending outbox messages that are due at ``now`` (at most ``limit``).

    Messages are claimed ``batch_size`` at a time in one statement; what is stale (the material was
    submitted, the date moved, the message expired) is cancelled and reminders outside working
    hours are deferred in bulk; each send's outcome is committed right after it, so a crash sends
    again at most the one message in flight. Temporary failures are retried later with exponential
    backoff; permanent ones are marked dead. While the SMTP server cannot be reached, the remaining
    e-mails of the run wait without using up their tries.
    """
    now_utc = as_utc(now).replace(tzinfo=None)
    config = current_app.config
    session = db.session
    result = DeliveryResult()
    # Claims are timed by the wall clock, not by ``now`` (which a caller may set to any moment).
    session.execute(update(OutboxMessage)
                    .where(OutboxMessage.status == "sending", OutboxMessage.claimed_at < utcnow() - stale_claim(config))
                    .values(status="pending", claimed_at=None))
    session.commit()
    smtp = SmtpSender(config)
    smtp_unreachable = False
    left = limit
    try:
        while left > 0:
            rows, stamp = _claim_batch(now_utc, min(max(1, batch_size), left))
            if not rows:
                break
            claimed = time.monotonic()
            left -= len(rows)
            jobs = _prepare(rows, now_utc, result)
            outcomes = _Outcomes(now_utc, config, result)
            ours: set[int] | None = None  # None: every job of the batch is still ours
            for i, job in enumerate(jobs):
                if time.monotonic() - claimed >= CLAIM_REFRESH.total_seconds():
                    # Measured on this process's clock, so a slow send is noticed whatever ``now`` says.
                    ours, stamp = _refresh_claims(outcomes.waiting + [j["id"] for j in jobs[i:]], stamp)
                    outcomes.waiting = [x for x in outcomes.waiting if x in ours]
                    claimed = time.monotonic()
                if ours is not None and job["id"] not in ours:
                    continue
                if job["channel"] == "email" and smtp_unreachable:
                    outcomes.wait(job)
                    continue
                try:
                    _send(job, smtp, config)
                except (TemporaryFailure, PermanentFailure) as exc:
                    if job["channel"] == "email" and isinstance(exc, Unreachable):
                        smtp_unreachable = True
                    outcomes.fail(job, exc)
                except Exception as exc:  # noqa: BLE001 - an unexpected error must not stop the batch
                    logger.exception("Outbox message %s failed unexpectedly", job["id"])
                    outcomes.fail(job, PermanentFailure(f"{type(exc).__name__}: {exc}"))
                else:
                    outcomes.ok(job)
            outcomes.write_waiting(stamp)
    finally:
        smtp.close()
        session.rollback()
    return result
