"""Working days with the official Chinese holiday and 调休 calendar, and deadlines counted in them.

A neutral module: the reminders, the notifications, the services and the pages all count working days,
so it imports none of them (tests/core/test_import_layers.py holds the layering).

The ``chinesecalendar`` package (import name ``chinese_calendar``) knows the State Council's holiday
arrangements for the years it ships (2004–2026 in version 1.11). For a year it does not cover the
fallback is: Monday to Friday are working days, Saturday and Sunday are not. Two settings correct
either source, and are the way to enter a new year's arrangement before the package is updated:

- ``EXTRA_HOLIDAYS``: dates that are not working days (e.g. a local holiday, or next year's 春节);
- ``EXTRA_WORKDAYS``: dates that are working days although they fall on a weekend (调休).

Both accept a list of dates or ISO strings, or one comma-separated string (as the environment
variables ``FAZHI_EXTRA_HOLIDAYS`` / ``FAZHI_EXTRA_WORKDAYS`` give it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

# Long gaps are counted day by day; this bounds the loop for absurd dates (about 30 years).
_MAX_SPAN = 11_000


def _parse_dates(value) -> frozenset[date]:
    if not value:
        return frozenset()
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    out = set()
    for item in value:
        if isinstance(item, date):
            out.add(item)
        elif str(item).strip():
            out.add(date.fromisoformat(str(item).strip()))
    return frozenset(out)


@dataclass(frozen=True)
class WorkCalendar:
    """A working-day calendar: the official one, corrected by extra holidays and work days."""

    extra_holidays: frozenset = frozenset()
    extra_workdays: frozenset = frozenset()

    @classmethod
    def from_config(cls, config) -> WorkCalendar:
        return cls(_parse_dates(config.get("EXTRA_HOLIDAYS")), _parse_dates(config.get("EXTRA_WORKDAYS")))

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        return _official_is_workday(day)

    def covered_officially(self, day: date) -> bool:
        """True when the package knows the official arrangement of ``day``'s year."""
        return _official_covers(day.year)

    def working_days_between(self, start: date, end: date) -> int:
        """Count working days d with start < d <= end (0 when end <= start)."""
        if end <= start:
            return 0
        return _working_days_between(self, start, end)

    def signed_working_days(self, today: date, due: date) -> int:
        """Working days left until ``due`` (positive) or overdue since it (negative).

        On the due day this is 0; when ``due`` falls on a weekend the last working day before it
        also counts 0 (nothing working is left in between).
        """
        if today <= due:
            return self.working_days_between(today, due)
        return -self.working_days_between(due, today)

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after ``start`` (n >= 1)."""
        day, left = start, n
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day


@lru_cache(maxsize=4096)
def _working_days_between(calendar: WorkCalendar, start: date, end: date) -> int:
    """Kept per (calendar, start, end): a page lists dozens of deadlines counted from the same today,
    mostly to the same due date (the calendar is frozen, its extra days are part of the key)."""
    span = min((end - start).days, _MAX_SPAN)
    return sum(1 for i in range(1, span + 1) if calendar.is_working_day(start + timedelta(days=i)))


@lru_cache(maxsize=8192)
def _official_is_workday(day: date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        # Year not covered by the package: weekends only (documented fallback).
        return day.weekday() < 5


@lru_cache(maxsize=64)
def _official_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def current_calendar() -> WorkCalendar:
    """The calendar configured on the current app (the plain official one outside an app)."""
    from flask import current_app, has_app_context

    if not has_app_context():
        return WorkCalendar()
    return WorkCalendar.from_config(current_app.config)


WEEKDAYS = "一二三四五六日"
HOLIDAY_LAST_DAY = "截止日为节假日，今天是截止前最后一个工作日"
HOLIDAY_NO_DAY_LEFT = "截止日为节假日，截止前已没有工作日"


@dataclass(frozen=True)
class DueStatus:
    """A deadline as shown everywhere: the date plus working days left or overdue."""

    due: date | None
    days: int | None  # working days left (>0), 0 on the due day, <0 overdue
    overdue: bool
    done: bool = False
    # The due date is still ahead although no working day is left before it (it falls on a holiday
    # or a weekend), and whether today is a working day; "今天截止" beside a later date misleads.
    holiday_ahead: bool = False
    today_working: bool = True

    @property
    def label(self) -> str:
        if self.due is None:
            return "未设截止日期"
        if self.done:
            return ""
        if self.overdue:
            n = -self.days if self.days else 0
            return f"已逾期{n}个工作日" if n else "已逾期"
        if self.holiday_ahead:
            return HOLIDAY_LAST_DAY if self.today_working else HOLIDAY_NO_DAY_LEFT
        if self.days == 0:
            return "今天截止"
        return f"还剩{self.days}个工作日"

    @property
    def date_label(self) -> str:
        if self.due is None:
            return ""
        d = self.due
        return f"{d.year}年{d.month}月{d.day}日（星期{WEEKDAYS[d.weekday()]}）"

    @property
    def css_class(self) -> str:
        if self.due is None or self.done:
            return "due-none"
        if self.overdue:
            return "due-overdue"
        if self.days is not None and self.days <= 1:
            return "due-soon"
        return "due-ok"

    def __str__(self) -> str:
        if self.due is None:
            return self.label
        return f"{self.date_label} {self.label}".strip()


def due_status(due, today: date | None = None, done: bool = False,
               calendar: WorkCalendar | None = None) -> DueStatus:
    """Return the DueStatus of a date, an Assignment or a Contribution (its assignment's due).

    ``done``: the material is already submitted, so only the date is shown, no countdown.
    """
    from .timeutil import local_today

    if due is not None and not isinstance(due, date):
        target = getattr(due, "assignment", due)
        due = target.effective_due()
    if due is None:
        return DueStatus(None, None, False, done)
    calendar = calendar or current_calendar()
    today = today or local_today()
    days = calendar.signed_working_days(today, due)
    return DueStatus(due, days, today > due, done, holiday_ahead=today < due and days == 0,
                     today_working=calendar.is_working_day(today))
