"""APScheduler (3.x) set-up. The jobs only call ``sweep``, ``deliver`` and ``prune_login_throttle``
with the current time.

Production runs ``fazhi-flow scheduler``, a dedicated blocking process; web workers never start a
scheduler. The one-process demo calls ``start_in_process_scheduler(app)`` (when
``SCHEDULER_IN_PROCESS`` is set). Jobs keep no state in the scheduler: everything is in the database,
so a restart or a second scheduler process is harmless (see ``jobs.sweep``).
"""
from __future__ import annotations

import atexit
import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import delete, or_

from ..extensions import db
from ..models import LoginThrottle
from ..services.login_throttle import FORGET_AFTER
from .jobs import as_utc, deliver, sweep

logger = logging.getLogger(__name__)

_in_process: dict[int, BackgroundScheduler] = {}


def run_sweep(app) -> None:
    with app.app_context():
        try:
            result = sweep(datetime.now(timezone.utc))
            if result.queued:
                logger.info("Queued %d reminders", len(result.queued))
        except Exception:  # noqa: BLE001 - keep the scheduler alive; the next run tries again
            logger.exception("Reminder sweep failed")
        finally:
            db.session.remove()


def run_deliver(app) -> None:
    with app.app_context():
        try:
            result = deliver(datetime.now(timezone.utc))
            if result.total:
                logger.info("Outbox: %d sent, %d to retry, %d dead, %d cancelled",
                            result.sent, result.retried, result.dead, result.cancelled)
        except Exception:  # noqa: BLE001
            logger.exception("Outbox delivery failed")
        finally:
            db.session.remove()


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
    with app.app_context():
        try:
            removed = prune_login_throttle(datetime.now(timezone.utc))
            if removed:
                logger.info("Removed %d stale login throttle rows", removed)
        except Exception:  # noqa: BLE001 - keep the scheduler alive; the next run tries again
            logger.exception("Login throttle pruning failed")
        finally:
            db.session.remove()


def build_scheduler(app, blocking: bool = False):
    """A scheduler with the sweep and delivery jobs (intervals from REMINDER_SWEEP_SECONDS and
    OUTBOX_DELIVER_SECONDS). The sweep runs often: it is cheap, idempotent, and sends nothing before
    each cycle's send time, so it also catches up right after a restart."""
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(
        timezone=app.config.get("TIMEZONE", "Asia/Shanghai"),
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    now = datetime.now(timezone.utc)
    scheduler.add_job(run_sweep, "interval", args=[app], id="reminders.sweep", name="催报提醒扫描",
                      seconds=int(app.config.get("REMINDER_SWEEP_SECONDS", 300)), next_run_time=now)
    scheduler.add_job(run_deliver, "interval", args=[app], id="outbox.deliver", name="待发消息投递",
                      seconds=int(app.config.get("OUTBOX_DELIVER_SECONDS", 30)), next_run_time=now)
    scheduler.add_job(run_prune_login_throttle, "interval", args=[app], id="login_throttle.prune",
                      name="清理过期登录限制记录",
                      seconds=int(app.config.get("LOGIN_THROTTLE_PRUNE_SECONDS", 3600)), next_run_time=now)
    return scheduler


def start_in_process_scheduler(app) -> BackgroundScheduler:
    """Start the background scheduler inside this process, once per app (the demo's embedded mode)."""
    existing = _in_process.get(id(app))
    if existing is not None and existing.running:
        return existing
    scheduler = build_scheduler(app, blocking=False)
    scheduler.start()
    _in_process[id(app)] = scheduler
    atexit.register(lambda: scheduler.running and scheduler.shutdown(wait=False))
    logger.info("In-process scheduler started")
    return scheduler


def run_blocking_scheduler(app) -> None:
    """Run the dedicated scheduler process until interrupted."""
    scheduler = build_scheduler(app, blocking=True)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
