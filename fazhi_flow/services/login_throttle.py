"""Throttling of failed logins, per account, per address and per (account, address) pair.

Each key allows a few free failures, then the next attempt must wait an exponentially growing delay
with a cap. The pair key is strict (it is what slows down a guesser); the account-wide key has a
small cap, so that somebody guessing from elsewhere can delay the real user by a minute at most,
never lock them out; the address key catches one machine trying many accounts.

A browser holding a valid device cookie for the account (see web/auth/device.py) is counted on its
own key instead: one office NAT shares the address key, and a guesser there must not be able to
lock out colleagues whose browsers have logged in before. That key is strict like the pair key, so
a device cookie that fails too often is locked itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import LoginThrottle
from ..models.security import FORGET_AFTER
from ..timeutil import utcnow


@dataclass(frozen=True)
class Policy:
    free: int          # failures allowed without any delay
    base: float        # seconds of delay after the first failure beyond ``free``
    cap: float         # longest delay, in seconds


POLICIES = {
    "pair": Policy(free=5, base=2, cap=15 * 60),
    "ip": Policy(free=30, base=2, cap=15 * 60),
    "acct": Policy(free=10, base=2, cap=60),
    "device": Policy(free=5, base=2, cap=15 * 60),
}


def _keys(username: str, ip: str | None, device: str | None = None) -> dict[str, str]:
    """The counters of one attempt; ``device``: id of a device cookie valid for ``username``."""
    name = (username or "").strip().lower()[:80]
    if device:
        return {"device": f"dev:{device[:32]}|{name}"}
    addr = (ip or "unknown")[:64]
    return {"pair": f"pair:{name}|{addr}", "ip": f"ip:{addr}", "acct": f"acct:{name}"}


def delay_for(kind: str, failures: int) -> float:
    policy = POLICIES[kind]
    over = failures - policy.free
    if over <= 0:
        return 0.0
    return min(policy.cap, policy.base * (2 ** min(over - 1, 30)))


def wait_seconds(username: str, ip: str | None, device: str | None = None) -> int:
    """Seconds the caller must still wait before a login for ``username`` from ``ip`` is checked."""
    keys = list(_keys(username, ip, device).values())
    now = utcnow()
    rows = db.session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))
    longest = 0.0
    for row in rows:
        if row.blocked_until and row.blocked_until > now:
            longest = max(longest, (row.blocked_until - now).total_seconds())
    return int(longest + 0.999)


def _row(key: str) -> LoginThrottle:
    # Locked, so the hourly prune cannot delete the row between this read and our update: it waits,
    # then sees the fresh failure time and keeps the row (or we wait for its delete and insert anew).
    row = db.session.scalar(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())
    if row is not None:
        return row
    try:
        with db.session.begin_nested():
            row = LoginThrottle(key=key, failures=0)
            db.session.add(row)
    except IntegrityError:
        # Another worker created it at the same moment.
        row = db.session.scalar(select(LoginThrottle).where(LoginThrottle.key == key))
    return row


def record_failure(username: str, ip: str | None, device: str | None = None) -> None:
    now = utcnow()
    for kind, key in _keys(username, ip, device).items():
        row = _row(key)
        if row.last_failure_at is not None and now - row.last_failure_at > FORGET_AFTER:
            row.failures = 0
        row.failures = (row.failures or 0) + 1
        row.last_failure_at = now
        delay = delay_for(kind, row.failures)
        row.blocked_until = now + timedelta(seconds=delay) if delay else None
    db.session.flush()


def record_success(username: str, ip: str | None, device: str | None = None) -> None:
    """A correct password clears the pair, account and device counters (not the address's)."""
    keys = _keys(username, ip)
    cleared = [keys["pair"], keys["acct"]]
    if device:
        cleared += _keys(username, ip, device).values()
    for key in cleared:
        row = db.session.scalar(
            select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())
        if row is not None:
            db.session.delete(row)
    db.session.flush()
