"""Time helpers: store UTC (naive in the database), show the configured local zone."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_TZ = "Asia/Shanghai"


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (the database convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def local_zone() -> ZoneInfo:
    name = current_app.config.get("TIMEZONE", DEFAULT_TZ) if has_app_context() else DEFAULT_TZ
    return ZoneInfo(name)


def to_local(value: datetime | None) -> datetime | None:
    """Convert a stored naive-UTC datetime to the local zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(local_zone())


def local_today():
    return datetime.now(local_zone()).date()
