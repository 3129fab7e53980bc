"""Web blueprints, error pages, security headers and template helpers.

Each area is a package under ``fazhi_flow/web/`` exposing a blueprint named ``bp`` in its
``__init__.py``; the optional areas listed in ``OPTIONAL_AREAS`` are registered when their package
exists, so an area can be added without touching this file.
"""
from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

CORE_AREAS = ("main", "auth", "tasks", "review", "inbox")
OPTIONAL_AREAS = ("admin", "dashboard", "reminders", "compile", "public", "figures", "oversight", "search",
                  "delegations")


def _import_blueprint(name: str, optional: bool):
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        # Only a missing area package is tolerated; a broken import inside one is a real error.
        if optional and exc.name in (f"{__name__}.{name}",):
            return None
        raise
    return getattr(module, "bp", None)


def register_web(app) -> None:
    """Register every blueprint, error handler and template helper on ``app``."""
    from . import errors, helpers, security
    from .fields import DbIntConverter

    from .request import FazhiRequest

    # Before any rule is added, so every <int:...> of every area uses it.
    app.url_map.converters["int"] = DbIntConverter
    app.request_class = FazhiRequest
    for name in CORE_AREAS + OPTIONAL_AREAS:
        bp = _import_blueprint(name, optional=name in OPTIONAL_AREAS)
        if bp is not None and bp.name not in app.blueprints:
            app.register_blueprint(bp)

    errors.register(app)
    security.register(app)
    helpers.register(app)

    from ..services import inbox_events

    inbox_events.connect()
