"""fazhi_flow: compile the annual 法治政府建设 report from the material of many units."""
from __future__ import annotations

import importlib
import json
import os
from datetime import timedelta
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
# A checkout (or editable install) has templates/ and migrations/ beside the package; a wheel carries
# them inside it as _templates/ and _migrations/. pyproject.toml marks a checkout: site-packages has none.
IN_CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "templates").is_dir()
__version__ = "0.1.0"


def resource_dir(name: str) -> Path:
    """templates or migrations: the checkout's top-level folder, else the copy inside the package."""
    return ROOT / name if IN_CHECKOUT else PACKAGE / f"_{name}"


def _load_config_module():
    # Reloaded each time: ProductionConfig reads FAZHI_SESSION_COOKIE_SECURE when its class is built.
    from . import settings

    return importlib.reload(settings)


def _env_value(raw: str, current):
    if isinstance(current, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(raw)
    if isinstance(current, dict):
        return {**current, **json.loads(raw)}
    return raw


def load_config(app: Flask, config=None) -> None:
    """Apply the named config class, then ``FAZHI_*`` environment overrides, then ``config`` (a dict)."""
    module = _load_config_module()
    name = config if isinstance(config, str) else os.environ.get("FAZHI_ENV", "development")
    if name not in module.CONFIGS:
        raise RuntimeError(f"FAZHI_ENV must be one of {sorted(module.CONFIGS)}, not {name!r}")
    app.config.from_object(module.CONFIGS[name])
    app.config["ENV_NAME"] = name
    for key, raw in os.environ.items():
        if key.startswith("FAZHI_") and key not in ("FAZHI_ENV",):
            setting = key[len("FAZHI_"):]
            app.config[setting] = _env_value(raw, app.config.get(setting))
    if isinstance(config, dict):
        app.config.update(config)

    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'fazhi_flow.db'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("UPLOAD_FOLDER", None)
    if not app.config["UPLOAD_FOLDER"]:
        app.config["UPLOAD_FOLDER"] = str(Path(app.instance_path) / "uploads")

    _check_ranges(app.config)
    _session_limits(app)
    _check_attachment_storage(app.config.get("ATTACHMENT_STORAGE"))
    # Statement parameters (draft texts, names) never reach an error message or a log line.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"hide_parameters": True,
                                               **(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})}
    if name == "production":
        _check_secret_key(app.config.get("SECRET_KEY"), module.DEFAULT_SECRET)


MIN_SECRET_BYTES = 32


def _session_limits(app: Flask) -> None:
    # The signature's own age limit backs up the timestamps checked on each request: a session or
    # remember cookie signed longer ago than the absolute limit is refused outright.
    lifetime = timedelta(hours=int(app.config["SESSION_ABSOLUTE_HOURS"]))
    app.config["PERMANENT_SESSION_LIFETIME"] = lifetime
    app.config["REMEMBER_COOKIE_DURATION"] = lifetime


def _check_secret_key(key, default: str) -> None:
    """Refuse a missing, default or short key: it signs the sessions, so a guessable one is a login."""
    raw = key.encode("utf-8") if isinstance(key, str) else (key or b"")
    if key == default or len(raw) < MIN_SECRET_BYTES:
        raise RuntimeError(
            f"生产环境必须设置至少{MIN_SECRET_BYTES}字节的随机密钥：请设置环境变量 FAZHI_SECRET_KEY，例如 "
            "export FAZHI_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')\n"
            f"Production needs a random SECRET_KEY of at least {MIN_SECRET_BYTES} bytes: set FAZHI_SECRET_KEY, "
            "e.g. export FAZHI_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )


# Settings that must be whole numbers within a range: (low, high); outside it the start is refused.
RANGES = {
    "TRUSTED_PROXIES": (0, 5),
    "SESSION_IDLE_MINUTES": (1, 7 * 24 * 60),
    "SESSION_ABSOLUTE_HOURS": (1, 30 * 24),
    "SCHEDULER_STALE_SECONDS": (30, 7 * 24 * 3600),
    "DEVICE_COOKIE_DAYS": (1, 3650),
    # Unsent messages (other than reminders) are given up after this many hours: 1 hour to 30 days.
    "OUTBOX_MAX_AGE_HOURS": (1, 30 * 24),
    "OUTBOX_PROBE_MAX_SECONDS": (5, 24 * 3600),  # longest wait between two probes of a failing channel
    "COMPILE_INLINE_MAX_CHARS": (0, 100_000_000),
    "COMPILE_INLINE_MAX_ITEMS": (0, 1_000_000),
    "DASHBOARD_UNITS_PER_PAGE": (1, 10_000),
    "OIDC_TIMEOUT": (1, 120),  # seconds per request to the single sign-on provider
    "LDAP_TIMEOUT": (1, 120),
}


def _check_ranges(config) -> None:
    """Refuse out-of-range numbers at start: a negative TRUSTED_PROXIES, say, breaks every proxied
    request, and a zero staleness makes /readyz fail for ever."""
    for key, (low, high) in RANGES.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuntimeError(f"FAZHI_{key} 必须是 {low} 到 {high} 之间的整数，现在是“{str(value)[:40]}”。\n"
                               f"FAZHI_{key} must be a whole number from {low} to {high}.")
    from .proxies import parse_networks

    parse_networks(config.get("TRUSTED_PROXY_IPS"), "FAZHI_TRUSTED_PROXY_IPS")


def _check_attachment_storage(value) -> None:
    """A misspelt storage would otherwise surface as a 500 at the first upload or download."""
    if str(value or "folder").strip().lower() not in ("folder", "database"):
        raise RuntimeError(f"FAZHI_ATTACHMENT_STORAGE 只能是 folder 或 database，现在是“{str(value)[:40]}”。\n"
                           "FAZHI_ATTACHMENT_STORAGE must be folder or database.")


def _default_instance_path() -> str | None:
    # None lets Flask pick <prefix>/var/fazhi_flow-instance for an installed package.
    return str(ROOT / "instance") if IN_CHECKOUT else None


def create_app(config=None) -> Flask:
    """Build the application. ``config``: a config name, or a dict of settings for tests."""
    app = Flask(
        __name__,
        template_folder=str(resource_dir("templates")),
        static_folder="static",
        instance_path=os.environ.get("FAZHI_INSTANCE_PATH") or _default_instance_path(),
    )
    load_config(app, config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    from .database import SessionScope

    app.wsgi_app = SessionScope(app.wsgi_app)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        from .proxies import TrustedProxyFix

        app.wsgi_app = TrustedProxyFix(app.wsgi_app, app.config.get("TRUSTED_PROXY_IPS"), proxies)

    from . import models  # noqa: F401  (register every table on the metadata)
    from .database import configure_engine
    from .extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(resource_dir("migrations")), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    with app.app_context():
        configure_engine(db.engine)

    from .auth_loader import init_login

    init_login(login_manager)

    from .web import register_web

    register_web(app)

    from .api import init_app as init_api

    init_api(app)  # the REST API under /api/v1 and its token page

    from . import ops

    ops.init_app(app)

    from .notify import health

    health.init_app(app)

    from .notify import events as notify_events

    notify_events.connect()

    from .cli import fazhi

    app.cli.add_command(fazhi)
    return app
