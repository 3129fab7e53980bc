"""The ``cycle.reminder_policy`` key of cycle definition files."""
from __future__ import annotations

from ..errors import DomainError
from ..extensions import db
from .settings import int_field, parse_day_list, parse_send_time, policy_for

BOOLEANS = {"enabled", "on_due_day", "daily_digest"}
INTEGERS = {
    "overdue_every": ("逾期后每隔几个工作日催报", 1, 30),
    "overdue_max": ("逾期催报最多次数", 0, 50),
    "escalate_after": ("逾期几个工作日后升级提醒", 0, 60),
    "backlog_days": ("待审核超过几个工作日提醒审核人", 0, 60),
    "backlog_max": ("待审核提醒最多次数", 0, 50),
}
KEYS = BOOLEANS | set(INTEGERS) | {"before_due_days", "send_time"}


def _normalise(value: dict) -> dict:
    """Return the policy fields given in ``value``; raise DomainError naming the first bad one."""
    fields = {}
    for key, raw in value.items():
        if key in BOOLEANS:
            if not isinstance(raw, bool):
                raise DomainError(f"{key}：应为 true 或 false")
            fields[key] = raw
        elif key in INTEGERS:
            label, low, high = INTEGERS[key]
            if isinstance(raw, bool):
                raise DomainError(f"{key}：“{label}”必须是整数。")
            fields[key] = int_field(raw, label, low, high)
        elif key == "before_due_days":
            text = ",".join(str(v) for v in raw) if isinstance(raw, list) else str(raw)
            fields[key] = parse_day_list(text)
        elif key == "send_time":
            fields[key] = parse_send_time(str(raw))
    return fields


class ReminderPolicyKey:
    """Validate and apply ``cycle.reminder_policy``; keys not given keep their defaults."""

    @staticmethod
    def validate(value, errors: list[str], path: str) -> None:
        if not isinstance(value, dict):
            errors.append(f"{path}：应为键值对（映射）")
            return
        for key in value:
            if key not in KEYS:
                errors.append(f"{path}.{key}：未知的键“{key}”，可用的键：{', '.join(sorted(KEYS))}")
        for key in KEYS & set(value):
            try:
                _normalise({key: value[key]})
            except DomainError as exc:
                message = exc.message.split("：", 1)[-1] if exc.message.startswith(f"{key}：") else exc.message
                errors.append(f"{path}.{key}：{message}")

    @staticmethod
    def apply(cycle, value: dict) -> None:
        policy = policy_for(cycle)
        for key, field in _normalise(value).items():
            if getattr(policy, key) != field:
                setattr(policy, key, field)
        db.session.add(policy)
