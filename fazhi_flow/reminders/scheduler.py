"""APScheduler (3.x) set-up. The jobs only call ``sweep``, ``deliver``, ``prune_login_throttle`` and
the publications' PDF rendering (``render_pdfs``) with the current time.

Production runs ``fazhi-flow scheduler``, a dedicated blocking process; web workers never start a
scheduler. The one-process demo calls ``start_in_process_scheduler(app)`` (when
``SCHEDULER_IN_PROCESS`` is set). Jobs keep no state in the scheduler: everything is in the database,
so a restart or a second scheduler process is harmless (see ``jobs.sweep``).

Every job run writes one log line (``job name=sweep ok=True duration_ms=… queued=… skipped=…``;
``job name=deliver … sent=… failed=…``) and its ``job_status`` row (start, end, outcome, duration,
summary, error text); each message whose attempt failed in a delivery run adds one
``delivery_failed`` line. While the database cannot be reached a run writes its one ``job … ok=False``
line with the cause and no traceback (the heartbeat likewise one ``heartbeat ok=False`` line); an
unexpected error keeps its traceback. The scheduler also refreshes the row "scheduler" at start and
every minute: /readyz calls a heartbeat older than SCHEDULER_STALE_SECONDS a stopped scheduler.
Timestamps are in the TIMEZONE setting's zone (ops/logs.py).
"""
from __future__ import annotations

import atexit
import collections
import logging
import os
import re
import socket
import time
import traceback
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError, OperationalError

from ..extensions import db
from ..models import LoginThrottle
from ..models.ops import JobStatus
from ..models.reminder import OutboxMessage
from ..models.security import FORGET_AFTER
from ..ops.logs import event, redact, shorten
from ..timeutil import utcnow
from .jobs import as_utc, deliver, sweep

logger = logging.getLogger(__name__)

_in_process: dict[int, BackgroundScheduler] = {}

HEARTBEAT_ROW = "scheduler"
HEARTBEAT_SECONDS = 60
# Error texts kept in job_status and the log: enough to see the cause, never a whole dump.
ERROR_LIMIT = 2000
# One line per failed message in a delivery run, up to this many (the summary line counts them all).
FAILURE_LINES = 50


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (refused, dropped, restarting): an outage, not a bug, so the
    log gets one line per attempt instead of a traceback."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _database_error_text(exc: BaseException) -> str:
    """'database unavailable: connection … refused': the driver's first line, without the SQL
    SQLAlchemy appends. An error the server answered with (a deadlock, a lock timeout: it has an
    SQLSTATE) is a 'database error' instead."""
    cause = getattr(exc, "orig", None) or exc
    first = next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
    answered = getattr(cause, "sqlstate", None) and not getattr(exc, "connection_invalidated", False)
    return redact(f"{'database error' if answered else 'database unavailable'}: {shorten(first, 300)}")


def _status_row(session, name: str) -> JobStatus:
    row = session.get(JobStatus, name)
    if row is None:
        row = JobStatus(name=name)
        session.add(row)
    return row


def _save_status(name: str, quiet: bool = False, **values) -> None:
    """Upsert the job_status row ``name`` with ``values`` in its own short transaction; a failure is
    logged (unless ``quiet``: the caller has logged the outage), never raised (the job itself has
    already run). Two schedulers may insert the same new row at once: the loser retries as an update."""
    session = db.session
    for attempt in (1, 2):
        try:
            _quiet_rollback(session)
            row = _status_row(session, name)
            for key, value in values.items():
                setattr(row, key, value)
            session.commit()
            return
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                logger.warning("Could not record job status %s: duplicate row", name)
        except Exception as exc:  # noqa: BLE001 - e.g. the database is down: the next run tries again
            _quiet_rollback(session)
            if not quiet:
                logger.warning("Could not record job status %s: %s", name, redact(shorten(exc, 300)))
            return


def _quiet_rollback(session) -> None:
    """Roll back, ignoring a connection that is already gone (its error was reported once)."""
    try:
        session.rollback()
    except Exception:  # noqa: BLE001, S110 - the connection is dead; the pool discards it
        pass


def beat(app=None) -> None:
    """Refresh the scheduler's heartbeat (job_status row "scheduler"); /readyz reads it."""
    def _beat():
        try:
            db.session.execute(select(1))
        except Exception as exc:
            _quiet_rollback(db.session)
            if not database_unavailable(exc):
                raise
            event(logger, logging.WARNING, "heartbeat", ok=False, error=_database_error_text(exc))
            return
        _save_status(HEARTBEAT_ROW, beat_at=utcnow(), host=socket.gethostname(), pid=os.getpid())

    if app is None:
        _beat()
        return
    with app.app_context():
        try:
            _beat()
        finally:
            _remove_session()


def _remove_session() -> None:
    try:
        db.session.remove()
    except Exception:  # noqa: BLE001, S110 - closing a dead connection: nothing left to release
        pass


def _count(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return 0


def _sweep_summary(result) -> dict:
    queued = getattr(result, "queued", None)
    summary = {"queued": _count(queued),
               "skipped": _count(getattr(result, "skipped", getattr(result, "skipped_existing", 0)))}
    if getattr(result, "locked_out", False):
        summary["locked_out"] = True
    kinds = collections.Counter(getattr(q, "kind", None) for q in (queued if isinstance(queued, list) else []))
    kinds.pop(None, None)
    if kinds:
        summary["by_kind"] = dict(sorted(kinds.items()))
    return summary


_ERROR_ID = re.compile(r"^#(\d+)\s")


def _failures(result) -> list[dict]:
    """One entry per message whose attempt failed in this run: ``{"message": id, "outcome": "dead" |
    "retry", "reason": text}``, from the delivery's error texts ("#id reason", never a body)."""
    by_id, others = {}, []
    for line in (str(e) for e in (getattr(result, "errors", None) or [])):
        match = _ERROR_ID.match(line)
        if match:
            by_id[int(match.group(1))] = _ERROR_ID.sub("", line)
        else:
            others.append(line)
    dead_ids = set()
    if by_id and getattr(result, "dead", 0):
        dead_ids = set(db.session.scalars(select(OutboxMessage.id).where(
            OutboxMessage.id.in_(list(by_id)[:500]), OutboxMessage.status == "dead")))
        db.session.rollback()
    found = [{"message": i, "outcome": "dead" if i in dead_ids else "retry", "reason": shorten(text, 300)}
             for i, text in by_id.items()]
    # An unknown error format: shown as it is, counted as a death only when the run says so.
    found += [{"message": None, "outcome": "dead" if getattr(result, "dead", 0) else "retry",
               "reason": shorten(line, 300)} for line in others]
    return found


def _failure_reasons(result, failures: list[dict] | None = None) -> tuple[list[str], list[str]]:
    """The reasons of the messages that died in this run ("#id reason"), and the distinct reasons of
    those to be retried (e.g. the mail server cannot be reached) — for the summary line."""
    given = getattr(result, "dead_reasons", None)
    if given is not None:
        return [shorten(r, 300) for r in list(given)[:20]], []
    failures = _failures(result) if failures is None else failures
    dead = [f"#{f['message']} {f['reason']}" if f["message"] is not None else f["reason"]
            for f in sorted((f for f in failures if f["outcome"] == "dead"), key=lambda f: f["message"] or 0)]
    retry = list(dict.fromkeys(f["reason"] for f in failures if f["outcome"] == "retry"))[:5]
    return dead[:20], retry


def _delivery_summary(result, failures: list[dict] | None = None) -> dict:
    summary = {key: _count(getattr(result, key, 0))
               for key in ("sent", "retried", "dead", "cancelled", "deferred")}
    # Attempts that failed in this run, whatever became of the message (to be retried, or dead);
    # messages given up unsent by their age were not attempted: counted apart as expired.
    summary["expired"] = _count(getattr(result, "expired", 0))
    summary["failed"] = summary["retried"] + max(0, summary["dead"] - summary["expired"])
    dead, retry = _failure_reasons(result, failures)
    if dead:
        summary["dead_reasons"] = dead
    if retry:
        summary["retry_reasons"] = retry
    return summary


def run_job(app, name: str, work, summarize, failures=None) -> None:
    """Run one job in an app context: one summary line, one line per failure ``failures()`` names, its
    job_status row; never raises (the scheduler must stay alive, the next run tries again)."""
    with app.app_context():
        started_at, clock = utcnow(), time.perf_counter()
        summary, error, outage = None, None, False
        try:
            result = work(datetime.now(UTC))
            summary = summarize(result)
        except Exception as exc:  # noqa: BLE001
            _quiet_rollback(db.session)
            outage = database_unavailable(exc)
            if outage:
                error = _database_error_text(exc)
            else:
                error = redact(f"{type(exc).__name__}: {shorten(exc, ERROR_LIMIT)}")
                # The traceback is redacted before it becomes a record: every handler gets the clean text.
                logger.error("Job %s failed:\n%s", name, redact(traceback.format_exc()).rstrip())
        duration_ms = int((time.perf_counter() - clock) * 1000)
        try:
            if error is None:
                event(logger, logging.INFO, "job", name=name, ok=True, duration_ms=duration_ms, **summary)
                for failure in (failures() if failures else [])[:FAILURE_LINES]:
                    event(logger, logging.WARNING, "delivery_failed", job=name, **failure)
            else:
                event(logger, logging.ERROR, "job", name=name, ok=False, duration_ms=duration_ms, error=error)
            _save_status(name, quiet=outage, started_at=started_at, finished_at=utcnow(), ok=error is None,
                         duration_ms=duration_ms, summary=summary, error=error)
        except Exception:  # bookkeeping must not stop the scheduler
            logger.exception("Recording the run of job %s failed", name)
        finally:
            _remove_session()


def run_sweep(app) -> None:
    run_job(app, "sweep", sweep, _sweep_summary)


def run_deliver(app) -> None:
    found: list[dict] = []

    def summarize(result) -> dict:
        found[:] = _failures(result)
        return _delivery_summary(result, found)

    run_job(app, "deliver", deliver, summarize, failures=lambda: found)


def prune_login_throttle(now: datetime | None = None) -> int:
    """Delete login-throttle rows without a failure for more than ``FORGET_AFTER``; commit; return
    how many. The throttle already counts such keys from zero, so nothing changes for anybody; without
    this every guessed user name and address would keep its row for ever."""
    now_utc = as_utc(now).replace(tzinfo=None)
    try:
        removed = db.session.execute(
            delete(LoginThrottle)
            .where(LoginThrottle.last_failure_at < now_utc - FORGET_AFTER)
            # Never drop a delay still running (it cannot outlast a day with the current limits).
            .where(or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now_utc))
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return removed or 0


def run_prune_login_throttle(app) -> None:
    run_job(app, "prune", prune_login_throttle, lambda removed: {"removed": _count(removed)})


def render_pdfs(now: datetime | None = None):
    from ..publish.pdf_job import render_pending_pdfs

    return render_pending_pdfs(now)


def _pdf_summary(run) -> dict:
    summary = run.summary()
    if run.errors:
        summary["errors"] = [shorten(redact(line), 300) for line in run.errors[:5]]
    return summary


def run_render_pdfs(app) -> None:
    """The PDFs of new publications (publish/pdf_job.py): rendered here, never in the publish request."""
    run_job(app, "pdf", render_pdfs, _pdf_summary)


def build_scheduler(app, blocking: bool = False):
    """A scheduler with the sweep and delivery jobs (intervals from REMINDER_SWEEP_SECONDS and
    OUTBOX_DELIVER_SECONDS). The sweep runs often: it is cheap, idempotent, and sends nothing before
    each cycle's send time, so it also catches up right after a restart."""
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(
        timezone=app.config.get("TIMEZONE", "Asia/Shanghai"),
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    now = datetime.now(UTC)
    scheduler.add_job(run_sweep, "interval", args=[app], id="reminders.sweep", name="催报提醒扫描",
                      seconds=int(app.config.get("REMINDER_SWEEP_SECONDS", 300)), next_run_time=now)
    scheduler.add_job(run_deliver, "interval", args=[app], id="outbox.deliver", name="待发消息投递",
                      seconds=int(app.config.get("OUTBOX_DELIVER_SECONDS", 30)), next_run_time=now)
    scheduler.add_job(run_prune_login_throttle, "interval", args=[app], id="login_throttle.prune",
                      name="清理过期登录限制记录",
                      seconds=int(app.config.get("LOGIN_THROTTLE_PRUNE_SECONDS", 3600)), next_run_time=now)
    scheduler.add_job(run_render_pdfs, "interval", args=[app], id="publication.pdf", name="生成发布版本 PDF",
                      seconds=int(app.config.get("PDF_RENDER_SECONDS", 60)), next_run_time=now)
    scheduler.add_job(beat, "interval", args=[app], id="scheduler.heartbeat", name="调度器心跳",
                      seconds=HEARTBEAT_SECONDS)  # the first beat is written at start
    return scheduler


def start_in_process_scheduler(app) -> BackgroundScheduler:
    """Start the background scheduler inside this process, once per app (the demo's embedded mode)."""
    existing = _in_process.get(id(app))
    if existing is not None and existing.running:
        return existing
    scheduler = build_scheduler(app, blocking=False)
    beat(app)
    scheduler.start()
    _in_process[id(app)] = scheduler
    atexit.register(lambda: scheduler.running and scheduler.shutdown(wait=False))
    logger.info("In-process scheduler started")
    return scheduler


def run_blocking_scheduler(app) -> None:
    """Run the dedicated scheduler process until interrupted."""
    scheduler = build_scheduler(app, blocking=True)
    beat(app)
    logger.info("Scheduler started (pid %d)", os.getpid())
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
