"""A cycle's reminder policy: loading it and checking its fields, shared by the admin form (through
services.reminders) and the ``cycle.reminder_policy`` key of cycle files (reminders.cycle_file)."""
from __future__ import annotations

import re

from sqlalchemy import select

from ..errors import DomainError
from ..extensions import db
from ..models import ReportCycle
from ..models.reminder import DEFAULT_POLICY, ReminderPolicy
from ..whole_numbers import looks_like_digits, optional_int


def policy_for(cycle: ReportCycle) -> ReminderPolicy:
    """The cycle's policy; a new, unsaved one with the defaults when none is stored."""
    policy = db.session.scalar(select(ReminderPolicy).where(ReminderPolicy.cycle_id == cycle.id))
    return policy or ReminderPolicy(cycle_id=cycle.id, **DEFAULT_POLICY)


def int_field(value, label: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not looks_like_digits(text) and not (text.startswith("-") and looks_like_digits(text[1:])):
        raise DomainError(f"“{label}”必须是整数。")
    number = optional_int(text, low, high)
    if number is None:
        raise DomainError(f"“{label}”必须在{low}到{high}之间。")
    return number


def parse_day_list(raw: str) -> str:
    parts = [p for p in re.split(r"[,，、\s]+", (raw or "").strip()) if p]
    days = set()
    for p in parts:
        if not looks_like_digits(p):
            raise DomainError(f"“截止前提醒”应填写用逗号分隔的工作日数，例如 5,3,1；“{p[:10]}”不是数字。")
        n = optional_int(p, 1, 60)
        if n is None:
            raise DomainError("“截止前提醒”的每个工作日数必须在1到60之间。")
        days.add(n)
    if len(days) > 10:
        raise DomainError("“截止前提醒”最多设置10个时间点。")
    return ",".join(str(d) for d in sorted(days, reverse=True))


def parse_send_time(raw: str) -> str:
    match = re.fullmatch(r"\s*(\d{1,2})[:：](\d{2})\s*", raw or "")
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise DomainError("“发送时间”格式应为 时:分，例如 09:00。")
    return f"{int(match[1]):02d}:{match[2]}"
