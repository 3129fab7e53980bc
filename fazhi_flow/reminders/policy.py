"""Which reminders are due at a moment: pure functions of the policy, the calendar and the facts.

A reminder is identified by (subject, kind, occurrence). The occurrence names the stage, and includes
the due date (or the submission time) it was computed from, so that a granted extension starts a fresh
series and a resubmission a fresh backlog count.

Stages, counted in working days (``WorkCalendar.signed_working_days``):
- ``before_due``: for each configured day count t (default 5, 3, 1) the window "t or fewer days left,
  more than the next smaller count"; one reminder per window;
- ``due_today``: no working day left (the due day, or the last working day before a due date on a
  weekend);
- ``overdue``: on the 1st working day after the due date, then every ``overdue_every`` working days,
  at most ``overdue_max`` times;
- ``escalation``: once, from ``escalate_after`` working days overdue;
- ``backlog``: a submission waiting more than ``backlog_days`` working days, then every
  ``backlog_days`` more, at most ``backlog_max`` times;
- ``backlog`` with an occurrence starting ``unit/`` (``UNIT_REVIEW_PREFIX``): material waiting for
  the unit head's decision (待单位审核) more than ``backlog_days`` working days, counted and capped like
  the reviewer backlog and sent to the unit's unit heads. It shares the ``backlog`` kind because the
  stored kinds are fixed by a CHECK constraint; the occurrence prefix keeps its keys apart;
- ``digest``: one per cycle and working day.

After a late open (the cycle opened, or reopened, on ``opened``, a local day after the due date)
the stages already past at that moment are not made up for: the overdue series counts from the open
(the open day is its 1st working day overdue, so the first sweep sends one notice) and escalation
waits until ``escalate_after`` working days after the open day. Their occurrences carry the open
(``<due>/o<yyyymmdd>/<n>``), so that a reopen starts a fresh series rather than matching an old one.

Only the current stage is ever due: a sweep after downtime sends what is still relevant and skips what
is stale (never "3 days left" once only 1 is left, never a before-due reminder after the date).
Nothing is due on a non-working day or before the send time, and only drafts and returned material
get reminders (they stop the moment the material is submitted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from ..workdays import WorkCalendar

REMINDABLE_STATES = ("draft", "returned")
# Occurrence prefix of a backlog reminder about material waiting for the unit head (待单位审核).
UNIT_REVIEW_PREFIX = "unit/"


def is_unit_review(kind: str, occurrence: str | None) -> bool:
    """Whether a reminder is the unit-head variant of the backlog reminder."""
    return kind == "backlog" and (occurrence or "").startswith(UNIT_REVIEW_PREFIX)


@dataclass(frozen=True)
class PolicySettings:
    enabled: bool = True
    before_days: tuple[int, ...] = (5, 3, 1)
    on_due_day: bool = True
    overdue_every: int = 2
    overdue_max: int = 5
    escalate_after: int = 3
    backlog_days: int = 2
    backlog_max: int = 3
    daily_digest: bool = True
    send_time: time = time(9, 0)

    @classmethod
    def from_model(cls, policy) -> PolicySettings:
        if policy is None:
            return cls()
        hh, mm = (int(x) for x in (policy.send_time or "09:00").split(":"))
        return cls(
            enabled=policy.enabled, before_days=tuple(policy.before_days), on_due_day=policy.on_due_day,
            overdue_every=max(1, policy.overdue_every), overdue_max=policy.overdue_max,
            escalate_after=policy.escalate_after, backlog_days=policy.backlog_days,
            backlog_max=policy.backlog_max, daily_digest=policy.daily_digest, send_time=time(hh, mm),
        )


@dataclass(frozen=True)
class Item:
    """The facts of one contribution that the policy looks at."""

    contribution_id: int
    state: str
    due: date | None
    submitted_on: date | None = None  # local day of the latest submission
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class DueReminder:
    kind: str
    occurrence: str
    contribution_id: int | None = None
    cycle_id: int | None = None
    due: date | None = None
    # Signed working days to the due date (before/due/overdue/escalation) or days waited (backlog).
    days: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        from ..models.reminder import Reminder

        return Reminder.make_key(self.kind, self.occurrence, self.contribution_id, self.cycle_id)


def sweep_day(local_now: datetime, settings: PolicySettings, calendar: WorkCalendar) -> date | None:
    """The local day whose reminders may go out at ``local_now``, or None (off day / too early)."""
    if not settings.enabled:
        return None
    today = local_now.date()
    if not calendar.is_working_day(today):
        return None
    if local_now.timetz().replace(tzinfo=None) < settings.send_time:
        return None
    return today


def contribution_reminders(item: Item, today: date, settings: PolicySettings,
                           calendar: WorkCalendar, opened: date | None = None) -> list[DueReminder]:
    """The reminders due today for one contribution (to its unit, and escalations); ``opened``: the
    local day the cycle was last opened (None: counted from the due date alone)."""
    if item.state not in REMINDABLE_STATES or item.due is None:
        return []
    due, cid = item.due, item.contribution_id
    delta = calendar.signed_working_days(today, due)
    out: list[DueReminder] = []
    if today <= due:
        if delta == 0:
            if settings.on_due_day:
                out.append(DueReminder("due_today", f"{due}", cid, due=due, days=0))
        else:
            windows = [t for t in settings.before_days if t >= delta]
            if windows:
                out.append(DueReminder("before_due", f"{due}/{min(windows)}", cid, due=due, days=delta))
        return out
    overdue, escalate, tag = -delta, -delta, ""
    # An open after ``today`` (a clock set back, a simulation) cannot have held anything back.
    if opened is not None and due < opened <= today:
        # Opened late: count from the open, not from the date that had passed before anyone could act.
        overdue = calendar.working_days_between(opened - timedelta(days=1), today)
        escalate = calendar.working_days_between(opened, today)
        tag = f"/o{opened:%Y%m%d}"
    if overdue < 1:  # only possible on a non-working day, where nothing is sent anyway
        return out
    stage = (overdue - 1) // settings.overdue_every
    if stage < settings.overdue_max:
        out.append(DueReminder("overdue", f"{due}{tag}/{stage + 1}", cid, due=due, days=delta))
    if settings.escalate_after > 0 and escalate >= settings.escalate_after:
        out.append(DueReminder("escalation", f"{due}{tag}", cid, due=due, days=delta))
    return out


def _waiting_reminder(item: Item, state: str, prefix: str, today: date, settings: PolicySettings,
                      calendar: WorkCalendar) -> DueReminder | None:
    """A backlog reminder when ``item`` has waited in ``state`` more than ``backlog_days`` working days,
    then every ``backlog_days`` more, at most ``backlog_max`` times; counted from the submission."""
    k = settings.backlog_days
    if item.state != state or item.submitted_on is None or k <= 0:
        return None
    waited = calendar.working_days_between(item.submitted_on, today)
    if waited <= k:
        return None
    stage = (waited - k - 1) // k
    if stage >= settings.backlog_max:
        return None
    since = (item.submitted_at or datetime.combine(item.submitted_on, time())).strftime("%Y%m%dT%H%M%S")
    return DueReminder("backlog", f"{prefix}{since}/{stage + 1}", item.contribution_id, days=waited)


def backlog_reminder(item: Item, today: date, settings: PolicySettings,
                     calendar: WorkCalendar) -> DueReminder | None:
    """A reminder to reviewers when a submission has waited more than ``backlog_days`` working days."""
    return _waiting_reminder(item, "submitted", "", today, settings, calendar)


def unit_review_reminder(item: Item, today: date, settings: PolicySettings,
                         calendar: WorkCalendar) -> DueReminder | None:
    """A reminder to the unit heads when material has waited for their decision (待单位审核) more than
    ``backlog_days`` working days. Entering unit review is a submission, so ``submitted_on`` is when
    the wait began; a resubmission after 退回 starts a fresh series."""
    return _waiting_reminder(item, "unit_review", UNIT_REVIEW_PREFIX, today, settings, calendar)


def digest_reminder(cycle_id: int, today: date, settings: PolicySettings) -> DueReminder | None:
    if not settings.daily_digest:
        return None
    return DueReminder("digest", f"{today}", cycle_id=cycle_id)


def due_reminders(cycle_id: int, items: list[Item], local_now: datetime, settings: PolicySettings,
                  calendar: WorkCalendar, opened: date | None = None) -> list[DueReminder]:
    """Everything due for one collecting cycle at ``local_now``; ``opened``: the local day the cycle
    was last opened."""
    today = sweep_day(local_now, settings, calendar)
    if today is None:
        return []
    out: list[DueReminder] = []
    for item in items:
        out.extend(contribution_reminders(item, today, settings, calendar, opened))
        for waiting in (backlog_reminder, unit_review_reminder):
            found = waiting(item, today, settings, calendar)
            if found:
                out.append(found)
    digest = digest_reminder(cycle_id, today, settings)
    if digest:
        out.append(digest)
    return out


# ------------------------------------------------------------------ where today's reminders fall

# Bounds the walk back through the calendar (about 30 years), as in workdays.py.
_MAX_WALK = 11_000


@dataclass(frozen=True)
class StageRange:
    """The contributions in ``states`` whose day (the due date, or the local day of the latest
    submission) lies in ``first``..``last`` (``first`` None: every earlier day too) have a reminder
    of ``kind`` due today, with the occurrence ``prefix`` + the due date or submission time +
    ``suffix``. ``suffix`` None: the occurrence does not have that form; select without it.

    The ranges are read off the policy functions above, date by date, so that the database can
    select the few contributions concerned while the policy stays the one place that decides.
    """

    kind: str
    states: tuple[str, ...]
    first: date | None
    last: date
    prefix: str = ""
    suffix: str | None = ""


def _days_back(today: date, limit: int, calendar: WorkCalendar) -> date:
    """The latest day d before ``today`` with more than ``limit`` working days in (d, today]."""
    day, count = today, 0
    for _ in range(_MAX_WALK):
        if count > limit:
            break
        count += calendar.is_working_day(day)
        day -= timedelta(days=1)
    return day


def _ranges(per_day: list[tuple[date, list[tuple]]], open_first: date | None) -> tuple[StageRange, ...]:
    """Merge consecutive days giving the same (kind, states, prefix, suffix) into ranges."""
    out: list[StageRange] = []
    current: dict[tuple, list[date]] = {}
    previous: set[tuple] = set()
    for day, stages in per_day:
        found = set(stages)
        for stage in previous - found:
            first, last = current.pop(stage)
            out.append(StageRange(stage[0], stage[1], first, last, stage[2], stage[3]))
        for stage in found:
            if stage in current:
                current[stage][1] = day
            else:
                current[stage] = [None if day == open_first else day, day]
        previous = found
    for stage, (first, last) in current.items():
        out.append(StageRange(stage[0], stage[1], first, last, stage[2], stage[3]))
    return tuple(sorted(out, key=lambda r: (r.last, r.kind, r.prefix, r.suffix or "")))


def _suffix(occurrence: str, head: str) -> str | None:
    return occurrence[len(head):] if occurrence.startswith(head) else None


@lru_cache(maxsize=256)
def contribution_stages(today: date, settings: PolicySettings, calendar: WorkCalendar,
                        opened: date | None = None) -> tuple[StageRange, ...]:
    """The due dates of drafts and returned material that have a reminder due on ``today`` in a
    cycle last opened on ``opened``.

    Past ``limit`` working days overdue nothing changes any more (the overdue series is over; only
    the one-off escalation remains), and every due date before the open behaves alike (counted from
    the open), so the earliest range is open towards the past.
    """
    if not settings.enabled or not calendar.is_working_day(today):
        return ()
    top = calendar.add_working_days(today, max(settings.before_days, default=0) + 1) - timedelta(days=1)
    limit = max(settings.overdue_max * settings.overdue_every, settings.escalate_after, 1)
    bottom = _days_back(today, limit, calendar)
    if opened is not None and opened <= today:
        bottom = min(bottom, opened - timedelta(days=1))
    per_day = []
    day = bottom
    while day <= top:
        item = Item(0, REMINDABLE_STATES[0], day)
        per_day.append((day, [(r.kind, REMINDABLE_STATES, "", _suffix(r.occurrence, day.isoformat()))
                              for r in contribution_reminders(item, today, settings, calendar, opened)]))
        day += timedelta(days=1)
    return _ranges(per_day, bottom)


@lru_cache(maxsize=256)
def waiting_stages(today: date, settings: PolicySettings,
                   calendar: WorkCalendar) -> tuple[StageRange, ...]:
    """The local days of submission of material waiting for review (``submitted``) or for the unit
    head (``unit_review``) that have a backlog reminder due on ``today``."""
    k = settings.backlog_days
    if not settings.enabled or not calendar.is_working_day(today) or k <= 0 or settings.backlog_max <= 0:
        return ()
    bottom = _days_back(today, k * (settings.backlog_max + 1), calendar)
    per_day = []
    day = bottom + timedelta(days=1)
    while day <= today:
        at = datetime.combine(day, time())
        since = at.strftime("%Y%m%dT%H%M%S")
        stages = []
        for state, prefix, rule in (("submitted", "", backlog_reminder),
                                    ("unit_review", UNIT_REVIEW_PREFIX, unit_review_reminder)):
            found = rule(Item(0, state, None, day, at), today, settings, calendar)
            if found is not None:
                stages.append((found.kind, (state,), prefix, _suffix(found.occurrence, prefix + since)))
        per_day.append((day, stages))
        day += timedelta(days=1)
    return _ranges(per_day, None)
