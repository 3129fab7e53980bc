"""Health of the delivery channels: the mail server, the robots' servers, and each group robot.

When a channel cannot be reached the deliverer records it in ``channel_health`` and leaves that
channel's other messages pending without spending their tries. Probes keep their own schedule,
apart from the messages' retry backoff: a failing channel is probed again after the message backoff
capped by OUTBOX_PROBE_MAX_SECONDS (30 s by default, one delivery interval), so that the queue
drains in the first run after the server returns. A probe is the channel's oldest due message; when
none is due (overnight, reminders wait for working hours) the connection alone is probed (SMTP
connect, NOOP, QUIT; a TCP connection to a robot's host), so the banner clears and the morning's
batch is not held back.

Keys (``channel_health.channel`` holds 10 characters):
- ``email``: the mail server;
- ``h:<8 hex>``: a robot host (a short hash of the URL's host and port) that could not be connected
  to or did not answer: every robot at that address waits, so a blackholed host costs one timeout
  per run, not one per robot;
- ``wh:<id>``: one group robot whose server answered with an error (HTTP 429/5xx, a rate limit):
  one robot with a wrong key must not hold back the others (robot ids up to 7 digits).

Admins see a banner while a channel is failing (``channel_alerts``; one query per request when
nothing fails, none for anybody else); the robots are grouped on one line.
"""
from __future__ import annotations

import hashlib
import logging
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import urlsplit

from flask import has_request_context, request
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models.ops import ChannelHealth
from ..models.reminder import OutboxMessage, WebhookTarget
from ..timeutil import utcnow
from . import DeliveryFailure, Unreachable

logger = logging.getLogger(__name__)

EMAIL = "email"
ROBOT_PREFIX = "wh:"
HOST_PREFIX = "h:"
# A probe is due this early: runs come every delivery interval, give or take the timer's slack.
PROBE_EARLY = timedelta(seconds=5)

# A delay for the n-th consecutive failure (the deliverer's backoff).
Delay = Callable[[int], timedelta]


def key_for(channel: str, webhook_id: int | None) -> str:
    return EMAIL if channel == "email" else f"{ROBOT_PREFIX}{webhook_id or 0}"


def robot_id(key: str) -> int | None:
    return int(key[len(ROBOT_PREFIX):]) if key.startswith(ROBOT_PREFIX) else None


def host_of(url: str) -> str:
    """Host (and port, when given) of a robot URL, lower-case, without anything that may be a credential."""
    parts = urlsplit(url or "")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{(parts.hostname or '').lower()}{f':{port}' if port else ''}"


def host_key(url: str) -> str:
    """The key of a robot URL's host: a stable short hash (the column holds 10 characters)."""
    return HOST_PREFIX + hashlib.sha256(host_of(url).encode("utf-8")).hexdigest()[:8]


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


def failing_key(job: dict, error: Exception) -> str | None:
    """The channel ``error`` shows to be down for ``job`` (None: only this message failed).

    A robot that could not be connected to or did not answer marks its host (``job["host"]``);
    an error answer (HTTP 429/5xx, a rate limit) marks the robot alone."""
    if not is_channel_failure(job["channel"], error):
        return None
    if job["channel"] != "email" and isinstance(error, Unreachable) and job.get("host"):
        return job["host"]
    return job["key"]


def probe_host(url: str, timeout: float) -> None:
    """A TCP connection to a robot URL's host (nothing is sent).

    :raise Unreachable: refused, unknown host, no connection within ``timeout``."""
    parts = urlsplit(url or "")
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if parts.scheme == "https" else 80)
    host = host_of(url)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return
    except OSError as exc:
        reason = reason_text(exc)
        logger.info("Robot host %s probe failed: %s: %s", host, type(exc).__name__, exc)
        raise Unreachable(f"无法连接群机器人服务器 {host}：{reason}。") from None


def reason_text(exc: BaseException) -> str:
    """A connection error in Chinese for the admin (the technical detail belongs in the log)."""
    if isinstance(exc, ConnectionRefusedError):
        return "连接被拒绝"
    if isinstance(exc, socket.gaierror):
        return "找不到服务器"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "连接超时"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "连接被对方断开"
    if isinstance(exc, ssl.SSLError):
        return "加密连接（TLS）建立失败"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "网络错误"
    return "连接中断"


@dataclass
class _State:
    failures: int
    next_probe_at: datetime | None


class Board:
    """The failing channels as one delivery run sees them.

    ``blocked``: keys whose messages this run leaves pending (not claimed, not tried). A channel is
    unblocked while its probe is sent and stays so when the probe reaches it. ``hosts``: the active
    robots' ids by host key, and ``urls`` one URL per host key (for a connection probe).
    """

    def __init__(self, failing: dict[str, _State], robots: list | None = None):
        self.failing = failing
        self.blocked = set(failing)
        self.hosts: dict[str, list[int]] = {}
        self.urls: dict[str, str] = {}
        self._index(robots or ())

    def _index(self, robots) -> None:
        self.hosts, self.urls = {}, {}
        for rid, url in robots:
            key = host_key(url)
            self.hosts.setdefault(key, []).append(rid)
            self.urls.setdefault(key, url)

    @classmethod
    def load(cls) -> Board:
        rows = db.session.execute(select(ChannelHealth.channel, ChannelHealth.failures, ChannelHealth.next_probe_at)
                                  .where(ChannelHealth.failing_since.is_not(None))).all()
        robots = db.session.execute(select(WebhookTarget.id, WebhookTarget.url)
                                    .where(WebhookTarget.active.is_(True))).all() \
            if any(r.channel.startswith(HOST_PREFIX) for r in rows) else []
        db.session.commit()
        return cls({r.channel: _State(r.failures or 0, r.next_probe_at) for r in rows}, robots)

    def due_probes(self, now: datetime) -> list[str]:
        """The failing channels whose probe is due, the longest-waiting first (a run that stops
        probing early leaves the others first in line for the next): mail, hosts, then robots."""
        due = [k for k, st in self.failing.items() if st.next_probe_at is None or st.next_probe_at <= now + PROBE_EARLY]
        rank = {EMAIL: 0, HOST_PREFIX: 1}
        return sorted(due, key=lambda k: (rank.get(EMAIL if k == EMAIL else k[:2], 2),
                                          self.failing[k].next_probe_at or datetime.min, k))

    def reserve(self, key: str, now: datetime, delay: Delay) -> bool:
        """Reserve ``key``'s probe for this run (its ``next_probe_at`` moved on in one conditional
        UPDATE, committed), so that two deliverers running at the same moment never both probe it."""
        state = self.failing[key]
        t = ChannelHealth.__table__
        won = db.session.execute(
            update(t).where(t.c.channel == key, t.c.failing_since.is_not(None),
                            or_(t.c.next_probe_at.is_(None), t.c.next_probe_at <= now + PROBE_EARLY))
            .values(next_probe_at=now + delay(state.failures + 1), last_probe_at=now, updated_at=utcnow())
            .returning(t.c.channel)).first()
        db.session.commit()
        return won is not None

    def unreserve(self, key: str, now: datetime) -> None:
        """Nothing was sent to ``key``: its probe is due again at the next run (commit)."""
        t = ChannelHealth.__table__
        db.session.execute(update(t).where(t.c.channel == key, t.c.failing_since.is_not(None))
                           .values(next_probe_at=now, updated_at=utcnow()))
        db.session.commit()

    def blocked_robots(self, keys) -> list[int]:
        ids = {rid for rid in (robot_id(k) for k in keys) if rid is not None}
        for k in keys:
            ids.update(self.hosts.get(k, ()))
        return sorted(ids)

    def is_blocked(self, job: dict) -> bool:
        return job["key"] in self.blocked or (job.get("host") is not None and job["host"] in self.blocked)

    def claim_filter(self, table, only: str | None = None) -> list:
        """Conditions on the outbox that leave out the blocked channels' messages; with ``only``, the
        messages of that one channel (a probe)."""
        conds = []
        if only == EMAIL:
            conds.append(table.c.channel == "email")
        elif only is not None:
            conds.append(and_(table.c.channel == "webhook", table.c.webhook_id.in_(self.blocked_robots([only]) or [0])))
        blocked = self.blocked - {only}
        if EMAIL in blocked:
            conds.append(table.c.channel != "email")
        ids = self.blocked_robots(blocked)
        if ids:
            conds.append(or_(table.c.webhook_id.is_(None), table.c.webhook_id.not_in(ids)))
        return conds

    def failed(self, key: str, error: str, now: datetime, delay: Delay) -> None:
        """Record that ``key`` could not be reached (commit); its messages wait from now on."""
        self.blocked.add(key)
        if key.startswith(HOST_PREFIX) and key not in self.hosts:  # found down in this run: its robots wait
            self._index(db.session.execute(select(WebhookTarget.id, WebhookTarget.url)
                                           .where(WebhookTarget.active.is_(True))).all())
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

    def ok(self, key: str | None, now: datetime) -> None:
        """``key`` answered: if it was failing it is healthy again (commit). Nothing is written for a
        channel that was not failing, so a healthy run costs no extra statement."""
        if key is None:
            return
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
    # The robots whose messages wait for this channel (a host's: all of its robots), by key.
    robots: tuple[str, ...] = ()
    host: str | None = None

    @property
    def name(self) -> str:
        if self.key == EMAIL:
            return "邮件服务器"
        if self.host is not None:
            return f"群机器人服务器 {self.host}（{len(self.robots)}个群机器人）"
        return f"群机器人“{self.robot}”"

    @property
    def blocks(self) -> list[str]:
        """The outbox keys (``email``, ``wh:<id>``) whose messages wait for this channel."""
        return [EMAIL] if self.key == EMAIL else list(self.robots)

    @property
    def text(self) -> str:
        from ..timeutil import cn_datetime_text

        since = cn_datetime_text(self.since)
        if self.key == EMAIL:
            return f"邮件发送异常：自{since}起无法连接邮件服务器，{self.waiting}条消息等待发送。"
        return f"群机器人发送异常：自{since}起无法送达群机器人“{self.robot}”，{self.waiting}条消息等待发送。"


def banner_lines(alerts: list[Alert]) -> list[str]:
    """The banner: one line for the mail server, one for all the robots (a blackholed host may hold
    hundreds of robots: they are counted, and the hosts named)."""
    from ..timeutil import cn_datetime_text

    lines = [a.text for a in alerts if a.key == EMAIL]
    robots = [a for a in alerts if a.key != EMAIL]
    if not robots:
        return lines
    names = {r for a in robots for r in a.robots}
    if len(robots) == 1 and robots[0].host is None:
        return lines + [robots[0].text]
    since = cn_datetime_text(min(a.since for a in robots))
    hosts = [a.host for a in robots if a.host is not None]
    named = [f"“{a.robot}”" for a in robots if a.host is None]
    where = "、".join(([f"服务器 {h}" for h in hosts[:3]] + named[:3])) + ("等" if len(hosts) > 3 or len(named) > 3 else "")
    waiting = sum(a.waiting for a in robots)
    return lines + [f"群机器人发送异常：自{since}起{len(names)}个群机器人无法送达（{where}），{waiting}条消息等待发送。"]


def failing_channels(region_id: int | None = None) -> list[Alert]:
    """The failing channels with the number of messages waiting for each: one query when nothing
    fails, three when robots do. With ``region_id``, only that region's robots and messages count (an
    admin is not told the names and errors of another region's group robots)."""
    from ..models import ReportCycle, Unit, User

    h, t, w = ChannelHealth.__table__, OutboxMessage.__table__, WebhookTarget.__table__
    rows = db.session.execute(
        select(h.c.channel, h.c.failing_since, h.c.last_error, h.c.next_probe_at)
        .where(h.c.failing_since.is_not(None)).order_by(h.c.failing_since, h.c.channel)).all()
    if not rows:
        return []
    waiting_q = (select(t.c.channel, t.c.webhook_id, func.count().label("n"))
                 .where(t.c.status.in_(("pending", "sending"))).group_by(t.c.channel, t.c.webhook_id))
    robots_q = select(w.c.id, w.c.name, w.c.url).where(w.c.active.is_(True))
    if region_id is not None:
        own_robot = w.c.unit_id.in_(select(Unit.id).where(Unit.region_id == region_id)) | \
            w.c.cycle_id.in_(select(ReportCycle.id).where(ReportCycle.region_id == region_id))
        robots_q = robots_q.where(own_robot)
        waiting_q = waiting_q.where(
            t.c.user_id.in_(select(User.id).where(User.region_id == region_id))
            | t.c.webhook_id.in_(select(w.c.id).where(own_robot)))
    waiting = dict(((r.channel, r.webhook_id), r.n) for r in db.session.execute(waiting_q))
    robots = {r.id: r for r in db.session.execute(robots_q)} if any(r.channel != EMAIL for r in rows) else {}
    by_host: dict[str, list[int]] = {}
    for r in robots.values():
        by_host.setdefault(host_key(r.url), []).append(r.id)
    alerts = []
    for r in rows:
        if r.channel == EMAIL:
            alerts.append(Alert(EMAIL, r.failing_since, waiting.get(("email", None), 0), None, r.last_error,
                                r.next_probe_at))
            continue
        if r.channel.startswith(HOST_PREFIX):
            ids = sorted(by_host.get(r.channel, ()))
            if not ids:  # no active robot there any more: no concern of the admin's
                continue
            alerts.append(Alert(r.channel, r.failing_since, sum(waiting.get(("webhook", i), 0) for i in ids),
                                None, r.last_error, r.next_probe_at, tuple(f"{ROBOT_PREFIX}{i}" for i in ids),
                                host_of(robots[ids[0]].url)))
            continue
        rid = robot_id(r.channel)
        # A robot removed since is no concern of the admin's any more (its messages end at its probe).
        if rid in robots:
            alerts.append(Alert(r.channel, r.failing_since, waiting.get(("webhook", rid), 0), robots[rid].name,
                                r.last_error, r.next_probe_at, (r.channel,)))
    return alerts


def channel_alerts() -> list[Alert]:
    """For the layout: the failing channels, for admins only (others cost no query); cached for the
    request."""
    from flask_login import current_user

    from .. import policy

    if not getattr(current_user, "is_authenticated", False) or not policy.can(current_user, "admin.manage"):
        return []
    if not has_request_context():
        return failing_channels(current_user.region_id)
    # Kept in the request's environ, not in g: g lives as long as the app context, which may span
    # several requests (tests, the CLI).
    cached = request.environ.get(_CACHE)
    if cached is None:
        cached = request.environ[_CACHE] = failing_channels(current_user.region_id)
    return cached


def channel_banner() -> list[str]:
    """For the layout: the banner lines (see ``banner_lines``), admins only."""
    return banner_lines(channel_alerts())


_CACHE = "fazhi_flow.channel_alerts"


def init_app(app) -> None:
    app.add_template_global(channel_alerts, "channel_alerts")
    app.add_template_global(channel_banner, "channel_banner")
