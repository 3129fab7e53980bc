"""Login throttling state, kept in the database so that every web worker sees the same counters."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class LoginThrottle(db.Model):
    """Failed logins for one key ("acct:<name>", "ip:<addr>" or "pair:<name>|<addr>")."""

    __tablename__ = "login_throttle"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None]
    # No login for this key is checked before this moment (naive UTC).
    blocked_until: Mapped[datetime | None]
