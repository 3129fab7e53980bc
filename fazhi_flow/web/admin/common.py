"""Shared pieces of the admin pages: loading, refusal answers of the admin forms, small helpers.

Every admin route declares ``@handler("admin.manage")``: the handler lets in admins only (anonymous
users go to the login page, others get 403) and runs the route as one unit of work.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from flask import abort, current_app, make_response, redirect

from ...errors import DomainError
from ...extensions import db
from ..handler import on_refusal

MAX_CYCLE_FILE = 1024 * 1024
STAGING_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,60}$")
STAGING_MAX_AGE = 24 * 3600


def get_or_404(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def answer(build: Callable, status: int | None = None) -> Callable:
    """An ``on_refusal`` page that keeps its own status instead of the error's.

    Some admin forms answered a refusal with a redirect (303) or a page with a fixed status (the
    compile refusal is a 409, the open page a 200), and keep doing so. The handler has rolled back,
    audited and flashed before this is called; raising the finished response ends the request with
    it as it is.
    """

    def render():
        response = make_response(build())
        if status is not None:
            response.status_code = status
        abort(response)

    return render


def back_to(url: str) -> Callable:
    """An ``on_refusal`` answer for short POST buttons: the message flashed on the page ``url`` (a
    redirect keeps its own status)."""
    return lambda: redirect(url, code=303)


def on_refusal_with_error(render: Callable[[DomainError], object]):
    """``on_refusal`` for a page that shows more than the message (a cycle file's list of problems):
    ``render`` takes the refused error, so the handler gives it."""
    return on_refusal(render)


def compile_available() -> bool:
    return "compile.index" in current_app.view_functions
