"""Time helpers: store UTC (naive in the database), show the configured local zone."""
import os
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_TZ = "Asia/Shanghai"


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (the database convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def local_zone() -> ZoneInfo:
    # Outside an app (log lines written before or without one) the environment's FAZHI_TIMEZONE applies.
    name = current_app.config.get("TIMEZONE", DEFAULT_TZ) if has_app_context() \
        else os.environ.get("FAZHI_TIMEZONE", DEFAULT_TZ)
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


def cn_date_text(value: date | datetime | None) -> str:
    """'2025年1月6日': the one date format of pages, messages and the CLI (a datetime by its local day)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_local(value).date()
    return f"{value.year}年{value.month}月{value.day}日"


def cn_datetime_text(value: datetime | None, seconds: bool = False) -> str:
    """'2025年1月6日 09:00' in the local zone (Beijing time unless TIMEZONE says otherwise) for a stored
    naive-UTC or an aware datetime."""
    local = to_local(value)
    if local is None:
        return ""
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{local.year}年{local.month}月{local.day}日 {clock}"


def zone_label() -> str:
    """How the CLI names the zone its times are in: 北京时间, or the configured zone's name."""
    name = local_zone().key
    return "北京时间" if name in ("Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC") else name
