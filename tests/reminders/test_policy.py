"""The policy as pure functions: which reminders are due on which day."""
from datetime import date, time, timedelta

from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.reminders.policy import Item, PolicySettings, due_reminders, sweep_day

from .helpers import at

CAL = WorkCalendar()
P = PolicySettings()
DUE = date(2025, 1, 10)  # a Friday


def kinds_on(day, item=None, settings=P, hh=9):
    item = item or Item(1, "draft", DUE)
    got = due_reminders(7, [item], at(day.year, day.month, day.day, hh), settings, CAL)
    return sorted((r.kind, r.occurrence) for r in got if r.kind != "digest")


def test_schedule_of_one_draft_day_by_day():
    seen = {}
    day = date(2024, 12, 30)
    while day <= date(2025, 1, 31):
        for kind, occ in kinds_on(day):
            seen.setdefault((kind, occ), []).append(day)
        day += timedelta(days=1)
    first = {stage: days[0] for stage, days in seen.items()}
    # Swept daily, each stage first falls due on its exact day (1 Jan is a holiday, weekends are off);
    # while it stays current it is due again, and the unique key turns those repeats into no-ops.
    assert first == {
        ("before_due", "2025-01-10/5"): date(2025, 1, 3),
        ("before_due", "2025-01-10/3"): date(2025, 1, 7),
        ("before_due", "2025-01-10/1"): date(2025, 1, 9),
        ("due_today", "2025-01-10"): date(2025, 1, 10),
        ("overdue", "2025-01-10/1"): date(2025, 1, 13),
        ("overdue", "2025-01-10/2"): date(2025, 1, 15),
        ("overdue", "2025-01-10/3"): date(2025, 1, 17),
        ("overdue", "2025-01-10/4"): date(2025, 1, 21),
        ("overdue", "2025-01-10/5"): date(2025, 1, 23),
        ("escalation", "2025-01-10"): date(2025, 1, 15),
    }
    assert seen[("before_due", "2025-01-10/3")] == [date(2025, 1, 7), date(2025, 1, 8)]
    assert seen[("overdue", "2025-01-10/3")] == [date(2025, 1, 17), date(2025, 1, 20)]
    # The unique key makes the repeats of a stage on later days no-ops: one message per stage.


def test_nothing_on_non_working_days_or_before_send_time():
    assert kinds_on(date(2025, 1, 4)) == []            # Saturday
    assert kinds_on(date(2025, 1, 1)) == []            # 元旦
    assert kinds_on(date(2025, 1, 9), hh=8) == []      # before 09:00
    later = PolicySettings(send_time=time(14, 30))
    assert kinds_on(date(2025, 1, 9), settings=later, hh=14) == []
    assert kinds_on(date(2025, 1, 9), settings=later, hh=15) == [("before_due", "2025-01-10/1")]
    assert sweep_day(at(2025, 1, 9, 9), PolicySettings(enabled=False), CAL) is None


def test_stale_stages_are_skipped_after_downtime():
    # Down from 3 to 8 January: on the 8th two working days are left, so the "3 days" stage is
    # still current and goes out; the "5 days" stage is stale and never does.
    assert kinds_on(date(2025, 1, 8)) == [("before_due", "2025-01-10/3")]
    # After the date no before-due reminder at all.
    assert all(k != "before_due" for k, _ in kinds_on(date(2025, 1, 13)))


def test_only_drafts_and_returned_material_is_chased():
    for state in ("submitted", "unit_review", "approved"):
        assert kinds_on(date(2025, 1, 9), Item(1, state, DUE)) == []
    assert kinds_on(date(2025, 1, 9), Item(1, "returned", DUE)) == [("before_due", "2025-01-10/1")]


def test_overdue_cap_escalation_and_switches():
    settings = PolicySettings(overdue_every=1, overdue_max=2, escalate_after=0, on_due_day=False,
                              before_days=())
    assert kinds_on(date(2025, 1, 10), settings=settings) == []
    assert kinds_on(date(2025, 1, 13), settings=settings) == [("overdue", "2025-01-10/1")]
    assert kinds_on(date(2025, 1, 14), settings=settings) == [("overdue", "2025-01-10/2")]
    assert kinds_on(date(2025, 1, 15), settings=settings) == []


def test_backlog_after_k_working_days():
    from datetime import datetime

    item = Item(1, "submitted", DUE, submitted_on=date(2025, 1, 6), submitted_at=datetime(2025, 1, 6, 2))
    days = {}
    day = date(2025, 1, 6)
    while day <= date(2025, 1, 31):
        for r in due_reminders(7, [item], at(day.year, day.month, day.day), P, CAL):
            if r.kind == "backlog":
                days.setdefault(r.occurrence, day)
        day += timedelta(days=1)
    # More than 2 working days waited: first on the 3rd working day, then every 2, at most 3 times.
    assert days == {"20250106T020000/1": date(2025, 1, 9), "20250106T020000/2": date(2025, 1, 13),
                    "20250106T020000/3": date(2025, 1, 15)}


def test_due_on_a_weekend_reminds_on_the_last_working_day():
    item = Item(1, "draft", date(2025, 1, 12))  # Sunday
    assert kinds_on(date(2025, 1, 10), item) == [("due_today", "2025-01-12")]
    assert kinds_on(date(2025, 1, 13), item) == [("overdue", "2025-01-12/1")]
