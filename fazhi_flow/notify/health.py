"""Health of the delivery channels: the mail server, and each group robot on its own.

When a channel cannot be reached the deliverer records it in ``channel_health`` and leaves that
channel's other messages pending without spending their tries. Later runs probe the channel with
ONE message (the oldest due) once ``next_probe_at`` has passed, backing off like a message does
(OUTBOX_RETRY_BASE_SECONDS doubling, capped by OUTBOX_RETRY_MAX_SECONDS); when the probe goes
through the channel is healthy again and its queue drains in the same run.

Keys: ``email`` for the mail server; ``wh:<id>`` for a group robot (webhook target), because robots
live at different addresses: one robot with a wrong address must not hold back the others (the
column holds 10 characters: robot ids up to 7 digits).

Admins see a banner while a channel is failing (``channel_alerts``, one query per request, none
for anybody else).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from flask import has_request_context, request
from sqlalchemy import Integer, String, and_, case, cast, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models.ops import ChannelHealth
from ..models.reminder import OutboxMessage, WebhookTarget
from ..timeutil import utcnow
from . import DeliveryFailure, Unreachable

logger = logging.getLogger(__name__)

EMAIL = "email"
ROBOT_PREFIX = "wh:"

# A delay for the n-th consecutive failure (the deliverer's backoff).
Delay = Callable[[int], timedelta]


def key_for(channel: str, webhook_id: int | None) -> str:
    return EMAIL if channel == "email" else f"{ROBOT_PREFIX}{webhook_id or 0}"


def robot_id(key: str) -> int | None:
    return int(key[len(ROBOT_PREFIX):]) if key.startswith(ROBOT_PREFIX) else None


def is_channel_failure(channel: str, error: Exception) -> bool:
    """Whether ``error`` says the channel itself is down, not that this one message was refused.

    Mail: no connection, a dropped or timed-out one, or 421 (the server is closing the channel).
    Robots: every temporary failure (no connection, timeout, HTTP 429/5xx, a rate limit) concerns the
    robot, not the text sent to it."""
    if not getattr(error, "temporary", False):
        return False
    if channel == "email":
        return isinstance(error, Unreachable) or getattr(error, "message", str(error)).startswith("SMTP 421")
    return isinstance(error, DeliveryFailure)


@dataclass
class _State:
    failures: int
    next_probe_at: datetime | None


class Board:
    """The failing channels as one delivery run sees them.

    ``blocked``: keys whose messages this run leaves pending (not claimed, not tried). A channel is
    unblocked while its probe is sent and stays so when the probe reaches it.
    """

    def __init__(self, failing: dict[str, _State]):
        self.failing = failing
        self.blocked = set(failing)

    @classmethod
    def load(cls) -> Board:
        rows = db.session.execute(select(ChannelHealth.channel, ChannelHealth.failures, ChannelHealth.next_probe_at)
                                  .where(ChannelHealth.failing_since.is_not(None))).all()
        db.session.commit()
        return cls({r.channel: _State(r.failures or 0, r.next_probe_at) for r in rows})

    def take_probes(self, now: datetime, delay: Delay) -> list[str]:
        """The failing channels whose probe is due, each reserved for this run (its ``next_probe_at``
        moved on in one conditional UPDATE, committed), so that two deliverers running at the same
        moment never both probe a channel."""
        taken = []
        for key, state in sorted(self.failing.items()):
            if state.next_probe_at is not None and state.next_probe_at > now:
                continue
            t = ChannelHealth.__table__
            won = db.session.execute(
                update(t).where(t.c.channel == key, t.c.failing_since.is_not(None),
                                or_(t.c.next_probe_at.is_(None), t.c.next_probe_at <= now))
                .values(next_probe_at=now + delay(state.failures + 1), last_probe_at=now, updated_at=utcnow())
                .returning(t.c.channel)).first()
            db.session.commit()
            if won is not None:
                taken.append(key)
        return taken

    def claim_filter(self, table, only: str | None = None) -> list:
        """Conditions on the outbox that leave out the blocked channels' messages; with ``only``, the
        messages of that one channel (a probe)."""
        conds = []
        if only is not None:
            rid = robot_id(only)
            conds.append(table.c.channel == "email" if rid is None else
                         and_(table.c.channel == "webhook", table.c.webhook_id == rid))
        blocked = self.blocked - {only}
        if EMAIL in blocked:
            conds.append(table.c.channel != "email")
        ids = sorted(rid for rid in (robot_id(k) for k in blocked) if rid is not None)
        if ids:
            conds.append(or_(table.c.webhook_id.is_(None), table.c.webhook_id.not_in(ids)))
        return conds

    def failed(self, key: str, error: str, now: datetime, delay: Delay) -> None:
        """Record that ``key`` could not be reached (commit); its messages wait from now on."""
        self.blocked.add(key)
        for attempt in (1, 2):
            try:
                row = db.session.get(ChannelHealth, key)
                if row is None:
                    row = ChannelHealth(channel=key, failures=0)
                    db.session.add(row)
                if row.failing_since is None:
                    row.failing_since, row.failures = now, 0
                    logger.warning("Channel %s unreachable, its messages wait for it: %s", key, error)
                row.failures = (row.failures or 0) + 1
                row.last_error = error
                row.last_probe_at = now
                row.next_probe_at = now + delay(row.failures)
                row.updated_at = utcnow()
                db.session.commit()
                self.failing[key] = _State(row.failures, row.next_probe_at)
                return
            except IntegrityError:  # another deliverer inserted the row first: update it instead
                db.session.rollback()
                if attempt == 2:
                    raise

    def ok(self, key: str, now: datetime) -> None:
        """``key`` answered: if it was failing it is healthy again (commit). Nothing is written for a
        channel that was not failing, so a healthy run costs no extra statement."""
        self.blocked.discard(key)
        if self.failing.pop(key, None) is None:
            return
        logger.info("Channel %s reachable again", key)
        t = ChannelHealth.__table__
        db.session.execute(update(t).where(t.c.channel == key)
                           .values(failing_since=None, failures=0, next_probe_at=None, last_ok_at=now,
                                   updated_at=utcnow()))
        db.session.commit()

    def probing(self, key: str) -> None:
        """Let this run send ``key``'s probe."""
        self.blocked.discard(key)


# ------------------------------------------------------------------ the admin banner


@dataclass(frozen=True)
class Alert:
    key: str
    since: datetime
    waiting: int
    robot: str | None
    last_error: str | None
    next_probe_at: datetime | None = None

    @property
    def name(self) -> str:
        return "邮件服务器" if self.key == EMAIL else f"群机器人“{self.robot}”"

    @property
    def text(self) -> str:
        from ..timeutil import cn_datetime_text

        since = cn_datetime_text(self.since)
        if self.key == EMAIL:
            return f"邮件发送异常：自{since}起无法连接邮件服务器，{self.waiting}条消息等待发送。"
        return f"群机器人发送异常：自{since}起无法送达群机器人“{self.robot}”，{self.waiting}条消息等待发送。"


def failing_channels() -> list[Alert]:
    """The failing channels with the number of messages waiting for each, in one query."""
    h, t, w = ChannelHealth.__table__, OutboxMessage.__table__, WebhookTarget.__table__
    rid = case((h.c.channel.like(f"{ROBOT_PREFIX}%"),
                cast(func.substr(h.c.channel, len(ROBOT_PREFIX) + 1), Integer)), else_=None)
    waiting = (select(func.count()).select_from(t).where(
        t.c.status.in_(("pending", "sending")),
        or_(and_(h.c.channel == literal(EMAIL, String), t.c.channel == "email"),
            and_(t.c.channel == "webhook", t.c.webhook_id == rid)))
        .scalar_subquery())
    rows = db.session.execute(
        select(h.c.channel, h.c.failing_since, h.c.last_error, w.c.name, waiting.label("waiting"),
               h.c.next_probe_at)
        .select_from(h.outerjoin(w, w.c.id == rid))
        # A robot removed since is no concern of the admin's any more (its messages end at its probe).
        .where(h.c.failing_since.is_not(None), or_(h.c.channel == EMAIL, w.c.active.is_(True)))
        .order_by(h.c.failing_since, h.c.channel)).all()
    return [Alert(r.channel, r.failing_since, r.waiting or 0, r.name, r.last_error, r.next_probe_at) for r in rows]


def channel_alerts() -> list[Alert]:
    """For the layout: the failing channels, for admins only (others cost no query); cached for the
    request."""
    from flask_login import current_user

    from .. import policy

    if not getattr(current_user, "is_authenticated", False) or not policy.can(current_user, "admin.manage"):
        return []
    if not has_request_context():
        return failing_channels()
    # Kept in the request's environ, not in g: g lives as long as the app context, which may span
    # several requests (tests, the CLI).
    cached = request.environ.get(_CACHE)
    if cached is None:
        cached = request.environ[_CACHE] = failing_channels()
    return cached


_CACHE = "fazhi_flow.channel_alerts"


def init_app(app) -> None:
    app.add_template_global(channel_alerts, "channel_alerts")
