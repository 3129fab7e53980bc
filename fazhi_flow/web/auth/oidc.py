"""OpenID Connect login routes: /login/oidc sends the browser to the provider, the callback logs in."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user

from ... import sso
from ...database import require_write_lock
from ...extensions import db
from ...ops.logs import log_refused_login
from ...services.audit import record
from ..handler import public
from . import bp
from .routes import _safe_next, complete_login

_NEXT_KEY = "_sso_next"


def _enabled_or_404() -> None:
    if not sso.oidc_enabled(current_app.config):
        abort(404)


def _refused(exc, subject_hint: str = ""):
    """Back to the login page with the reason; the refusal is audited like a failed password login."""
    record(None, "auth.login_failed", f"user:{subject_hint[:60]}" if subject_hint else None,
           method="oidc", reason=exc.reason)
    log_refused_login(subject_hint or "-", f"oidc_{exc.reason}", request.remote_addr)
    # Kept although the transaction of a refused login would otherwise be rolled back.
    db.session.commit()
    flash(exc.message, "error")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/login/oidc")
@public
def oidc_start():
    _enabled_or_404()
    require_write_lock()  # a GET that may audit a refusal
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    from ...sso import oidc
    from ...sso.matching import SsoRefused

    session[_NEXT_KEY] = _safe_next(request.args.get("next"))
    try:
        return oidc.start()
    except SsoRefused as exc:
        return _refused(exc)


@bp.route("/login/oidc/callback")
@public
def oidc_callback():
    _enabled_or_404()
    require_write_lock()  # a GET that logs in: binds the account, writes the audit row
    from ...sso import oidc
    from ...sso.matching import SsoRefused, match_user

    next_url = _safe_next(session.pop(_NEXT_KEY, None))
    identity = None
    try:
        identity = oidc.finish(sso.oidc_button_label(current_app.config))
        user = match_user(identity)
    except SsoRefused as exc:
        db.session.rollback()  # a half-made binding never stays
        hint = (identity.username or identity.subject) if identity is not None else ""
        return _refused(exc, hint or "")
    return complete_login(user, "oidc", next_url=next_url)
