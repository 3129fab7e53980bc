from datetime import datetime
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=9, mm=0):
    """An aware moment in Asia/Shanghai."""
    return datetime(y, m, d, hh, mm, tzinfo=SH)
