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

``handler(action, message=...)`` declares the route's permission (``policy.can(current_user, action)``;
anonymous users go to the login page, others get 403 with ``message`` when one is given) and runs the
view in one unit of work: a response with a status below 400 commits, anything else rolls back. A
``DomainError`` (``Conflict`` included) raised by the view rolls everything back, audits a 403 and
shows, in this order: the page given by the innermost ``on_refusal`` (built after the rollback, so it
shows what is in the database beside the form that still holds what the user typed), the referring
page for a POST (the message flashed), or the error page. ``public`` declares a route anyone may open.

``on_refusal(render, status=None, flash=True)`` chooses how its page answers: ``status`` None keeps
the error's own status, a number or a function of the error sets it (a redirect keeps its own);
``flash=False`` leaves the message to the page (``render`` may take the error to show it in the form).

Object-level checks stay in the view: ``policy.require(current_user, "contribution.edit", c)``.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

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

    def __init__(self, error: DomainError, answer: _Answer):
        super().__init__(error.message)
        self.error = error
        self.answer = answer


Status = int | Callable[[DomainError], int] | None


@dataclass(frozen=True)
class _Answer:
    render: Callable
    status: Status = None
    flash: bool = True

    def respond(self, error: DomainError):
        if self.flash:
            flash(error.message, "error")
        response = make_response(self.render(error) if _takes_error(self.render) else self.render())
        if not 300 <= response.status_code < 400:  # a redirect keeps its own status
            wanted = self.status(error) if callable(self.status) else self.status
            response.status_code = wanted or error.status
        return response


def _takes_error(render: Callable) -> bool:
    """True when ``render`` has a positional parameter without a default: it is given the error."""
    try:
        params = inspect.signature(render).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


@contextmanager
def on_refusal(render: Callable, status: Status = None, flash: bool = True):
    """Inside, a DomainError is shown by ``render()`` (or ``render(error)``), called after the
    rollback; ``status``: None for the error's own, a number, or a function of the error; ``flash``:
    whether the message is flashed (False when the page shows it itself)."""
    try:
        yield
    except DomainError as exc:
        raise Refused(exc, _Answer(render, status, flash)) from exc


def _refused(error: DomainError, answer: _Answer | None):
    from ..services.audit import record_refusal
    from .errors import render_error, safe_referrer

    db.session.rollback()
    if error.status == 403:
        record_refusal("forbidden", error.message)
    if answer is not None:
        return answer.respond(error)
    back = safe_referrer() if request.method == "POST" else None
    if back:
        flash(error.message, "error")
        return redirect(back, code=303)
    return render_error(error.status, error.message)


def _enter(action: str, message: str | None):
    if action == PUBLIC or policy.can(current_user, action):
        return None
    if not policy.logged_in(current_user):
        return current_app.login_manager.unauthorized()
    if message:
        from .errors import abort_with

        abort_with(403, message)
    from werkzeug.exceptions import Forbidden

    raise Forbidden()


def handler(action: str, message: str | None = None):
    """Declare the route's permission and run it as one unit of work (see the module docstring);
    ``message`` is the Chinese text a logged-in user without the permission reads on the 403 page."""
    if action != PUBLIC and not policy.known_action(action):
        raise KeyError(f"no policy rule for {action!r}")

    def wrap(view):
        @functools.wraps(view)
        def run(*args, **kwargs):
            early = _enter(action, message)
            if early is not None:
                return early
            try:
                response = make_response(view(*args, **kwargs))
                if response.status_code < 400:
                    _commit_without_expiring()
                else:
                    db.session.rollback()
                return response
            except Refused as refused:
                return _refused(refused.error, refused.answer)
            except DomainError as exc:
                return _refused(exc, None)

        setattr(run, POLICY_ATTR, action)
        return run

    return wrap


def _commit_without_expiring() -> None:
    """Commit the request's unit of work. When the session ends with the request (a real server),
    without expiring what it loaded: the response is made and nothing reads those objects again, and
    expiring a heavy page's hundreds of objects one by one took a few milliseconds of every request.
    A session that lives on (a test's, around its requests) is expired as usual."""
    from ..database import session_ends_with_request

    session = db.session()
    if not session_ends_with_request():
        session.commit()
        return
    before, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = before


def public(view):
    """A route anyone may open (login, the public report, health checks); still one unit of work."""
    return handler(PUBLIC)(view)
