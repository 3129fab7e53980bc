"""A simulated month: sweeps and deliveries several times a day against a real SMTP server.

The expected reminders are computed here independently, straight from ``chinese_calendar``, and
compared with the e-mails the server received, per contribution and kind.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import chinese_calendar
from sqlalchemy import select

from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.services import contributions as csvc

from .helpers import at

TIMES = [(8, 0), (9, 0), (9, 30), (13, 0), (18, 0)]
START, END = date(2025, 1, 1), date(2025, 2, 14)


def workdays(after: date, upto: date) -> int:
    return sum(1 for i in range(1, (upto - after).days + 1)
               if chinese_calendar.is_workday(after + timedelta(days=i)))


def days():
    day = START
    while day <= END:
        yield day
        day += timedelta(days=1)


def run_moments() -> list[datetime]:
    return [at(day.year, day.month, day.day, hh, mm) for day in days() for hh, mm in TIMES]


@dataclass(frozen=True)
class Due:
    """One reminder the policy calls for: about material ``cid`` (None: the cycle's digest), of
    ``kind`` (as ``kind_of`` tells it), for local day ``day``, queued by the sweep at ``queued``."""

    cid: int | None
    kind: str
    day: date
    queued: datetime

    @property
    def group(self) -> str:
        # A newer reminder of the same group about the same material makes an older one void.
        return "unit" if self.kind in ("before_due", "due_today", "overdue") else self.kind


def due_reminders(cid: int, due: date, submitted: datetime | None) -> list[Due]:
    """Default policy: 5/3/1 before, due day, overdue 1st then every 2 (max 5), escalation at 3;
    queued at the 09:00 sweep of a working day while the material is not submitted."""
    out = []
    for day in days():
        nine = at(day.year, day.month, day.day)
        if not chinese_calendar.is_workday(day) or (submitted is not None and submitted <= nine):
            continue
        if day <= due:
            left = workdays(day, due)
            kind = "before_due" if left in (5, 3, 1) else "due_today" if left == 0 else None
            out += [Due(cid, kind, day, nine)] if kind else []
        else:
            late = workdays(due, day)
            out += [Due(cid, "overdue", day, nine)] if late in (1, 3, 5, 7, 9) else []
            out += [Due(cid, "escalation", day, nine)] if late == 3 else []
    return out


def waiting_reminders(cid: int, entered: datetime, decided: datetime) -> list[Due]:
    """Material in unit review (待单位审核) from ``entered`` until the unit head agrees at ``decided``.

    Default policy: more than 2 working days waited, then every 2 more, at most 3 times; to the unit
    heads while it waits for them, afterwards to the reviewers (the wait counts from the submission).
    Each stage is queued by the first sweep that finds it.
    """
    first: dict[tuple[str, int], datetime] = {}
    for moment in run_moments():
        day = moment.date()
        if not chinese_calendar.is_workday(day) or (moment.hour, moment.minute) < (9, 0) or moment < entered:
            continue
        waited = workdays(entered.date(), day)
        if waited > 2 and (waited - 3) // 2 < 3:
            first.setdefault(("unit_review" if moment < decided else "backlog", (waited - 3) // 2), moment)
    return [Due(cid, kind, moment.date(), moment) for (kind, _stage), moment in first.items()]


def digests() -> list[Due]:
    return [Due(None, "digest", day, at(day.year, day.month, day.day)) for day in days()
            if chinese_calendar.is_workday(day)]


def expected_for(due: date, submitted: datetime | None) -> Counter:
    return Counter(r.kind for r in due_reminders(0, due, submitted))


def expected_waiting(entered: datetime, decided: datetime) -> Counter:
    return Counter(r.kind for r in waiting_reminders(0, entered, decided))


def never_failing(moment: datetime) -> bool:
    return False


def outcomes(plan, waiting, failing=never_failing) -> dict[Due, tuple[str, object]]:
    """What must become of every reminder: ("sent", the run it arrives in) or ("cancelled", why).

    A reminder goes out in the first run from its sweep on that is on a working day from 09:00 and
    in which the server takes mail (``failing`` says when it does not), unless by that run it has
    become void: the material was submitted (or the unit head decided), the due date passed (a
    reminder before or on it), a newer reminder of its group about the same material was queued, or
    (a digest) its day is over.
    """
    wanted = [r for cid, (due, submitted) in plan.items() for r in due_reminders(cid, due, submitted)]
    wanted += [r for cid, (entered, decided) in waiting.items() for r in waiting_reminders(cid, entered, decided)]
    wanted += digests()
    moments = run_moments()
    result = {}
    for r in wanted:
        newer = [o.queued for o in wanted if o.cid == r.cid and o.group == r.group and o.queued > r.queued]
        due, submitted = plan.get(r.cid, (None, None))
        for moment in (m for m in moments if m >= r.queued):
            if r.kind == "digest":
                why = "day over" if moment.date() > r.day else "superseded" if newer and min(newer) <= moment else None
            elif r.kind == "unit_review":
                why = "decided" if waiting[r.cid][1] <= moment else None
            elif r.kind == "backlog":
                why = None  # the reviewer never decides within the month
            else:
                why = ("submitted" if submitted is not None and submitted <= moment
                       else "due passed" if r.kind in ("before_due", "due_today") and moment.date() > due else None)
            if why is None and newer and min(newer) <= moment:
                why = "superseded"
            if why is not None:
                result[r] = ("cancelled", why)
                break
            if not failing(moment) and chinese_calendar.is_workday(moment.date()) and (moment.hour, moment.minute) >= (9, 0):
                result[r] = ("sent", moment)
                break
        else:
            result[r] = ("pending", None)
    return result


REASONS = {  # the start of the reason an outbox row gives, by why the model says it is void
    "superseded": "已过时：已有更新的提醒",
    "submitted": "材料已提交",
    "decided": "单位负责人已处理该材料",
    "due passed": "已过时：截止日期已过",
    "day over": "已过时：",
}


# One material waits for its unit head from Monday 6 January 10:00 until the head agrees on 14 January.
WAITING = (at(2025, 1, 6, 10, 0), at(2025, 1, 14, 10, 0))


def kind_of(key: str) -> str:
    """The kind a mail counts as; the unit-head backlog reminder is told apart by its occurrence."""
    kind = key.split(":")[1]
    return "unit_review" if key.split(":", 2)[2].startswith("unit/") and kind == "backlog" else kind


def build(factory, db):
    w = factory.world()
    plan = {}  # contribution id -> (due, submitted-at or None)
    specs = [(w.unit, date(2025, 1, 10), None),
             (w.other_unit, date(2025, 1, 15), None),
             (factory.unit("区人社局"), date(2025, 1, 20), at(2025, 1, 14, 10, 0)),
             (factory.unit("区公安分局"), date(2025, 1, 24), at(2025, 1, 23, 16, 0))]
    contributions = {}
    for i, (unit, due, submitted) in enumerate(specs):
        if i == 0:
            c = w.contribution
            w.assignment.due = due
        else:
            a = factory.assignment(factory.section(w.cycle, f"章节{i}", reviewers=[w.reviewer]), unit, due=due)
            c = factory.contribution(a)
            if unit not in (w.other_unit,):
                factory.user("liaison", unit=unit)
        contributions[c.id] = c
        plan[c.id] = (due, submitted)
    # Due long after the month, so only the waiting reminders concern it.
    unit = factory.unit("区财政局")
    factory.user("unit_head", unit=unit)
    a = factory.assignment(factory.section(w.cycle, "章节5", reviewers=[w.reviewer]), unit, due=date(2025, 3, 31))
    c = factory.contribution(a, state="unit_review")
    c.submitted_at = WAITING[0].astimezone(timezone.utc).replace(tzinfo=None)
    contributions[c.id] = c
    plan[c.id] = (date(2025, 3, 31), None)
    waiting = {c.id: WAITING}
    db.session.commit()
    return w, plan, contributions, waiting


def liaison_of(c):
    from fazhi_flow.models import User, UserRole
    from fazhi_flow.extensions import db

    return db.session.scalars(select(User).join(UserRole).where(User.unit_id == c.unit_id,
                                                                UserRole.role == "liaison")).first()


def unit_head_of(c):
    from fazhi_flow.models import User, UserRole
    from fazhi_flow.extensions import db

    return db.session.scalars(select(User).join(UserRole).where(User.unit_id == c.unit_id,
                                                                UserRole.role == "unit_head")).first()


def run_month(db, smtp, plan, contributions, waiting, trouble=lambda moment: None):
    received = []  # (moment, message)
    day = START
    while day <= END:
        for hh, mm in TIMES:
            moment = at(day.year, day.month, day.day, hh, mm)
            trouble(moment)
            for cid, (_due, submitted) in plan.items():
                c = contributions[cid]
                if submitted is not None and submitted <= moment and c.state == "draft":
                    csvc.submit_contribution(c, liaison_of(c))
                    db.session.commit()
            for cid, (_entered, decided) in waiting.items():
                c = contributions[cid]
                if decided <= moment and c.state == "unit_review":
                    csvc.unit_approve_contribution(c, unit_head_of(c))
                    db.session.commit()
            sweep(moment)
            before = len(smtp.messages)
            deliver(moment)
            received += [(moment, m) for m in smtp.messages[before:]]
        day += timedelta(days=1)
    return received


def reminder_kind(r: Reminder) -> str:
    """The kind a reminder counts as; the unit-head backlog reminder is told apart by its occurrence."""
    return "unit_review" if r.kind == "backlog" and (r.occurrence or "").startswith("unit/") else r.kind


def what_became(db, received) -> dict[tuple, tuple[str, object]]:
    """What became of every reminder queued: ("sent", the run its mails arrived in),
    ("cancelled", the reasons its outbox rows give), or what else its rows say."""
    arrivals = defaultdict(set)
    for moment, m in received:
        if m["X-Fazhi-Cause"] == "reminder":
            arrivals[m["X-Fazhi-Reminder-Key"]].add(moment)
    rows = defaultdict(list)
    for row in db.session.scalars(select(OutboxMessage).where(OutboxMessage.reminder_id.is_not(None))):
        rows[row.reminder_id].append(row)
    became = {}
    for r in db.session.scalars(select(Reminder)):
        statuses = {row.status for row in rows[r.id]}
        if statuses == {"sent"}:
            outcome = ("sent", min(arrivals[r.key]) if len(arrivals[r.key]) == 1 else sorted(arrivals[r.key]))
        elif statuses == {"cancelled"}:
            outcome = ("cancelled", sorted({row.last_error for row in rows[r.id]}))
        else:
            outcome = ("rows", sorted(statuses))  # none (no recipient), mixed, pending or dead
        became[(r.contribution_id, reminder_kind(r), r.day)] = outcome
    return became


def check(db, received, plan, waiting, failing=never_failing):
    reminder_mails = [(t, m) for t, m in received if m["X-Fazhi-Cause"] == "reminder"]
    per_key_addr = Counter((m["X-Fazhi-Reminder-Key"], m["To"].addresses[0].addr_spec) for _t, m in reminder_mails)
    assert max(per_key_addr.values()) == 1, "a reminder reached someone twice"
    keys = {r.key: r for r in db.session.scalars(select(Reminder))}
    got = defaultdict(Counter)
    for t, m in reminder_mails:
        # Never on a non-working day, never before the send time.
        assert chinese_calendar.is_workday(t.date()) and (t.hour, t.minute) >= (9, 0), (t, m["Subject"])
        r = keys[m["X-Fazhi-Reminder-Key"]]
        if r.contribution_id is None:
            continue
        _due, submitted = plan[r.contribution_id]
        assert submitted is None or t < submitted, f"reminder after submission: {m['Subject']}"
        got[r.contribution_id][kind_of(r.key)] += 1
        if r.contribution_id in waiting and kind_of(r.key) == "unit_review":
            assert t >= waiting[r.contribution_id][0] and t < waiting[r.contribution_id][1], m["Subject"]

    # Every reminder the policy calls for was queued once, and nothing else; each arrived in the run
    # the model says, or was cancelled for the reason it says.
    expected = {(r.cid, r.kind, r.day): outcome for r, outcome in outcomes(plan, waiting, failing).items()}
    became = what_became(db, received)
    assert sorted(became, key=repr) == sorted(expected, key=repr)
    sent = {k: v[1] for k, v in expected.items() if v[0] == "sent"}
    cancelled = {k: v[1] for k, v in expected.items() if v[0] == "cancelled"}
    assert not set(expected) - set(sent) - set(cancelled), "the model left a reminder pending"
    assert {k: v[1] for k, v in became.items() if v[0] == "sent"} == sent
    assert {k for k, v in became.items() if v[0] == "cancelled"} == set(cancelled)
    for k, why in cancelled.items():
        for reason in became[k][1]:
            assert reason.startswith(REASONS[why]), (k, why, reason)
    return got, sent, cancelled


def test_simulated_month(factory, db, app, smtp):
    w, plan, contributions, waiting = build(factory, db)
    received = run_month(db, smtp, plan, contributions, waiting)
    got, sent, cancelled = check(db, received, plan, waiting)
    # Nothing fails, so nothing is void: every reminder arrives at its sweep's run.
    assert cancelled == {}
    # The first unit's material was never submitted: 3 before, due day, 5 overdue (cap).
    assert got[w.contribution.id] == Counter(before_due=3, due_today=1, overdue=5, escalation=2)
    # The unit head was reminded on 9 and 13 January, the reviewer on 14 and 15 January after the head agreed.
    (waiting_id,) = waiting
    assert got[waiting_id] == Counter(unit_review=2, backlog=2)
    working = sum(1 for day in days() if chinese_calendar.is_workday(day))
    assert sum(1 for cid, kind, _day in sent if kind == "digest") == working


def failing_server(moment: datetime) -> bool:
    """451 for every message from 7 Jan 09:00 to 9 Jan 12:00; the server is down all of 14 Jan."""
    return at(2025, 1, 7, 9) <= moment < at(2025, 1, 9, 12) or at(2025, 1, 14, 0) <= moment < at(2025, 1, 15, 0)


def test_simulated_month_with_a_failing_smtp_server(factory, db, app, smtp):
    w, plan, contributions, waiting = build(factory, db)

    def trouble(moment):
        busy = at(2025, 1, 7, 9) <= moment < at(2025, 1, 9, 12)
        smtp.handler.always = "451 4.3.2 System busy" if busy else None
        down = failing_server(moment) and not busy
        if down and smtp.controller is not None:
            smtp.stop()
        elif not down and smtp.controller is None:
            smtp.start()

    received = run_month(db, smtp, plan, contributions, waiting, trouble)
    got, sent, cancelled = check(db, received, plan, waiting, failing_server)
    # What the failures did, as the model tells it: reminders still waiting when the next stage of
    # their material was queued are void; the others arrived in the first run the server took mail.
    (waiting_id,) = waiting
    second = next(cid for cid, (due, _s) in plan.items() if due == date(2025, 1, 15))
    assert {k: why for k, why in cancelled.items() if k[0] is not None} == {
        (w.contribution.id, "before_due", date(2025, 1, 7)): "superseded",  # 3 left, then 1 left on 9 Jan
        (second, "before_due", date(2025, 1, 14)): "superseded",  # 1 left, then the due day on 15 Jan
        (waiting_id, "backlog", date(2025, 1, 14)): "superseded",  # the reviewer's 1st, then the 2nd on 15 Jan
    }
    assert sent[(second, "before_due", date(2025, 1, 8))] == at(2025, 1, 9, 13)
    assert sent[(w.contribution.id, "before_due", date(2025, 1, 9))] == at(2025, 1, 9, 13)
    assert sent[(waiting_id, "unit_review", date(2025, 1, 9))] == at(2025, 1, 9, 13)
    # The digests of 7, 8 and 14 January never found the server on their day.
    assert sorted(day for cid, kind, day in cancelled if kind == "digest") == [
        date(2025, 1, 7), date(2025, 1, 8), date(2025, 1, 14)]
    # No reminder is left behind (the reviewers' "to review" mails carry the real clock's time).
    left = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.cause == "reminder", OutboxMessage.status.in_(("pending", "sending", "dead")))).all()
    assert left == []
    assert smtp.handler.messages, "the server received mail after it recovered"
