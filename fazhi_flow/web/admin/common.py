"""Shared pieces of the admin pages: loading, refusal answers of the admin forms, small helpers.

Every admin route declares ``@handler("admin.manage")``: the handler lets in admins only (anonymous
users go to the login page, others get 403) and runs the route as one unit of work.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from flask import abort, current_app, redirect

from ..own_region import row_or_none

MAX_CYCLE_FILE = 1024 * 1024
STAGING_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,60}$")
STAGING_MAX_AGE = 24 * 3600


def get_any_or_404(model, ident):
    """The row ``ident`` whatever its region: only for pages above the regions (系统管理员's)."""
    obj = row_or_none(model, ident)
    if obj is None:
        abort(404)
    return obj


def back_to(url: str) -> Callable:
    """An ``on_refusal`` answer for short POST buttons: the message flashed on the page ``url`` (a
    redirect keeps its own status)."""
    return lambda: redirect(url, code=303)


def compile_available() -> bool:
    return "compile.index" in current_app.view_functions
