"""One path for every route: who may enter it, and one unit of work for what it changes.

    @bp.route("/cycles/<int:cycle_id>/edit", methods=["GET", "POST"])
    @handler("admin.manage")
    def cycle_edit(cycle_id):
        cycle = get_or_404(ReportCycle, cycle_id)
        form = CycleEditForm(obj=cycle)
        if form.validate_on_submit():
            with on_refusal(lambda: _edit_page(cycle, form)):
                outline_svc.update_cycle_settings(cycle, current_user, ...)
            flash("已保存。", "success")
            return redirect(url_for(".cycle_edit", cycle_id=cycle.id), code=303)
        return _edit_page(cycle, form)

``handler(action)`` declares the route's permission (``policy.can(current_user, action)``; anonymous
users go to the login page, others get 403) and runs the view in one unit of work: a response with
a status below 400 commits, anything else rolls back. A ``DomainError`` (``Conflict`` included) raised
by the view rolls everything back, audits a 403, flashes the Chinese message and shows, in this
order: the page given by the innermost ``on_refusal`` (built after the rollback, so it shows what is
in the database beside the form that still holds what the user typed), the referring page for a
POST, or the error page. ``public`` declares a route anyone may open.

Object-level checks stay in the view: ``policy.require(current_user, "contribution.edit", c)``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import contextmanager

from flask import current_app, flash, make_response, redirect, request
from flask_login import current_user

from .. import policy
from ..errors import DomainError
from ..extensions import db

# Set on every view function by @handler/@public; tests/web/test_route_policy.py reads it.
POLICY_ATTR = "_fazhi_policy"
PUBLIC = "public"


class Refused(Exception):
    """A DomainError with the page that shows it (from ``on_refusal``)."""

    def __init__(self, error: DomainError, render: Callable):
        super().__init__(error.message)
        self.error = error
        self.render = render


@contextmanager
def on_refusal(render: Callable):
    """Inside, a DomainError is shown by ``render()`` (called after the rollback) with its status."""
    try:
        yield
    except DomainError as exc:
        raise Refused(exc, render) from exc


def _refused(error: DomainError, render: Callable | None):
    from ..services.audit import record_refusal
    from .errors import render_error, safe_referrer

    db.session.rollback()
    if error.status == 403:
        record_refusal("forbidden", error.message)
    if render is not None:
        flash(error.message, "error")
        response = make_response(render())
        response.status_code = error.status
        return response
    back = safe_referrer() if request.method == "POST" else None
    if back:
        flash(error.message, "error")
        return redirect(back, code=303)
    return render_error(error.status, error.message)


def _enter(action: str):
    if action == PUBLIC or policy.can(current_user, action):
        return None
    if not policy.logged_in(current_user):
        return current_app.login_manager.unauthorized()
    from werkzeug.exceptions import Forbidden

    raise Forbidden()


def handler(action: str):
    """Declare the route's permission and run it as one unit of work (see the module docstring)."""
    if action != PUBLIC and not policy.known_action(action):
        raise KeyError(f"no policy rule for {action!r}")

    def wrap(view):
        @functools.wraps(view)
        def run(*args, **kwargs):
            early = _enter(action)
            if early is not None:
                return early
            try:
                response = make_response(view(*args, **kwargs))
                if response.status_code < 400:
                    db.session.commit()
                else:
                    db.session.rollback()
                return response
            except Refused as refused:
                return _refused(refused.error, refused.render)
            except DomainError as exc:
                return _refused(exc, None)

        setattr(run, POLICY_ATTR, action)
        return run

    return wrap


def public(view):
    """A route anyone may open (login, the public report, health checks); still one unit of work."""
    return handler(PUBLIC)(view)
