"""/healthz (the process answers) and /readyz (it can serve: database, schema, scheduler).

Both are answered by the operations middleware (see logs.py) before Flask: no login, no CSRF, no
session cookie, no user loading, and a probe is never counted as somebody's activity. /healthz touches
nothing else; /readyz runs ``SELECT 1``, compares the database's Alembic revision with the heads of the
migrations that ship with this version, and, where a scheduler is expected (SCHEDULER_EXPECTED, on in
production), checks that its heartbeat is younger than SCHEDULER_STALE_SECONDS. Any failure is a 503
with the reasons in JSON; exception texts go to the log, not to the caller.

/readyz is public (load balancers call it), so its answer says only ok or unavailable and why in a
few words. The details (migration revisions, heartbeat time and age) go only to the callers /metrics
admits: an address in METRICS_ALLOWED_IPS or the METRICS_TOKEN bearer token.
"""
from __future__ import annotations

import json
import logging
from contextlib import nullcontext

from sqlalchemy import inspect, text
from werkzeug.wrappers import Response

from .logs import event, middleware, shorten
from .metrics import _address_allowed, _networks, _token_ok

logger = logging.getLogger(__name__)

SCHEDULER_ROW = "scheduler"
_heads_cache: dict[str, frozenset[str]] = {}


def json_response(data: dict, status: int = 200) -> Response:
    response = Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _only_get(environ) -> Response | None:
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        response = json_response({"status": "error", "reason": "只支持 GET"}, 405)
        response.headers["Allow"] = "GET, HEAD"
        return response
    return None


def healthz(environ) -> Response:
    return _only_get(environ) or json_response({"status": "ok"})


def migration_heads(directory: str) -> frozenset[str]:
    """The head revisions of the migrations folder (read once per process: it changes only with an
    install, after which the service restarts)."""
    heads = _heads_cache.get(directory)
    if heads is None:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", directory)
        heads = frozenset(ScriptDirectory.from_config(config).get_heads())
        _heads_cache[directory] = heads
    return heads


def _check_database(session) -> dict:
    session.execute(text("SELECT 1"))
    return {"ok": True}


def _check_migrations(session, directory: str) -> dict:
    # The version table read directly: alembic's MigrationContext would log two INFO lines per probe.
    heads = migration_heads(directory)
    connection = session.connection()
    current = frozenset()
    if inspect(connection).has_table("alembic_version"):
        current = frozenset(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    result = {"ok": current == heads, "current": sorted(current), "head": sorted(heads)}
    if not result["ok"]:
        result["reason"] = ("数据库结构不是本版本的最新版：请运行 fazhi-flow db upgrade。" if current
                            else "数据库没有迁移版本记录：请运行 fazhi-flow db upgrade。")
    return result


def scheduler_state(session, now, stale_seconds: int) -> dict:
    """The heartbeat of the scheduler process: its age in seconds and whether it is fresh."""
    from ..models.ops import JobStatus

    row = session.get(JobStatus, SCHEDULER_ROW)
    if row is None or row.beat_at is None:
        return {"fresh": False, "beat_at": None, "age_seconds": None}
    age = (now - row.beat_at).total_seconds()
    # Host and pid stay in the table (and the log): the answer is public, it names no machine.
    return {"fresh": -60 <= age < stale_seconds, "beat_at": row.beat_at.isoformat() + "Z",
            "age_seconds": int(age)}


def _check_scheduler(session, config) -> dict:
    from ..timeutil import utcnow

    expected = bool(config.get("SCHEDULER_EXPECTED"))
    stale = int(config.get("SCHEDULER_STALE_SECONDS") or 180)
    state = scheduler_state(session, utcnow(), stale)
    result = {"ok": state["fresh"] or not expected, "expected": expected, **state}
    if expected and not state["fresh"]:
        if state["beat_at"] is None:
            result["reason"] = "没有调度器心跳记录：请启动 fazhi-flow scheduler（只启动一个）。"
        else:
            result["reason"] = (f"调度器心跳已超过{stale // 60}分钟（{state['age_seconds']}秒前）："
                                "请检查 fazhi-flow scheduler 是否在运行。")
    return result


def readiness(app, environ: dict | None = None) -> tuple[int, dict]:
    """Run the checks; ``(status, body)``. Never raises. With the probe's ``environ`` they run in a
    request context of their own, so that on SQLite the reads begin DEFERRED: a probe never takes
    the write lock nor waits behind a writer (see database.wants_write_lock)."""
    from .. import resource_dir
    from ..extensions import db

    checks: dict[str, dict] = {}
    try:
        # A fresh app context first: the request context would otherwise join one already pushed
        # (a test's) and share, then roll back and close, its database session.
        with app.app_context(), (app.request_context(environ) if environ is not None else nullcontext()):
            session = db.session
            try:
                try:
                    checks["database"] = _check_database(session)
                except Exception as exc:  # noqa: BLE001 - an unreachable database is an answer
                    session.rollback()
                    event(logger, logging.WARNING, "readyz_database_failed",
                          error=f"{type(exc).__name__}: {shorten(exc, 300)}")
                    checks["database"] = {"ok": False, "reason": f"数据库无法连接（{type(exc).__name__}），详见服务日志。"}
                else:
                    for name, check in (
                        ("migrations", lambda: _check_migrations(session, str(resource_dir("migrations")))),
                        ("scheduler", lambda: _check_scheduler(session, app.config)),
                    ):
                        try:
                            checks[name] = check()
                        except Exception as exc:  # noqa: BLE001
                            session.rollback()
                            event(logger, logging.WARNING, f"readyz_{name}_failed",
                                  error=f"{type(exc).__name__}: {shorten(exc, 300)}")
                            checks[name] = {"ok": False, "reason": f"检查失败（{type(exc).__name__}），详见服务日志。"}
            finally:
                session.rollback()
                session.remove()
    except Exception as exc:  # noqa: BLE001 - e.g. the app context itself failed
        logger.warning("Readiness check failed: %s", type(exc).__name__)
        checks.setdefault("app", {"ok": False, "reason": f"检查失败（{type(exc).__name__}），详见服务日志。"})
    ok = bool(checks) and all(c.get("ok") for c in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    if not ok:
        body["reasons"] = [f"{name}: {c.get('reason', '检查失败')}" for name, c in checks.items()
                           if not c.get("ok")]
    return (200 if ok else 503), body


# What a caller without access to the details learns about a failed check.
PUBLIC_REASONS = {
    "database": "数据库无法连接",
    "migrations": "数据库结构不是最新",
    "scheduler": "调度器没有在运行",
}


def details_allowed(app, environ) -> bool:
    """The rule of /metrics: the bearer token, or an address in METRICS_ALLOWED_IPS."""
    try:
        networks = _networks(app.config.get("METRICS_ALLOWED_IPS", "127.0.0.1,::1"))
    except RuntimeError:
        networks = []
    token = str(app.config.get("METRICS_TOKEN") or "")
    trusted = int(app.config.get("TRUSTED_PROXIES") or 0)
    return _token_ok(environ, token) or _address_allowed(environ, networks, trusted)


def public_body(body: dict) -> dict:
    reasons = [PUBLIC_REASONS.get(name, "检查失败") for name, check in body["checks"].items()
               if not check.get("ok")]
    return {"status": body["status"], "reasons": reasons}


def readyz_handler(app):
    def readyz(environ) -> Response:
        refused = _only_get(environ)
        if refused is not None:
            return refused
        status, body = readiness(app, environ)
        if not details_allowed(app, environ):
            body = public_body(body)
        return json_response(body, status)

    return readyz


def init_app(app) -> None:
    mw = middleware(app)
    mw.route("/healthz", "ops.healthz", healthz)
    mw.route("/readyz", "ops.readyz", readyz_handler(app))
