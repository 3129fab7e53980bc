"""The scheduled jobs, as plain functions of ``now``: ``sweep`` queues due reminders, ``deliver``
sends the outbox. Both are idempotent; APScheduler, the CLI and the tests call them the same way.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import String, and_, exists, func, literal, or_, select, text, update
from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..limits import fit
from ..models import Contribution, Region, ReportCycle, Section, Unit, User
from ..models.reminder import OutboxMessage, Reminder, ReminderPolicy, WebhookTarget
from ..notify import DeliveryFailure, PermanentFailure, health
from ..notify import messages as M
from ..notify import webhook as webhook_channel
from ..notify.email import SmtpSender, build_message
from ..timeutil import local_zone, utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS
from . import dispatch
from ..workdays import current_calendar, due_status
from ..policy import units_with_unit_head
from .dispatch import QueuedReminder
from .policy import (
    REMINDABLE_STATES, Item, PolicySettings, contribution_reminders, contribution_stages, digest_reminder,
    due_reminders, is_unit_review, sweep_day, waiting_stages,
)

logger = logging.getLogger(__name__)

# Collecting cycles swept together (in a fixed number of statements): a province's 100+ districts
# in one pass or two, while the rows a pass holds stay bounded.
CYCLES_PER_PASS = 50
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


def _stage_conds(due, today: date, settings: PolicySettings, calendar, opened: date | None) -> list:
    """The conditions of ``candidates`` for cycles swept on ``today`` with ``settings`` and last
    opened on ``opened`` (``due``: the effective due date of the statement's ``facts_select``):
    [cheap span pre-test, exact ranges], or [] when nothing can be due."""
    c, r = Contribution.__table__, Reminder.__table__
    conds = []
    stages = contribution_stages(today, settings, calendar, opened)
    for st in stages:
        cond = [c.c.state.in_(st.states), due <= st.last if st.first is None else due.between(st.first, st.last)]
        if st.suffix is not None:
            seen = select(r.c.id).where(r.c.contribution_id == c.c.id, r.c.kind == st.kind, r.c.due == due)
            if st.suffix:
                seen = seen.where(r.c.occurrence.like(f"%{st.suffix}"))
            cond.append(~exists(seen))
        conds.append(and_(*cond))
    waits = waiting_stages(today, settings, calendar)
    for st in waits:
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
    if stages:
        last = max(st.last for st in stages)
        firsts = [st.first for st in stages]
        spans.append(and_(c.c.state.in_(REMINDABLE_STATES),
                          due <= last if None in firsts else due.between(min(firsts), last)))
    if waits:
        spans.append(and_(c.c.state.in_(sorted({s for st in waits for s in st.states})),
                          c.c.submitted_at >= dispatch.start_of_local_day_utc(min(st.first for st in waits)),
                          c.c.submitted_at < dispatch.start_of_local_day_utc(max(st.last for st in waits)
                                                                             + timedelta(days=1))))
    return [or_(*spans), or_(*conds)]


def candidates_many(plan: list[tuple], calendar) -> list:
    """The contributions of the cycles of ``plan`` ((cycle id, today, settings, opened) …) that may
    have a reminder due not queued yet, as ``dispatch.facts_select`` rows ordered by cycle and id;
    one statement for any number of cycles and regions.

    The due-date and submission-day ranges come from the policy (``contribution_stages``,
    ``waiting_stages``); a contribution whose reminder for its stage exists is left out by an
    anti-join on the reminder table. Cycles with the same day, settings and open day share one set of
    conditions (``cycle_id IN …``), so the statement does not grow with the regions either when they
    keep the default policy. The selection may return more than is due, never less: the policy
    functions decide on the rows returned and the unique key stops any duplicate.
    """
    c = Contribution.__table__
    groups: dict[tuple, list[int]] = {}
    for cycle_id, today, settings, opened in plan:
        groups.setdefault((today, settings, opened), []).append(cycle_id)
    q, due = dispatch.facts_select(sorted({p[0] for p in plan}))
    branches = []
    for (today, settings, opened), cycle_ids in groups.items():
        conds = _stage_conds(due, today, settings, calendar, opened)
        if conds:
            branches.append(and_(c.c.cycle_id.in_(cycle_ids), *conds))
    if not branches:
        return []
    return db.session.execute(q.where(or_(*branches)).order_by(c.c.cycle_id, c.c.id)).all()


def candidates(cycle_id: int, today: date, settings: PolicySettings, calendar, opened: date | None = None) -> list:
    """The contributions of one cycle (last opened on the local day ``opened``) that may have a
    reminder due ``today`` not queued yet (``candidates_many``); one statement."""
    return candidates_many([(cycle_id, today, settings, opened)], calendar)


def _item(row, zone) -> Item:
    submitted_on = None
    # Only the waiting reminders look at the day of submission (converting costs per row).
    if row.submitted_at is not None and row.state not in REMINDABLE_STATES:
        submitted_on = row.submitted_at.replace(tzinfo=timezone.utc).astimezone(zone).date()
    return Item(row.id, row.state, row.due, submitted_on, row.submitted_at)


class _Remembered:
    """The calendar as the policy sees it during one sweep, with each count of working days made
    once: the tens of thousands of contributions of a cycle share a few dozen due dates."""

    def __init__(self, calendar):
        self._calendar = calendar
        self._between: dict[tuple[date, date], int] = {}

    def __getattr__(self, name):
        return getattr(self._calendar, name)

    def working_days_between(self, start: date, end: date) -> int:
        found = self._between.get((start, end))
        if found is None:
            found = self._between[(start, end)] = self._calendar.working_days_between(start, end)
        return found

    def signed_working_days(self, today: date, due: date) -> int:
        return self.working_days_between(today, due) if today <= due else -self.working_days_between(due, today)


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
        # A deactivated region's people are deactivated too: nobody is reminded there.
        cycles = session.scalars(select(ReportCycle).join(Region, Region.id == ReportCycle.region_id)
                                 .where(ReportCycle.state == "collecting", Region.active.is_(True))
                                 .order_by(ReportCycle.id)).all()
        policies = {p.cycle_id: p for p in session.scalars(
            select(ReminderPolicy).where(ReminderPolicy.cycle_id.in_([c.id for c in cycles])))} if cycles else {}
        plan = []
        for cycle in cycles:
            settings = PolicySettings.from_model(policies.get(cycle.id))
            today = sweep_day(local_now, settings, calendar)
            if today is not None:
                plan.append((cycle, today, settings))
        # Every region's cycles together, a pass of CYCLES_PER_PASS at a time: the statements of a
        # pass do not grow with the number of regions or cycles in it.
        for start in range(0, len(plan), CYCLES_PER_PASS):
            _sweep_cycles(plan[start:start + CYCLES_PER_PASS], local_now, now_utc, calendar, zone, result,
                          batch_size)
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


def _sweep_cycles(plan: list[tuple], local_now, now_utc, calendar, zone, result, batch_size) -> None:
    """Queue what is due in the cycles of ``plan`` ((cycle, today, settings) …, any regions) in a
    fixed number of statements: the candidates, the digests already queued, the day's reminders
    queued before, the directory (people of the cycles' regions), the digests' counts, and one
    write per ``batch_size`` reminders."""
    session = db.session
    # A late open counts its overdue stages from the open (reminders.policy); the local day is enough.
    opened = {cycle.id: cycle.opened_at.replace(tzinfo=timezone.utc).astimezone(zone).date()
              if cycle.opened_at else None for cycle, _today, _settings in plan}
    rows = candidates_many([(cycle.id, today, settings, opened[cycle.id]) for cycle, today, settings in plan],
                           calendar)
    result.candidates += len(rows)
    digests = {cycle.id: d for cycle, today, settings in plan
               if (d := digest_reminder(cycle.id, today, settings)) is not None}
    if digests:
        queued = set(session.scalars(select(Reminder.key).where(Reminder.key.in_([d.key for d in digests.values()]))))
        digests = {cid: d for cid, d in digests.items() if d.key not in queued}
    by_day = {}
    for cycle, today, _settings in plan:
        by_day.setdefault(today, []).append(cycle.id)
    result.skipped_existing += session.scalar(select(func.count()).select_from(Reminder).where(
        Reminder.kind != "manual",
        or_(*(and_(Reminder.cycle_id.in_(ids), Reminder.day == day) for day, ids in by_day.items())))) or 0
    if not rows and not digests:
        return
    rows_of: dict[int, list] = {}
    for row in rows:
        rows_of.setdefault(row.cycle_id, []).append(row)
    busy = [(cycle, today, settings) for cycle, today, settings in plan if cycle.id in rows_of or cycle.id in digests]
    directory = dispatch.Directory([cycle for cycle, _today, _settings in busy], now=now_utc)
    step = max(1, batch_size)
    remembered = _Remembered(calendar)
    entries, facts = [], {}
    for cycle, _today, settings in busy:
        mine = rows_of.get(cycle.id, [])
        for start in range(0, len(mine), step):
            chunk = mine[start:start + step]
            items = [_item(r, zone) for r in chunk]
            specs = [s for s in due_reminders(cycle.id, items, local_now, settings, remembered, opened[cycle.id])
                     if s.kind != "digest"]
            if specs:
                facts.update((r.id, directory.facts(r)) for r in chunk)
                entries += [(cycle, spec) for spec in specs]
    # Digests last, each cycle's counted for all cycles at once and sent to its own region's admins.
    directory.load_digests([(cycle, today, settings) for cycle, today, settings in busy if cycle.id in digests])
    entries += [(cycle, digests[cycle.id]) for cycle, _today, _settings in busy if cycle.id in digests]
    plan_of = {cycle.id: (today, settings) for cycle, today, settings in busy}
    done = dispatch.queue_many(entries, facts, directory, plan_of, now_utc, batch_size=step)
    result.queued.extend(done.queued)
    result.skipped_existing += done.skipped


# ------------------------------------------------------------------ delivery
#
# A message ends by its age or its relevance, never by a count of tries:
# - a reminder is void once its stage has passed: the material was submitted or the unit head acted,
#   the due date moved or passed (before it / on it), or a newer reminder to the same people about
#   the same material (the next stage) or the next day's digest was queued;
# - any other message is dead OUTBOX_MAX_AGE_HOURS after it was queued (or after an admin's retry).
# Temporary failures wait with backoff (capped by OUTBOX_RETRY_MAX_SECONDS) until then. A channel
# that cannot be reached is probed with one message per run (notify/health.py) while its other
# messages wait untouched. Reminder texts are written at delivery from the current facts.


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    cancelled: int = 0
    # Not tried in this run: reminders held back to working hours, and messages whose channel is down.
    deferred: int = 0
    # Of ``dead``: those given up unsent by their age (not a failed attempt of this run).
    expired: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.sent + self.retried + self.dead + self.cancelled + self.deferred


def backoff(attempts: int, config) -> timedelta:
    """Delay before the next try after ``attempts`` failures: base × 2^(n-1), capped."""
    base = int(config.get("OUTBOX_RETRY_BASE_SECONDS") or 60)
    cap = int(config.get("OUTBOX_RETRY_MAX_SECONDS") or 3600)
    return timedelta(seconds=min(cap, base * 2 ** max(0, min(attempts - 1, 30))))


def probe_delay(failures: int, config) -> timedelta:
    """Delay before the next probe of a channel after ``failures`` failed ones: the message backoff
    capped by OUTBOX_PROBE_MAX_SECONDS (30 s, the delivery interval: a probe every run)."""
    cap = timedelta(seconds=int(config.get("OUTBOX_PROBE_MAX_SECONDS") or 30))
    return min(backoff(failures, config), cap)


def max_age_hours(config) -> int:
    return int(config.get("OUTBOX_MAX_AGE_HOURS") or 48)


# Messages claimed per statement: what a dead deliverer holds back (and may send twice) is bounded
# by it; a slow batch keeps its claims by renewing them (CLAIM_REFRESH).
CLAIM_BATCH = 50
# Messages a probe of a failing channel claims at once: the first is the probe, the others follow at
# once if it goes through (stale ones found on the way are cancelled and the next one probes).
PROBE_BATCH = 10

STALE_TEXT = "已过时：截止日期已过，不再发送该提醒。"
INTERNAL_ERROR_TEXT = "内部错误（已记入日志）"
SUPERSEDED_TEXT = "已过时：已有更新的提醒，不再发送这一条。"
SUPERSEDED_DIGEST_TEXT = "已过时：已有更新的每日进度汇总，不再发送这一条。"
# Reminders to a unit about its material's due date: one of them a day.
UNIT_STAGE_KINDS = ("before_due", "due_today", "overdue")
NOT_COLLECTING_TEXT = "已过时：年度报告已停止征集，不再就材料提醒。"


def expired_text(hours: int) -> str:
    return f"已过期：{hours}小时内未能发出，不再发送。"


def _group(kind: str, occurrence: str) -> str:
    """Reminders of one group go to the same people about the same material: a newer one (the next
    stage) makes an older one still waiting void."""
    if kind in ("before_due", "due_today", "overdue"):
        return "unit"
    if kind == "backlog":
        return "unit_review" if is_unit_review(kind, occurrence) else "backlog"
    return kind


def _cancel_reason(reminder, contribution, today: date) -> str | None:
    """Why a reminder about ``contribution`` (its current facts) is no longer worth sending on local
    day ``today``, or None."""
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
    if reminder.kind in ("before_due", "due_today") and contribution.due is not None and today > contribution.due:
        return STALE_TEXT
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


class _Outline:
    """Section path labels and unit names for reminder texts, read once per cycle in a run (plain
    strings: they outlive the commits that expire the ORM objects they came from)."""

    def __init__(self):
        self.labels: dict[int, str] = {}
        self.units: dict[int, str] = {}
        self.cycles: set[int] = set()

    def load(self, cycle_ids: set[int], unit_ids: set[int]) -> None:
        from ..pages import preload_sections

        missing = cycle_ids - self.cycles
        if missing:
            for s in preload_sections(missing):
                if isinstance(s, Section):
                    self.labels[s.id] = s.path_label
            self.cycles |= missing
        units = unit_ids - set(self.units)
        if units:
            self.units.update(db.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(units))).all())
            for uid in units:  # asked once, found or not
                self.units.setdefault(uid, "")


class _Facts:
    """What the decisions on a batch of outbox rows need, read for the whole batch at once: the
    reminders with the newest reminder of each group, their contributions' current state and
    effective due date, and (when a reminder text is written) the outline's labels and unit names."""

    def __init__(self, rows, now_utc: datetime, config, outline: _Outline | None = None):
        session = db.session
        r = Reminder.__table__
        self.now, self.calendar, self.outline = now_utc, current_calendar(), outline or _Outline()
        self.today = now_utc.replace(tzinfo=timezone.utc).astimezone(local_zone()).date()
        self.hours = max_age_hours(config)
        ids = {row.reminder_id for row in rows if row.reminder_id is not None}
        self.reminders, self.newest = {}, {}
        if ids:
            # The batch's reminders and, in the same statement, every reminder about the same
            # material: the newest of each group tells whether a later stage made one void.
            same = select(r.c.contribution_id).where(r.c.id.in_(ids), r.c.contribution_id.is_not(None))
            for x in session.execute(select(r.c.id, r.c.key, r.c.kind, r.c.occurrence, r.c.due, r.c.day,
                                            r.c.cycle_id, r.c.contribution_id, r.c.message)
                                     .where(or_(r.c.id.in_(ids), r.c.contribution_id.in_(same)))):
                if x.id in ids:
                    self.reminders[x.id] = x
                if x.contribution_id is not None:
                    key = (x.contribution_id, _group(x.kind, x.occurrence))
                    self.newest[key] = max(self.newest.get(key, 0), x.id)
        self.contributions = {}
        contribution_ids = {x.contribution_id for x in self.reminders.values() if x.contribution_id is not None}
        cycle_ids = {x.cycle_id for x in self.reminders.values()}
        # Other messages about a material (returned, approved …) have their facts lines refreshed.
        others = {row.contribution_id for row in rows if row.reminder_id is None and row.contribution_id is not None}
        if others - contribution_ids:
            cycle_ids |= set(session.scalars(select(Contribution.cycle_id).where(Contribution.id.in_(others))
                                             .distinct()))
        contribution_ids |= others
        if contribution_ids:
            q, _due = dispatch.facts_select(cycle_ids)
            c = Contribution.__table__
            self.contributions = {x.id: x for x in session.execute(q.where(c.c.id.in_(contribution_ids)))}
        self._load_policies({x.cycle_id for x in self.reminders.values()})
        # Whether a unit-review reminder goes to the unit head or to the admins standing in, for the
        # whole batch in one statement (not one per message written).
        self.headed = units_with_unit_head(
            {self.contributions[x.contribution_id].unit_id for x in self.reminders.values()
             if is_unit_review(x.kind, x.occurrence) and x.contribution_id in self.contributions})
        digest_cycles = {x.cycle_id for x in self.reminders.values() if x.kind == "digest"}
        if digest_cycles:
            self.newest.update({("cycle", cid): top for cid, top in session.execute(
                select(r.c.cycle_id, func.max(r.c.id)).where(r.c.kind == "digest", r.c.cycle_id.in_(digest_cycles))
                .group_by(r.c.cycle_id))})

    def verdict(self, row, by_age: bool = True) -> tuple[str, str] | None:
        """(status, reason) when ``row`` must not go out any more, else None."""
        reminder = self.reminders.get(row.reminder_id) if row.reminder_id is not None else None
        if reminder is None:
            if by_age and _aged(row, self.now, self.hours):
                return "dead", _with_error(expired_text(self.hours), row.last_error)
            return None
        if row.expires_at is not None and row.expires_at <= self.now:
            return "cancelled", STALE_TEXT
        if reminder.contribution_id is None:
            return self._digest_verdict(reminder)
        contribution = self.contributions.get(reminder.contribution_id)
        if contribution is None:
            return None
        if reminder.cycle_id not in self.collecting:
            # Material changes only while its cycle collects: once it stopped, chasing it is void.
            return "cancelled", NOT_COLLECTING_TEXT
        reason = _cancel_reason(reminder, contribution, self.today)
        if reason is None and self.newest.get((reminder.contribution_id, _group(reminder.kind, reminder.occurrence)),
                                              reminder.id) > reminder.id:
            reason = SUPERSEDED_TEXT
        return ("cancelled", reason) if reason else None

    def _load_policies(self, cycle_ids: set[int]) -> None:
        """The reminder settings, open day and whether it collects, of the cycles of the batch's
        reminders, in one statement."""
        self.policies, self.opened, self.collecting = {}, {}, set()
        if not cycle_ids:
            return
        zone = local_zone()
        for cid, at, state, policy in db.session.execute(
                select(ReportCycle.id, ReportCycle.opened_at, ReportCycle.state, ReminderPolicy)
                .outerjoin(ReminderPolicy, ReminderPolicy.cycle_id == ReportCycle.id)
                .where(ReportCycle.id.in_(cycle_ids))):
            self.policies[cid] = PolicySettings.from_model(policy)
            self.opened[cid] = at.replace(tzinfo=timezone.utc).astimezone(zone).date() if at else None
            if state == "collecting":
                self.collecting.add(cid)

    def waits_for_todays_own(self, reminder) -> bool:
        """True for a reminder to the unit held from an earlier day (an outage) when the policy gives
        today a reminder of its own about the same material that is not queued yet: sending the held
        one now and today's minutes later would tell the unit the same thing twice (the held one is
        written with today's countdown). It waits for today's sweep, which makes it void."""
        if reminder is None or reminder.kind not in UNIT_STAGE_KINDS or reminder.day >= self.today:
            return False
        contribution = self.contributions.get(reminder.contribution_id)
        if contribution is None:
            return False
        settings = self.policies.get(reminder.cycle_id)
        # Only a collecting cycle's sweep queues the day's own reminder that makes the held one void.
        if settings is None or not settings.enabled or reminder.cycle_id not in self.collecting \
                or not self.calendar.is_working_day(self.today):
            return False
        item = Item(contribution.id, contribution.state, contribution.due,
                    dispatch._local_day(contribution.submitted_at), contribution.submitted_at)
        today = contribution_reminders(item, self.today, settings, self.calendar, self.opened.get(reminder.cycle_id))
        return any(r.kind in UNIT_STAGE_KINDS and r.key != reminder.key for r in today)

    def _digest_verdict(self, reminder) -> tuple[str, str] | None:
        """A digest tells one day's progress: void once a newer one exists or its day is over."""
        if reminder.kind != "digest":
            return None
        if self.newest.get(("cycle", reminder.cycle_id), reminder.id) > reminder.id:
            return "cancelled", SUPERSEDED_DIGEST_TEXT
        if reminder.day < self.today:
            return "cancelled", f"已过时：这是{reminder.day.month}月{reminder.day.day}日的每日进度汇总，当天未能发出，不再发送。"
        return None

    def render(self, row, reminder):
        """The reminder's message written from the current facts (remaining working days counted
        from today), or None for a message that is not a reminder about a contribution."""
        if row.cause != "reminder" or reminder is None or reminder.contribution_id is None:
            return None
        contribution = self.contributions.get(reminder.contribution_id)
        if contribution is None:
            return None
        facts = self._facts(contribution)
        status = due_status(contribution.due, today=self.today, calendar=self.calendar)
        kind = reminder.kind
        if kind in dispatch.UNIT_KINDS:
            if kind == "before_due" and status.days == 0 and not status.overdue:
                kind = "due_today"  # delayed to the last day: said as that day's reminder says it
            return M.reminder_message(kind, facts, status, note=reminder.message)
        if kind == "escalation":
            return M.escalation_message(facts, status)
        if kind == "backlog":
            submitted = dispatch._local_day(contribution.submitted_at)
            waited = self.calendar.working_days_between(submitted, self.today) if submitted else 0
            if is_unit_review(kind, reminder.occurrence):
                return M.unit_review_message(facts, waited, stand_in=contribution.unit_id not in self.headed)
            return M.backlog_message(facts, waited)
        return None

    def refresh(self, row) -> str | None:
        """For a message that is not a reminder, its text with the lines that describe the present
        (the due date's countdown, the current state) as they are today, or None when unchanged."""
        contribution = self.contributions.get(row.contribution_id) if row.reminder_id is None else None
        if contribution is None or not row.body:
            return None
        text_ = row.body
        if _COUNTDOWN_LINE.search(text_):  # the message counted days: count them from today
            done = contribution.state not in REMINDABLE_STATES
            status = due_status(contribution.due, today=self.today, done=done, calendar=self.calendar)
            line = f"截止日期：{status.date_label or '未设定'}" + (f"，{status.label}" if status.label else "")
            text_ = _DUE_LINE.sub(lambda _m: line, text_, count=1)
        label = CONTRIBUTION_STATE_LABELS.get(contribution.state, contribution.state)
        text_ = _STATE_LINE.sub(lambda _m: f"当前状态：{label}", text_, count=1)
        return text_ if text_ != row.body else None

    def _facts(self, row) -> dispatch.Facts:
        outline = self.outline
        if row.section_id not in outline.labels or row.unit_id not in outline.units:
            outline.load({x.cycle_id for x in self.contributions.values()},
                         {x.unit_id for x in self.contributions.values()})
        return dispatch.Facts(row.id, row.state, row.due, row.unit_id, row.section_id, row.submitted_at,
                              dispatch._Named(outline.units.get(row.unit_id, "")),
                              dispatch._SectionLabel(outline.labels.get(row.section_id, "")),
                              dispatch._AssignmentFacts(row.role, row.due))


# The lines of notify.messages' facts block that describe the present; a message delayed by an
# outage must not arrive with yesterday's countdown.
_DUE_LINE = re.compile(r"^截止日期：[^\n]*$", re.M)
_COUNTDOWN_LINE = re.compile(r"^截止日期：[^\n]*，[^\n]*$", re.M)
_STATE_LINE = re.compile(r"^当前状态：[^\n]*$", re.M)


def _aged(row, now_utc: datetime, hours: int) -> bool:
    if row.expires_at is not None:
        return row.expires_at <= now_utc
    return row.created_at is not None and row.created_at <= now_utc - timedelta(hours=hours)


def _with_error(text_: str, last_error: str | None) -> str:
    return f"{text_}（最后一次错误：{last_error}）" if last_error else text_


def stale_reasons(rows, now: datetime | None = None) -> dict[int, tuple[str, str]]:
    """For a retry: {id: (status, reason)} of the outbox ``rows`` that are no longer relevant now
    (reminders whose stage has passed); their age is not held against them (the retry renews it)."""
    now_utc = as_utc(now).replace(tzinfo=None)
    facts = _Facts(rows, now_utc, current_app.config)
    out = {}
    for row in rows:
        verdict = facts.verdict(row, by_age=False)
        if verdict:
            out[row.id] = verdict
    return out


def _expire(now_utc: datetime, config, result: DeliveryResult) -> None:
    """End, in two UPDATEs, the pending messages past their expiry, whichever channel they wait for
    (a channel that is down is not claimed from, so its messages are not looked at otherwise): a
    reminder past its stage's end is cancelled, any other message past its age is dead; commit."""
    t, session, hours = _OUTBOX, db.session, max_age_hours(config)
    pending = t.c.status == "pending"
    stale = session.execute(update(t).where(pending, t.c.reminder_id.is_not(None), t.c.expires_at <= now_utc)
                            .values(status="cancelled", last_error=STALE_TEXT, next_attempt_at=now_utc,
                                    claimed_at=None).returning(t.c.id)).all()
    aged = or_(t.c.expires_at <= now_utc,
               and_(t.c.expires_at.is_(None), t.c.created_at <= now_utc - timedelta(hours=hours)))
    note = literal(expired_text(hours), String) + func.coalesce(
        literal("（最后一次错误：", String) + t.c.last_error + literal("）", String), literal("", String))
    # The moment a message stopped is kept in next_attempt_at (no further attempt is due): the daily
    # digest counts the messages stopped since the one before.
    dead = session.execute(update(t).where(pending, t.c.reminder_id.is_(None), aged)
                           .values(status="dead", last_error=note, next_attempt_at=now_utc, claimed_at=None)
                           .returning(t.c.id)).all()
    session.commit()
    result.cancelled += len(stale)
    result.dead += len(dead)
    result.expired += len(dead)
    if dead:
        logger.warning("Outbox messages expired after %d hours: %s", hours,
                       ", ".join(str(r.id) for r in dead[:20]) + (" …" if len(dead) > 20 else ""))


def _claim_batch(now_utc: datetime, n: int, conds=()) -> tuple[list, datetime]:
    """Mark up to ``n`` due pending messages (matching ``conds``) as being sent, in one
    UPDATE … RETURNING; commit.

    On PostgreSQL rows another deliverer is claiming are skipped (FOR UPDATE SKIP LOCKED); on
    SQLite the write lock serialises deliverers. Either way a message is claimed by one only.
    Returns the rows and the claim's time, which tells our claims from a later deliverer's.
    """
    t, session = _OUTBOX, db.session
    due = (select(t.c.id).where(t.c.status == "pending", t.c.next_attempt_at <= now_utc, *conds)
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
                   t.c.next_attempt_at, t.c.expires_at, t.c.created_at, t.c.last_error)
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


def _prepare(rows, now_utc: datetime, result: DeliveryResult, outline: _Outline | None = None) -> list[dict]:
    """Cancel or defer what should not go out now, in bulk; return the jobs to send (committed).

    What the decisions need is read for the whole batch at once (``_Facts``), with the cycles' send
    times, the recipients' names and the robots; reminder texts are written here from the current
    facts (the outline's labels read once per run).
    """
    session = db.session
    facts = _Facts(rows, now_utc, current_app.config, outline)
    send_times = {cid: settings.send_time for cid, settings in facts.policies.items()}
    user_ids = {row.user_id for row in rows if row.user_id is not None and row.channel == "email"}
    names = dict(session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all()) \
        if user_ids else {}
    webhook_ids = {row.webhook_id for row in rows if row.webhook_id is not None}
    targets = {w.id: w for w in session.scalars(select(WebhookTarget).where(WebhookTarget.id.in_(webhook_ids)))} \
        if webhook_ids else {}

    ended: dict[tuple[str, str], list[int]] = {}
    deferred: dict[datetime, list[int]] = {}
    jobs = []
    for row in rows:
        verdict = facts.verdict(row)
        if verdict:
            ended.setdefault(verdict, []).append(row.id)
            continue
        reminder = facts.reminders.get(row.reminder_id)
        if row.cause == "reminder" and reminder is not None:
            later = _polite_time(send_times[reminder.cycle_id], now_utc)
            if later is None and facts.waits_for_todays_own(reminder):
                later = now_utc + timedelta(seconds=int(current_app.config.get("REMINDER_SWEEP_SECONDS") or 300))
            if later is not None:
                deferred.setdefault(later, []).append(row.id)
                continue
        jobs.append(_job(row, reminder, facts.render(row, reminder), names, targets, facts.refresh(row)))
    for (status, reason), ids in ended.items():
        _set(ids, status=status, last_error=reason, claimed_at=None, next_attempt_at=now_utc)
        if status == "dead":
            result.dead += len(ids)
        else:
            result.cancelled += len(ids)
    for later, ids in deferred.items():
        _set(ids, status="pending", next_attempt_at=later, claimed_at=None)
        result.deferred += len(ids)
    session.commit()
    return jobs


def _job(row, reminder, message, names: dict, targets: dict, refreshed: str | None = None) -> dict:
    job = {
        "id": row.id, "channel": row.channel, "address": row.address, "subject": row.subject,
        "body": row.body, "payload": row.payload or {}, "cause": row.cause,
        "user_name": names.get(row.user_id), "reminder_key": reminder.key if reminder is not None else None,
        "contribution_id": row.contribution_id, "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at, "created_at": row.created_at,
        "key": health.key_for(row.channel, row.webhook_id),
        "rendered": message is not None or refreshed is not None,
    }
    if refreshed is not None:
        job["body"] = refreshed
    if message is not None:
        job["subject"] = fit(OutboxMessage.subject, message.subject)
        job["body"] = message.body if row.channel == "email" else message.short
    if row.channel == "webhook":
        target = targets.get(row.webhook_id)
        job["webhook"] = None if target is None or not target.active else {
            "url": target.url, "secret": target.secret, "kind": target.kind}
        # A robot that cannot be connected to marks its host down, not only itself.
        job["host"] = health.host_key(target.url) if job["webhook"] is not None else None
    return job


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
    claim is stale). Messages waiting for a channel that is down were not tried: they are written in
    bulk and keep their place in the queue."""

    def __init__(self, now_utc: datetime, config, result: DeliveryResult):
        self.now, self.config, self.result = now_utc, config, result
        self.waiting: list[int] = []

    def ok(self, job: dict) -> None:
        t = _OUTBOX
        values = dict(status="sent", sent_at=self.now, last_error=None, attempts=t.c.attempts + 1, claimed_at=None)
        if job["rendered"]:  # the outbox shows what was sent
            values.update(subject=job["subject"], body=job["body"])
        db.session.execute(update(t).where(t.c.id == job["id"]).values(**values))
        db.session.commit()
        self.result.sent += 1

    def wait(self, job: dict) -> None:
        """The channel is down: not tried, no try used; it keeps its place in the queue."""
        self.waiting.append(job["id"])
        self.result.deferred += 1

    def down(self, job: dict, error: Exception) -> None:
        """This message found its channel down: it stays first in the queue (the next probe)."""
        self._write(job, "pending", getattr(error, "message", str(error)), job["next_attempt_at"])
        self.result.retried += 1

    def fail(self, job: dict, error: Exception) -> None:
        text_ = getattr(error, "message", str(error))
        if getattr(error, "temporary", False):
            # No try count ends a message: it waits, backing off, until it expires (see _expire).
            self._write(job, "pending", text_, self.now + backoff(job["attempts"] + 1, self.config))
            self.result.retried += 1
            return
        # The moment it stopped, for the digest (no further attempt is due).
        self._write(job, "dead", text_, self.now)
        self.result.dead += 1
        logger.warning("Outbox message %s dead: %s", job["id"], text_)

    def _write(self, job: dict, status: str, text_: str, next_at: datetime) -> None:
        db.session.execute(update(_OUTBOX).where(_OUTBOX.c.id == job["id"])
                           .values(status=status, last_error=text_, attempts=job["attempts"] + 1,
                                   next_attempt_at=next_at, claimed_at=None))
        db.session.commit()
        self.result.errors.append(f"#{job['id']} {text_}")

    def write_waiting(self, stamp: datetime) -> None:
        """Release the waiting messages still claimed by us (claim time ``stamp``); commit."""
        if self.waiting:
            t = _OUTBOX
            db.session.execute(update(t).where(t.c.id.in_(self.waiting), t.c.status == "sending",
                                               t.c.claimed_at == stamp)
                               .values(status="pending", claimed_at=None))
            db.session.commit()
            self.waiting = []


class _Run:
    """One delivery run: the batches it claims, and the channels' health as it finds them."""

    def __init__(self, now_utc: datetime, config, result: DeliveryResult, board: health.Board, smtp):
        self.now, self.config, self.result, self.board, self.smtp = now_utc, config, result, board, smtp
        self.outline = _Outline()

    def delay(self, failures: int) -> timedelta:
        """When a failing channel is probed next: every run by default (see ``probe_delay``)."""
        return probe_delay(failures, self.config)

    def probes(self, left: int) -> int:
        """Probe the failing channels whose probe is due, one at a time, each reserved only when
        this run has room for it; the probe phase ends after 2 × WEBHOOK_TIMEOUT (a blackholed host
        takes a whole timeout), the channels not probed then come first in the next run. Returns
        the number of messages claimed."""
        budget = 2 * float(self.config.get("WEBHOOK_TIMEOUT") or 10)
        started, claimed = time.monotonic(), 0
        for key in self.board.due_probes(self.now):
            if left - claimed <= 0 or time.monotonic() - started >= budget:
                break
            if key.startswith(health.ROBOT_PREFIX) and any(
                    h in self.board.blocked and health.robot_id(key) in ids for h, ids in self.board.hosts.items()):
                continue  # its host is down: the host's probe speaks for it
            if self.board.reserve(key, self.now, self.delay):
                claimed += self.probe(key, left - claimed)
        return claimed

    def probe(self, key: str, left: int) -> int:
        """Try the failing channel ``key`` with its oldest due message; when it goes through, the
        rest of the probe batch follows. With no message to try, the connection alone is probed (a
        robot failing with an error answer is left due for the next run). Returns the number of
        messages claimed."""
        self.board.probing(key)
        claimed = tried = 0
        while claimed < left:
            rows, stamp = _claim_batch(self.now, min(PROBE_BATCH, left - claimed),
                                       self.board.claim_filter(_OUTBOX, only=key))
            if not rows:
                break
            claimed += len(rows)
            sent = self.batch(rows, stamp)
            tried += sent
            if sent:
                break
        if not tried and key in self.board.failing:
            self._probe_connection(key)
        if key in self.board.failing:  # the probe failed, or could not tell: still down
            self.board.blocked.add(key)
        return claimed

    def _probe_connection(self, key: str) -> None:
        try:
            if key == health.EMAIL:
                self.smtp.check()
            elif key in self.board.urls:
                health.probe_host(self.board.urls[key], float(self.config.get("WEBHOOK_TIMEOUT") or 10))
            elif key.startswith(health.HOST_PREFIX):
                pass  # no active robot at that host any more: nothing waits for it, it is cleared
            else:  # only a message tells whether a robot answers again: due at the next run
                self.board.unreserve(key, self.now)
                return
        except DeliveryFailure as exc:
            if health.is_channel_failure("email" if key == health.EMAIL else "webhook", exc):
                self.board.failed(key, exc.message, self.now, self.delay)
                return
        self.board.ok(key, self.now)

    def batch(self, rows, stamp: datetime) -> int:
        """Prepare and send one claimed batch; the number of messages tried."""
        claimed = time.monotonic()
        jobs = _prepare(rows, self.now, self.result, self.outline)
        outcomes = _Outcomes(self.now, self.config, self.result)
        ours: set[int] | None = None  # None: every job of the batch is still ours
        tried = 0
        for i, job in enumerate(jobs):
            if time.monotonic() - claimed >= CLAIM_REFRESH.total_seconds():
                # Measured on this process's clock, so a slow send is noticed whatever ``now`` says.
                ours, stamp = _refresh_claims(outcomes.waiting + [j["id"] for j in jobs[i:]], stamp)
                outcomes.waiting = [x for x in outcomes.waiting if x in ours]
                claimed = time.monotonic()
            if ours is not None and job["id"] not in ours:
                continue
            if self.board.is_blocked(job):
                outcomes.wait(job)
                continue
            tried += 1
            self._send(job, outcomes)
        outcomes.write_waiting(stamp)
        return tried

    def _send(self, job: dict, outcomes: _Outcomes) -> None:
        try:
            _send(job, self.smtp, self.config)
        except DeliveryFailure as exc:
            down = health.failing_key(job, exc)
            if down is not None:
                self.board.failed(down, exc.message, self.now, self.delay)
                if down == job["key"]:
                    self.board.ok(job.get("host"), self.now)  # the host answered (an error answer)
                outcomes.down(job, exc)
                return
            self.board.ok(job["key"], self.now)  # it answered: reachable, only this message failed
            self.board.ok(job.get("host"), self.now)
            outcomes.fail(job, exc)
        except Exception:  # noqa: BLE001 - an unexpected error must not stop the batch
            # The admin reads a Chinese reason on the outbox page; the traceback is in the log.
            logger.exception("Outbox message %s failed unexpectedly", job["id"])
            outcomes.fail(job, PermanentFailure(INTERNAL_ERROR_TEXT))
        else:
            self.board.ok(job["key"], self.now)
            self.board.ok(job.get("host"), self.now)
            outcomes.ok(job)


def deliver(now: datetime | None = None, limit: int = 500, batch_size: int = CLAIM_BATCH) -> DeliveryResult:
    """Send the pending outbox messages that are due at ``now`` (at most ``limit``).

    First what has expired is ended in bulk (``_expire``). Each failing channel whose probe is due
    (every run by default: OUTBOX_PROBE_MAX_SECONDS) is then tried with its oldest message, or by a
    connection alone when none is due, within a time box (``_Run.probes``); a channel still down
    leaves its messages pending, untried.
    The rest is claimed ``batch_size`` at a time in one statement; what is stale (the material was
    submitted, the date moved, a newer reminder exists) is cancelled and reminders outside working
    hours are deferred in bulk; reminder texts are written from the current facts; each send's
    outcome is committed right after it, so a crash sends again at most the one message in flight.
    Temporary failures are retried later with backoff until the message expires; permanent ones are
    dead. A channel found down in the run is recorded (notify/health.py) and its other messages wait.
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
    _expire(now_utc, config, result)
    board = health.Board.load()
    smtp = SmtpSender(config)
    run = _Run(now_utc, config, result, board, smtp)
    left = limit
    try:
        left -= run.probes(left)
        while left > 0:
            rows, stamp = _claim_batch(now_utc, min(max(1, batch_size), left), board.claim_filter(_OUTBOX))
            if not rows:
                break
            left -= len(rows)
            run.batch(rows, stamp)
    finally:
        smtp.close()
        session.rollback()
    return result
