"""Prometheus metrics at /metrics (the ``prometheus-client`` package).

Two kinds of figures:

* per request, counted in the process that served it: requests by Flask endpoint (a bounded set of
  names, never the raw path), method and status, and a latency histogram by endpoint. Under gunicorn
  every worker writes them to files in PROMETHEUS_MULTIPROC_DIR (set by ``ops/gunicorn_conf.py``) and
  a scrape, answered by any one worker, sums them across workers;
* read from the database at scrape time by ``DatabaseCollector`` (a few GROUP BY queries): outbox
  messages by status, reminders queued and sent by kind, material by state per cycle, the jobs' last
  runs and the scheduler's heartbeat. Every worker would read the same rows, so they are never
  summed.

Reachable only from METRICS_ALLOWED_IPS (addresses or networks, comma-separated; default the machine
itself) or with ``Authorization: Bearer <METRICS_TOKEN>``; anyone else gets a plain 404.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from datetime import UTC

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from werkzeug.wrappers import Response

from ..proxies import peer_in
from .logs import ENVIRON_ENDPOINT, event, middleware, shorten

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Any other method (a client may send anything) is counted as "other": labels stay a bounded set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTBOX_STATUSES = ("pending", "sending", "sent", "dead", "cancelled")

# Request metrics live in their own registry; a scrape builds its registry around them.
REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("fazhi_http_requests", "HTTP requests by Flask endpoint, method and status",
                   ("endpoint", "method", "status"), registry=REQUEST_REGISTRY)
LATENCY = Histogram("fazhi_http_request_duration_seconds", "Time to answer a request, by Flask endpoint",
                    ("endpoint",), buckets=BUCKETS, registry=REQUEST_REGISTRY)


def observe(environ: dict, status: int | None, seconds: float) -> None:
    endpoint = environ.get(ENVIRON_ENDPOINT) or "none"  # no route matched (404) or no answer
    method = environ.get("REQUEST_METHOD", "GET")
    REQUESTS.labels(endpoint, method if method in METHODS else "other",
                    str(status) if status is not None else "none").inc()
    LATENCY.labels(endpoint).observe(seconds)


# ---------------------------------------------------------------- database figures


def _epoch(value) -> float | None:
    if value is None:
        return None

    return value.replace(tzinfo=UTC).timestamp() if value.tzinfo is None else value.timestamp()


class DatabaseCollector:
    """Figures read from the database when scraped."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []  # not known before a scrape; also keeps registration from running the queries

    def collect(self):
        from ..extensions import db

        up = GaugeMetricFamily("fazhi_database_up", "1 when the database answered this scrape's queries")
        families = []
        with self.app.app_context():
            try:
                families = list(self._families(db.session))
                up.add_metric([], 1)
            except Exception as exc:  # noqa: BLE001 - a scrape still answers with what it has
                event(logger, logging.WARNING, "metrics_database_failed",
                      error=f"{type(exc).__name__}: {shorten(exc, 300)}")
                up.add_metric([], 0)
                families = []
            finally:
                db.session.rollback()
                db.session.remove()
        yield up
        yield from families

    def _families(self, session):
        from sqlalchemy import func, select

        from ..models import Contribution, ReportCycle
        from ..models.reminder import OutboxMessage, Reminder

        outbox = GaugeMetricFamily("fazhi_outbox_messages", "Outbox messages by status (pending, dead, ...)",
                                   labels=("status",))
        counts = dict(session.execute(select(OutboxMessage.status, func.count())
                                      .group_by(OutboxMessage.status)).all())
        for status in sorted(set(OUTBOX_STATUSES) | set(counts)):
            outbox.add_metric([status], counts.get(status, 0))
        yield outbox

        queued = GaugeMetricFamily("fazhi_reminders_queued", "Reminders queued so far, by kind",
                                   labels=("kind",))
        for kind, n in session.execute(select(Reminder.kind, func.count()).group_by(Reminder.kind)
                                       .order_by(Reminder.kind)):
            queued.add_metric([kind], n)
        yield queued

        sent = GaugeMetricFamily("fazhi_reminder_messages_sent",
                                 "Reminder messages sent so far, by reminder kind and channel",
                                 labels=("kind", "channel"))
        for kind, channel, n in session.execute(
                select(Reminder.kind, OutboxMessage.channel, func.count())
                .join(Reminder, OutboxMessage.reminder_id == Reminder.id)
                .where(OutboxMessage.status == "sent")
                .group_by(Reminder.kind, OutboxMessage.channel)
                .order_by(Reminder.kind, OutboxMessage.channel)):
            sent.add_metric([kind, channel], n)
        yield sent

        material = GaugeMetricFamily("fazhi_contributions", "Material (contributions) by state per cycle",
                                     labels=("cycle", "year", "state"))
        for cycle_id, year, state, n in session.execute(
                select(Contribution.cycle_id, ReportCycle.year, Contribution.state, func.count())
                .join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
                .group_by(Contribution.cycle_id, ReportCycle.year, Contribution.state)
                .order_by(Contribution.cycle_id, Contribution.state)):
            material.add_metric([str(cycle_id), str(year), state], n)
        yield material
        yield from _job_families(session)


def _job_families(session):
    """Each scheduled job's last run, and the scheduler's heartbeat, from the job_status table."""
    from sqlalchemy import select

    from ..models.ops import JobStatus

    finished = GaugeMetricFamily("fazhi_job_last_finished_timestamp_seconds",
                                 "When each scheduled job (sweep, deliver, prune) last finished",
                                 labels=("job",))
    success = GaugeMetricFamily("fazhi_job_last_success", "1 when the job's last run succeeded",
                                labels=("job",))
    duration = GaugeMetricFamily("fazhi_job_last_duration_seconds", "How long the job's last run took",
                                 labels=("job",))
    beat = GaugeMetricFamily("fazhi_scheduler_heartbeat_timestamp_seconds",
                             "The scheduler process's last heartbeat")
    for row in session.scalars(select(JobStatus).order_by(JobStatus.name)):
        if row.name == "scheduler":
            if row.beat_at is not None:
                beat.add_metric([], _epoch(row.beat_at))
            continue
        if row.finished_at is not None:
            finished.add_metric([row.name], _epoch(row.finished_at))
        if row.ok is not None:
            success.add_metric([row.name], 1 if row.ok else 0)
        if row.duration_ms is not None:
            duration.add_metric([row.name], row.duration_ms / 1000)
    yield from (finished, success, duration, beat)


# ---------------------------------------------------------------- the endpoint


def allowed_networks(value) -> list:
    """METRICS_ALLOWED_IPS as networks; a bad entry is a start-up error, not a silent opening."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise RuntimeError(f"FAZHI_METRICS_ALLOWED_IPS 中的“{shorten(item)}”不是 IP 地址或网段"
                               "（例如 127.0.0.1,::1,10.0.0.0/24）。") from None
    return networks


def _address_allowed(environ, networks, trusted_proxies: int) -> bool:
    # Behind a proxy that is not trusted (TRUSTED_PROXIES=0) every caller looks like the proxy's own
    # address, often 127.0.0.1: the address says nothing then, only the token counts.
    if environ.get("HTTP_X_FORWARDED_FOR") and not trusted_proxies:
        return False
    return peer_in(environ, networks)


def _token_ok(environ, token: str) -> bool:
    if not token:
        return False
    scheme, _, given = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def _values_in_files() -> bool:
    """Whether this process's metric values live in PROMETHEUS_MULTIPROC_DIR files. Decided when
    prometheus_client was first imported (the variable set then), not by the variable now: a process
    that set it later still counts in memory, and a scrape must read those counts."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def registry_for_scrape(app) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and _values_in_files():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_RequestMetrics())
    registry.register(DatabaseCollector(app))
    return registry


class _RequestMetrics:
    """This process's request metrics (single-process servers: the demo, tests)."""

    def collect(self):
        return REQUEST_REGISTRY.collect()


_networks_cache: dict[str, list] = {}


def _networks(value) -> list:
    key = repr(value)
    if key not in _networks_cache:
        _networks_cache[key] = allowed_networks(value)
    return _networks_cache[key]


def metrics_handler(app):
    _networks(app.config.get("METRICS_ALLOWED_IPS", "127.0.0.1,::1"))  # a bad value stops the start

    def metrics(environ) -> Response:
        try:
            networks = _networks(app.config.get("METRICS_ALLOWED_IPS", "127.0.0.1,::1"))
        except RuntimeError:
            networks = []  # changed to a bad value while running: nobody by address
        token = str(app.config.get("METRICS_TOKEN") or "")
        trusted = int(app.config.get("TRUSTED_PROXIES") or 0)
        if not (_token_ok(environ, token) or _address_allowed(environ, networks, trusted)):
            event(logger, logging.INFO, "metrics_refused", ip=environ.get("REMOTE_ADDR") or "-")
            return Response("Not Found\n", status=404, mimetype="text/plain")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return Response("Method Not Allowed\n", status=405, mimetype="text/plain",
                            headers={"Allow": "GET, HEAD"})
        try:
            # A request context of its own: on SQLite the scrape's reads begin DEFERRED (no write lock).
            with app.app_context(), app.request_context(environ):
                output = generate_latest(registry_for_scrape(app))
        except Exception as exc:  # noqa: BLE001 - never a traceback to the scraper
            event(logger, logging.ERROR, "metrics_failed", error=f"{type(exc).__name__}: {shorten(exc, 300)}")
            return Response("metrics unavailable\n", status=500, mimetype="text/plain")
        response = Response(output, status=200)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        response.headers["Cache-Control"] = "no-store"
        return response

    return metrics


def init_app(app) -> None:
    mw = middleware(app)
    if observe not in mw.observers:
        mw.observers.append(observe)
    mw.route("/metrics", "ops.metrics", metrics_handler(app))
