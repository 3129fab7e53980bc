"""Logs an IT department can read: one line per request, per job run and per refused login.

The ``fazhi_flow`` logger tree gets one handler writing to stderr (systemd's journal, gunicorn's
error log), plain ``key=value`` text by default or one JSON object per line with
``FAZHI_LOG_FORMAT=json``; the level comes from ``FAZHI_LOG_LEVEL``. Records still propagate to the
root logger, so pytest's caplog and any logging the host sets up see them too.

No line carries a password, a token, a cookie, a CSRF token or a message body: request lines have the
path without its query string, refused logins the user name as typed (shortened), and every line goes
through ``redact`` which blanks the configured secrets and ``token=``-like URL parameters.

The WSGI middleware here also answers the operations endpoints (/healthz, /readyz, /metrics) before
Flask sees them, so they never open a session, set a cookie, load a user or count as activity.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, has_request_context, request

LOGGER_NAME = "fazhi_flow"
logger = logging.getLogger(__name__)
request_logger = logging.getLogger("fazhi_flow.request")
auth_logger = logging.getLogger("fazhi_flow.auth")

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENVIRON_ID = "fazhi.request_id"
ENVIRON_ENDPOINT = "fazhi.endpoint"
ENVIRON_USER = "fazhi.user"
# A caller's request id is kept only when it is short and plain (it ends up in every line).
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# Query parameters and key=value pairs whose value is a credential (robot URLs carry access_token=).
_SECRET_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9_])((?:access_)?token|secret|sign|signature|password|passwd|pwd|api_?key|key)"
    r"=([^&\s\"',;]+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIN_SECRET = 4  # shorter "secrets" (e.g. an empty password) would blank ordinary text

_secrets: set[str] = set()


# ---------------------------------------------------------------- redaction


def remember_secrets(*values) -> None:
    """Blank these strings wherever they would appear in a log line (settings' passwords, keys)."""
    for value in values:
        if isinstance(value, str) and len(value) >= _MIN_SECRET:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with the remembered secrets and credential-like URL parameters replaced by ***."""
    if not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


def shorten(value, limit: int = 40) -> str:
    """One line, at most ``limit`` characters (control characters dropped)."""
    text = _CONTROL.sub("", str(value or ""))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- formatting


def event(log: logging.Logger, level: int, what: str, /, **fields) -> None:
    """Log the event ``what`` with ``fields``: ``what k=v k=v`` in text, separate keys in JSON."""
    if not log.isEnabledFor(level):
        return
    log.log(level, "%s %s", what, _logfmt(fields), extra={"fazhi_event": what, "fazhi_fields": fields})


def _logfmt(fields: dict) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            value = "-"
        if isinstance(value, float):
            text = f"{value:.1f}"
        elif isinstance(value, dict):  # e.g. by_kind=digest:1,escalation:2
            text = ",".join(f"{k}:{v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):  # e.g. dead_reasons="#3 收件人被拒绝… | #9 …"
            text = " | ".join(str(v) for v in value)
        else:
            text = str(value)
        if not text or re.search(r"[\s\"=\\]|[\x00-\x1f]", text):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _current_request_id() -> str | None:
    if has_request_context():
        return request.environ.get(ENVIRON_ID)
    return None


DEFAULT_ZONE = "Asia/Shanghai"


def log_zone(name: str | None = None) -> ZoneInfo:
    """The zone of log timestamps (the TIMEZONE setting, Beijing time by default); a name that is no
    time zone stops the start with a message, like a bad log level."""
    name = str(name or DEFAULT_ZONE).strip()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(f"FAZHI_TIMEZONE 必须是时区名称，如 Asia/Shanghai，而不是“{shorten(name)}”。") from None


def log_time(created: float, zone: ZoneInfo) -> str:
    """'2025-01-06T09:00:00.123+08:00': the record's moment in the configured zone, offset included so
    that lines stay comparable with other servers' logs."""
    return datetime.fromtimestamp(created, zone).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    def __init__(self, zone: ZoneInfo | None = None):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.zone = zone or log_zone()

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return log_time(record.created, self.zone)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = _current_request_id()
        if rid and not hasattr(record, "fazhi_event"):
            # Other lines written while serving a request (errors, warnings) name the request too.
            line = line.replace("\n", f" request_id={rid}\n", 1) if "\n" in line else f"{line} request_id={rid}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    def __init__(self, zone: ZoneInfo | None = None):
        super().__init__()
        self.zone = zone or log_zone()

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": log_time(record.created, self.zone),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fazhi_fields", None)
        if fields is not None:
            data["event"] = record.fazhi_event
            data.update({k: v for k, v in fields.items() if k not in data})
        else:
            data["message"] = record.getMessage()
            rid = _current_request_id()
            if rid:
                data["request_id"] = rid
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return redact(json.dumps(data, ensure_ascii=False, default=str))


def _not_ours(record: logging.LogRecord) -> bool:
    return not (record.name == LOGGER_NAME or record.name.startswith(LOGGER_NAME + "."))


def _console_streams() -> tuple:
    return tuple(x for x in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__) if x is not None)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest swaps it per test).

    Records still propagate (pytest's caplog and log files on the root logger see them), but a
    console handler that something else puts on the root logger (alembic's logging set-up during
    ``db upgrade``, ``logging.basicConfig``) would print each of our lines a second time in another
    format: such handlers are told to leave our records out."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass

    def handle(self, record):
        consoles = _console_streams()
        for other in logging.getLogger().handlers:
            if (isinstance(other, logging.StreamHandler) and not isinstance(other, _StderrHandler)
                    and getattr(other, "stream", None) in consoles and _not_ours not in other.filters):
                other.addFilter(_not_ours)
        return super().handle(record)


def _werkzeug_access_line(record: logging.LogRecord) -> bool:
    # The development server's own request line (with the query string): ours replaces it.
    return not (isinstance(record.msg, str) and record.msg.endswith('] "%s" %s %s'))


def configure(level: str = "INFO", fmt: str = "text", zone: str | None = None) -> logging.Handler:
    """Give the ``fazhi_flow`` logger its one stderr handler (replaced, never added twice); timestamps
    in ``zone`` (the TIMEZONE setting)."""
    level_name = str(level or "INFO").strip().upper()
    fmt = str(fmt or "text").strip().lower()
    if level_name not in LEVELS:
        raise RuntimeError(f"FAZHI_LOG_LEVEL 必须是 {'、'.join(LEVELS)} 之一，而不是“{shorten(level)}”。")
    if fmt not in FORMATS:
        raise RuntimeError(f"FAZHI_LOG_FORMAT 必须是 text 或 json，而不是“{shorten(fmt)}”。")
    tz = log_zone(zone)
    root = logging.getLogger(LOGGER_NAME)
    from flask.logging import default_handler

    # Flask adds its own stderr handler to app.logger (also named fazhi_flow) when it finds none.
    root.removeHandler(default_handler)
    for handler in [h for h in root.handlers if getattr(h, "_fazhi_ops", False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler._fazhi_ops = True
    handler.setFormatter(JsonFormatter(tz) if fmt == "json" else TextFormatter(tz))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level_name))
    werkzeug = logging.getLogger("werkzeug")
    if _werkzeug_access_line not in werkzeug.filters:
        werkzeug.addFilter(_werkzeug_access_line)
    return handler


# ---------------------------------------------------------------- lines


def log_refused_login(username: str, reason: str, ip: str | None) -> None:
    """The one line for a refused login: what was typed as the user name (shortened), why, from where."""
    event(auth_logger, logging.WARNING, "login_refused", user=shorten(username, 40), reason=reason, ip=ip)


def log_request(environ: dict, status: int | None, seconds: float) -> None:
    endpoint = environ.get(ENVIRON_ENDPOINT)
    probe = endpoint in OPS_ENDPOINTS
    # Probes every few seconds would drown the log; they show at DEBUG unless they fail.
    level = logging.DEBUG if probe and (status or 500) < 400 else logging.INFO
    if (status or 500) >= 500:
        level = logging.WARNING
    event(request_logger, level, "request",
          method=shorten(environ.get("REQUEST_METHOD"), 10),
          path=shorten(environ.get("PATH_INFO") or "/", 200),
          status=status if status is not None else "-",
          duration_ms=round(seconds * 1000, 1),
          user=environ.get(ENVIRON_USER) or "-",
          ip=environ.get("REMOTE_ADDR") or "-",
          request_id=environ.get(ENVIRON_ID))


# ---------------------------------------------------------------- middleware

OPS_ENDPOINTS = {"ops.healthz", "ops.readyz", "ops.metrics"}


def request_id_from(value: str | None) -> str:
    value = (value or "").strip()
    return value if _SANE_ID.match(value) else uuid.uuid4().hex


class OpsMiddleware:
    """Times every request, gives it a request id (echoed as X-Request-ID), writes its log line,
    tells the observers (metrics) and answers the operations endpoints itself."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        # path -> (endpoint name, handler(environ) -> a werkzeug Response)
        self.routes: dict[str, tuple[str, Callable]] = {}
        self.observers: list[Callable[[dict, int, float], None]] = []

    def route(self, path: str, endpoint: str, handler: Callable) -> None:
        self.routes[path] = (endpoint, handler)

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        rid = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENVIRON_ID] = rid
        state: dict = {}

        def _start(status, headers, exc_info=None):
            state["status"] = int(str(status).split(" ", 1)[0])
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        route = self.routes.get(environ.get("PATH_INFO") or "/")
        try:
            if route is not None:
                endpoint, handler = route
                environ[ENVIRON_ENDPOINT] = endpoint
                body = handler(environ)(environ, _start)
            else:
                body = self.wsgi_app(environ, _start)
        except BaseException:
            self._done(environ, 500, started)
            raise
        if "status" in state:
            self._done(environ, state["status"], started)
            return body
        return _Closing(body, lambda: self._done(environ, state.get("status"), started))

    def _done(self, environ, status, started) -> None:
        seconds = time.perf_counter() - started
        try:
            log_request(environ, status, seconds)
            for observe in self.observers:
                observe(environ, status, seconds)
        except Exception:  # bookkeeping must never break the answer
            logger.exception("Request bookkeeping failed")


class _Closing:
    """A response body whose status is only known once iterated: finish the bookkeeping at close."""

    def __init__(self, body, on_close):
        self.body, self.on_close = body, on_close

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.on_close()


def middleware(app) -> OpsMiddleware:
    """The app's OpsMiddleware, installed once, beneath ProxyFix so that REMOTE_ADDR is the client's."""
    existing = app.extensions.get("fazhi_ops_middleware")
    if existing is not None:
        return existing
    from werkzeug.middleware.proxy_fix import ProxyFix

    if isinstance(app.wsgi_app, ProxyFix):
        app.wsgi_app.app = mw = OpsMiddleware(app.wsgi_app.app)
    else:
        app.wsgi_app = mw = OpsMiddleware(app.wsgi_app)
    app.extensions["fazhi_ops_middleware"] = mw
    return mw


def _note_endpoint_and_user(exc=None) -> None:
    """Hand the endpoint and the user id to the middleware's line. A teardown hook: it runs after
    every after_request hook, so it sees the user those loaded, and it reads the id from the identity
    map rather than the row (after a commit reading ``user.id`` would query the database again)."""
    environ = request.environ
    # The operations endpoints push a request context of their own; their name is already set.
    environ.setdefault(ENVIRON_ENDPOINT, request.endpoint)
    user = g.get("_login_user")
    if user is None or not hasattr(user, "__table__"):  # nobody looked, or the anonymous user
        return
    from sqlalchemy import inspect

    identity = inspect(user).identity
    if identity:
        environ[ENVIRON_USER] = str(identity[0])


def _database_password(url) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:  # noqa: BLE001 - an odd URL has no password to hide
        return None


def init_app(app) -> None:
    configure(app.config.get("LOG_LEVEL", "INFO"), app.config.get("LOG_FORMAT", "text"),
              app.config.get("TIMEZONE", DEFAULT_ZONE))
    remember_secrets(app.config.get("SECRET_KEY"), app.config.get("MAIL_PASSWORD"),
                     app.config.get("METRICS_TOKEN"),
                     _database_password(app.config.get("SQLALCHEMY_DATABASE_URI")))
    middleware(app)
    app.teardown_request(_note_endpoint_and_user)
