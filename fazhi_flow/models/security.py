"""Login throttling state, kept in the database so that every web worker sees the same counters."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


# A key without failures for this long starts again from zero; without it the address counter of an
# office behind one NAT only grows, until every typo there blocks everybody for the longest delay.
# (Here beside the table so that the scheduler's pruning and the login check share it.)
FORGET_AFTER = timedelta(hours=24)


class LoginThrottle(db.Model):
    """Failed logins for one key ("acct:<name>", "ip:<addr>" or "pair:<name>|<addr>")."""

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None]
    # No login for this key is checked before this moment (naive UTC).
    blocked_until: Mapped[datetime | None]
