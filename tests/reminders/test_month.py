"""A simulated month: sweeps and deliveries several times a day against a real SMTP server.

The expected reminders are computed here independently, straight from ``chinese_calendar``, and
compared with the e-mails the server received, per contribution and kind.
"""
from __future__ import annotations

from collections import Counter, defaultdict
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


def expected_for(due: date, submitted: datetime | None) -> Counter:
    """Default policy: 5/3/1 before, due day, overdue 1st then every 2 (max 5), escalation at 3."""
    got = Counter()
    day = START
    while day <= END:
        if chinese_calendar.is_workday(day) and (submitted is None or at(day.year, day.month, day.day) < submitted):
            if day <= due:
                left = workdays(day, due)
                if left in (5, 3, 1):
                    got["before_due"] += 1
                elif left == 0:
                    got["due_today"] += 1
            else:
                late = workdays(due, day)
                if late in (1, 3, 5, 7, 9):
                    got["overdue"] += 1
                if late == 3:
                    got["escalation"] += 1
        day += timedelta(days=1)
    return got


def expected_waiting(entered: datetime, decided: datetime) -> Counter:
    """Material in unit review (待单位审核) from ``entered`` until the unit head agrees at ``decided``.

    Default policy: more than 2 working days waited, then every 2 more, at most 3 times; to the unit
    heads while it waits for them, afterwards to the reviewers (the wait counts from the submission).
    """
    stages = set()
    day = START
    while day <= END:
        for hh, mm in TIMES:
            moment = at(day.year, day.month, day.day, hh, mm)
            if not chinese_calendar.is_workday(day) or (hh, mm) < (9, 0) or moment < entered:
                continue
            waited = workdays(entered.date(), day)
            if waited > 2 and (waited - 3) // 2 < 3:
                stages.add(("unit_review" if moment < decided else "backlog", (waited - 3) // 2))
        day += timedelta(days=1)
    return Counter(who for who, _stage in stages)


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


def check(db, received, plan, waiting, *, allow_cancelled=False):
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
        got[r.contribution_id][kind_of(r.key)] += 1 if m["To"].addresses[0].addr_spec != "" else 0
        if r.contribution_id in waiting and kind_of(r.key) == "unit_review":
            assert t >= waiting[r.contribution_id][0] and t < waiting[r.contribution_id][1], m["Subject"]
    sent_keys = {m["X-Fazhi-Reminder-Key"] for _t, m in reminder_mails}
    waiting_kinds = ("unit_review", "backlog")
    for cid, (entered, decided) in waiting.items():
        # Counted per reminder (each went to one unit head, or to the one reviewer).
        expected = expected_waiting(entered, decided)
        if not allow_cancelled:
            assert Counter(kind_of(k) for k in sent_keys if k.startswith(f"c{cid}:")) == expected, cid
            assert Counter({k: v for k, v in got[cid].items() if k in waiting_kinds}) == expected, cid
        # With failures a reminder still waiting when the next stage's is queued is cancelled as stale
        # (checked with the other rows below): what arrived is at most what was expected.
        assert not Counter(kind_of(k) for k in sent_keys if k.startswith(f"c{cid}:")) - expected, cid
        queued = Counter(kind_of(r.key) for r in keys.values() if r.contribution_id == cid)
        assert queued == expected, cid
    for cid, (due, submitted) in plan.items():
        expected = expected_for(due, submitted)
        liaison_kinds = Counter({k: v for k, v in got[cid].items()
                                 if k != "escalation" and (cid not in waiting or k not in waiting_kinds)})
        escalations = sum(1 for k in sent_keys if k.startswith(f"c{cid}:escalation:"))
        if not allow_cancelled:
            assert liaison_kinds == Counter({k: v for k, v in expected.items() if k != "escalation"}), cid
            assert escalations == expected["escalation"], cid
        else:
            # Every expected reminder was queued once; each either arrived or was cancelled as stale.
            queued = Counter(r.kind for r in keys.values() if r.contribution_id == cid
                             and (cid not in waiting or kind_of(r.key) not in waiting_kinds))
            assert queued == expected, cid
            for r in (r for r in keys.values() if r.contribution_id == cid):
                rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.reminder_id == r.id)).all()
                assert rows and all(row.status in ("sent", "cancelled") for row in rows), r.key
                if r.kind in ("overdue", "escalation"):
                    assert all(row.status == "sent" for row in rows), r.key
                for row in rows:
                    if row.status == "cancelled":
                        assert "已过时" in row.last_error
    digests = [m for _t, m in reminder_mails if ":digest:" in m["X-Fazhi-Reminder-Key"]]
    working = sum(1 for i in range((END - START).days + 1) if chinese_calendar.is_workday(START + timedelta(days=i)))
    if not allow_cancelled:
        assert len(digests) == working
    return got


def test_simulated_month(factory, db, app, smtp):
    w, plan, contributions, waiting = build(factory, db)
    received = run_month(db, smtp, plan, contributions, waiting)
    got = check(db, received, plan, waiting)
    # The first unit's material was never submitted: 3 before, due day, 5 overdue (cap).
    assert got[w.contribution.id] == Counter(before_due=3, due_today=1, overdue=5, escalation=2)
    # The unit head was reminded on 9 and 13 January, the reviewer on 14 and 15 January after the head agreed.
    (waiting_id,) = waiting
    assert got[waiting_id] == Counter(unit_review=2, backlog=2)


def test_simulated_month_with_a_failing_smtp_server(factory, db, app, smtp):
    w, plan, contributions, waiting = build(factory, db)

    def trouble(moment):
        # 451 for every message from 7 Jan 09:00 to 9 Jan 12:00; the server is down all of 14 Jan.
        smtp.handler.always = "451 4.3.2 System busy" if at(2025, 1, 7, 9) <= moment < at(2025, 1, 9, 12) else None
        down = at(2025, 1, 14, 0) <= moment < at(2025, 1, 15, 0)
        if down and smtp.controller is not None:
            smtp.stop()
        elif not down and smtp.controller is None:
            smtp.start()

    received = run_month(db, smtp, plan, contributions, waiting, trouble)
    check(db, received, plan, waiting, allow_cancelled=True)
    # No reminder is left behind (the reviewers' "to review" mails carry the real clock's time).
    left = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.cause == "reminder", OutboxMessage.status.in_(("pending", "sending", "dead")))).all()
    assert left == []
    assert smtp.handler.messages, "the server received mail after it recovered"
