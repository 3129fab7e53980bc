"""A cycle opened after its due dates: one overdue notice per contribution on the first run, and
escalation only at its own stage counted from the open (not a burst of every stage already past).

The expectations are computed here from ``chinese_calendar`` directly, and the sweep is run over the
days after the open against a real SMTP server that counts what arrives.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

import chinese_calendar
import pytest
from sqlalchemy import insert, select

from fazhi_flow.models import ReportCycle, Unit, User, UserRole
from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.reminders.policy import (
    REMINDABLE_STATES, Item, PolicySettings, contribution_reminders, contribution_stages, due_reminders,
)
from fazhi_flow.services.cycles import open_cycle

from .helpers import at
from .test_sweep_scale import statements

CAL = WorkCalendar()
P = PolicySettings()  # overdue on the 1st working day then every 2 (5 at most), escalation at 3
DUE = date(2024, 12, 20)  # long past when the cycle opens
OPENED = date(2025, 1, 13)  # Monday


def workdays(after: date, upto: date) -> int:
    return sum(1 for i in range(1, (upto - after).days + 1)
               if chinese_calendar.is_workday(after + timedelta(days=i)))


def kinds(day: date, opened: date | None = OPENED, due: date = DUE, settings: PolicySettings = P):
    got = due_reminders(7, [Item(1, "draft", due)], at(day.year, day.month, day.day), settings, CAL, opened)
    return sorted((r.kind, r.occurrence) for r in got if r.kind != "digest")


# ------------------------------------------------------------------ the pure policy


def test_without_the_open_every_past_stage_is_due_at_once():
    """What happened before: 15 working days overdue on the day of a late open, the overdue series was
    already over and the escalation went out at once, to unit heads and admins."""
    assert kinds(OPENED, opened=None) == [("escalation", "2024-12-20")]


def test_late_open_counts_the_overdue_series_and_escalation_from_the_open():
    tag = "2024-12-20/o20250113"
    assert kinds(OPENED) == [("overdue", f"{tag}/1")]
    assert kinds(date(2025, 1, 14)) == [("overdue", f"{tag}/1")]  # the same key: already sent
    assert kinds(date(2025, 1, 15)) == [("overdue", f"{tag}/2")]
    # Three working days after the open day (14, 15, 16 January): escalation, at its own stage.
    assert kinds(date(2025, 1, 16)) == [("escalation", tag), ("overdue", f"{tag}/2")]
    assert kinds(date(2025, 1, 17)) == [("escalation", tag), ("overdue", f"{tag}/3")]


def test_a_due_date_on_or_after_the_open_keeps_its_own_series():
    # Due the day of the open, overdue the next working day: counted from the due date as always.
    assert kinds(date(2025, 1, 14), due=OPENED) == [("overdue", "2025-01-13/1")]
    assert kinds(date(2025, 1, 16), due=OPENED) == [("escalation", "2025-01-13"), ("overdue", "2025-01-13/2")]
    assert kinds(OPENED, due=date(2025, 1, 14)) == [("before_due", "2025-01-14/1")]


def test_a_reopen_starts_a_fresh_series():
    """Reopened on 10 February: the keys carry the open, so the first overdue notice is not taken for
    the one sent after the first open."""
    first = {o for _k, o in kinds(OPENED)}
    again = kinds(date(2025, 2, 10), opened=date(2025, 2, 10))
    assert again == [("overdue", "2024-12-20/o20250210/1")] and not first & {o for _k, o in again}


def test_an_open_after_today_is_ignored():
    """opened_at stamped by the wall clock while a simulation sweeps earlier days: counted as before."""
    assert kinds(OPENED, opened=date(2026, 11, 30)) == kinds(OPENED, opened=None)


def test_an_open_on_a_holiday_counts_from_the_next_working_day():
    # Opened on Saturday 1 February 2025 (春节 holidays end 4 February; 8 February is a 调休 Saturday).
    opened = date(2025, 2, 1)
    assert kinds(date(2025, 2, 5), opened=opened) == [("overdue", "2024-12-20/o20250201/1")]
    escalated = [d for d in (date(2025, 2, 5) + timedelta(days=i) for i in range(10))
                 if chinese_calendar.is_workday(d) and ("escalation", "2024-12-20/o20250201") in kinds(d, opened)]
    assert escalated[0] == next(d for d in (opened + timedelta(days=i) for i in range(1, 20))
                                if workdays(opened, d) == P.escalate_after)


SETTINGS = [
    PolicySettings(),
    PolicySettings(before_days=(10, 2), on_due_day=False, overdue_every=1, overdue_max=3, escalate_after=0),
    PolicySettings(before_days=(), overdue_every=3, overdue_max=2, escalate_after=8),
]


def _in(r, day: date) -> bool:
    return (r.first is None or r.first <= day) and day <= r.last


@pytest.mark.parametrize("settings", SETTINGS, ids=["default", "custom", "sparse"])
@pytest.mark.parametrize("opened", [date(2025, 1, 13), date(2025, 1, 24), date(2024, 11, 4)],
                         ids=["monday", "before-new-year", "long-ago"])
def test_stage_ranges_agree_with_the_late_open_policy(settings, opened):
    """The SQL ranges the sweep selects by are read off the policy: they must name exactly the due
    dates the policy gives a reminder, for due dates before, at and after the open."""
    today = date(2025, 1, 13)  # also days before the open (an open after today is ignored)
    while today <= date(2025, 2, 14):
        if CAL.is_working_day(today):
            stages = contribution_stages(today, settings, CAL, opened)
            for offset in range(-160, 40, 3):
                due = today + timedelta(days=offset)
                want = {(r.kind, r.occurrence) for r in contribution_reminders(
                    Item(1, "draft", due), today, settings, CAL, opened)}
                got = {(r.kind, f"{r.prefix}{due.isoformat()}{r.suffix}") for r in stages
                       if "draft" in r.states and _in(r, due)}
                assert got == want, (today, due)
        today += timedelta(days=1)


# ------------------------------------------------------------------ the sweep, with a real SMTP server


def _late_cycle(factory, db, units: int):
    """A cycle in setup with ``units`` units, each with a liaison and a unit head, all due on DUE; one
    more unit due after the open (its reminders follow the ordinary series); an admin."""
    w = factory.world(state="setup")
    w.assignment.due = DUE
    s = db.session
    region = w.cycle.region_id  # core inserts: the region is named, as every writer must
    s.execute(insert(Unit), [{"code": f"late{i}", "name": f"逾期单位{i:02d}", "kind": "government", "region_id": region}
                             for i in range(units - 1)])
    unit_ids = s.scalars(select(Unit.id).where(Unit.code.like("late%")).order_by(Unit.id)).all()
    for role in ("liaison", "unit_head"):
        s.execute(insert(User), [{"username": f"{role}{u}", "name": f"{role}{u}", "email": f"{role}{u}@example.test",
                                  "unit_id": u, "region_id": region} for u in unit_ids])
        ids = s.scalars(select(User.id).where(User.username.like(f"{role}%"))).all()
        s.execute(insert(UserRole), [{"user_id": i, "role": role} for i in ids])
    for u in unit_ids:
        factory.assignment(w.section, db.session.get(Unit, u), role="support", due=DUE)
    ontime = factory.assignment(factory.section(w.cycle, "加强行政复议", reviewers=[w.reviewer]), w.other_unit,
                                due=date(2025, 1, 24))
    db.session.commit()
    return w, ontime


def _open_late(w, db, moment: datetime):
    """Open through the service; the wall clock then says 2026, so the open is put at ``moment``."""
    from fazhi_flow.models import Contribution

    db.session.delete(w.contribution)  # world() made one already; open creates them all
    db.session.flush()
    open_cycle(w.cycle, w.admin)
    cycle = db.session.get(ReportCycle, w.cycle.id)
    cycle.opened_at = moment.astimezone(timezone.utc).replace(tzinfo=None)
    db.session.commit()
    return {c.id: c.assignment.due for c in db.session.scalars(
        select(Contribution).where(Contribution.cycle_id == cycle.id))}


def _kind(msg) -> str:
    return msg["X-Fazhi-Reminder-Key"].split(":")[1] if msg["X-Fazhi-Reminder-Key"] else "other"


def test_late_open_sweeps_send_one_overdue_notice_each_and_escalate_at_the_stage(factory, db, smtp):
    units = 8
    w, ontime = _late_cycle(factory, db, units)
    dues = _open_late(w, db, at(2025, 1, 13, 10, 0))
    late = [cid for cid, due in dues.items() if due == DUE]
    assert len(late) == units
    admins = 1

    # The first run after the open: one overdue notice per late contribution, to its liaison; no
    # escalation and nothing else about them.
    sweep(at(2025, 1, 13, 10, 2))
    deliver(at(2025, 1, 13, 10, 3))
    first = Counter(_kind(m) for m in smtp.messages)
    assert first["overdue"] == units and first["escalation"] == 0, first
    per_contribution = Counter(m["X-Fazhi-Contribution"] for m in smtp.messages if _kind(m) == "overdue")
    assert set(per_contribution.values()) == {1} and len(per_contribution) == units

    # The following days, several runs a day: the overdue series and the escalation at their stages.
    seen: dict[date, Counter] = {}
    day = date(2025, 1, 13)
    while day <= date(2025, 2, 14):
        for hh, mm in ((9, 0), (9, 30), (15, 0)):
            if (day, hh) == (date(2025, 1, 13), 9):
                continue  # before the open
            before = len(smtp.messages)
            sweep(at(day.year, day.month, day.day, hh, mm))
            deliver(at(day.year, day.month, day.day, hh, mm + 1))
            for m in smtp.messages[before:]:
                if m["X-Fazhi-Contribution"] and int(m["X-Fazhi-Contribution"]) in late:
                    seen.setdefault(day, Counter())[_kind(m)] += 1
        day += timedelta(days=1)

    # Expected, straight from the calendar: overdue on working days 1, 3, 5, 7, 9 counted from the
    # open day; escalation once, on the 3rd working day after the open day.
    want: dict[date, Counter] = {}
    day = date(2025, 1, 14)
    while day <= date(2025, 2, 14):
        n = workdays(date(2025, 1, 12), day)
        if chinese_calendar.is_workday(day):
            if n in (3, 5, 7, 9):
                want.setdefault(day, Counter())["overdue"] += units
            if workdays(date(2025, 1, 13), day) == P.escalate_after:
                want.setdefault(day, Counter())["escalation"] += units * (1 + admins)  # its unit head, the admin
        day += timedelta(days=1)
    assert seen == want
    assert min(d for d, c in seen.items() if c["escalation"]) == date(2025, 1, 16)


def test_the_sweep_reads_the_open_without_extra_statements(factory, db):
    """Passing the open to the policy costs nothing: a late-opened cycle's sweep sends as many
    statements as the same cycle without an open moment."""
    counts = []
    for opened in (None, at(2025, 1, 13, 10, 0)):
        w, _ontime = _late_cycle(factory, db, 4)
        _open_late(w, db, at(2025, 1, 13, 10, 0))
        cycle = db.session.get(ReportCycle, w.cycle.id)
        cycle.opened_at = opened.astimezone(timezone.utc).replace(tzinfo=None) if opened else None
        db.session.commit()
        with statements(db) as seen:
            result = sweep(at(2025, 1, 16, 9, 5))
        counts.append(len(seen))
        assert result.queued
        from .test_sweep_scale import wipe

        wipe(db)
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("state", REMINDABLE_STATES)
def test_only_draft_and_returned_material_is_chased_after_a_late_open(state):
    assert contribution_reminders(Item(1, state, DUE), OPENED, P, CAL, OPENED)
    assert contribution_reminders(Item(1, "submitted", DUE), OPENED, P, CAL, OPENED) == []
