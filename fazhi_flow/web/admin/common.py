"""Shared pieces of the admin pages: the admin-only guard and small helpers."""
from __future__ import annotations

import re

from flask import abort, current_app, flash
from flask_login import current_user

from ...errors import DomainError
from ...extensions import db
from . import bp

MAX_CYCLE_FILE = 1024 * 1024
STAGING_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,60}$")
STAGING_MAX_AGE = 24 * 3600


@bp.before_request
def _admin_only():
    # Server-side guard for every admin route, GET included.
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not current_user.has_role("admin"):
        abort(403)
    return None


def get_or_404(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def flash_refusal(exc: DomainError) -> None:
    db.session.rollback()
    flash(exc.message, "error")


def compile_available() -> bool:
    return "compile.index" in current_app.view_functions
