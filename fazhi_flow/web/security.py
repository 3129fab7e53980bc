"""Response headers and the request guards that apply to every page."""
from __future__ import annotations

from flask import flash, g, redirect, request, session, url_for
from flask_login import current_user, logout_user

from ..auth_loader import EXPIRED_MESSAGE, request_user_logged_in, session_expired, touch_session
from ..policy import can
from ..sso import LOGIN_METHOD_KEY

HSTS = "max-age=31536000; includeSubDomains"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# Endpoints a user who must change the password may still reach.
_PASSWORD_CHANGE_EXEMPT = {"auth.change_password", "auth.logout", "static"}


def _end_expired_session() -> None:
    """Log out a session past its idle or absolute limit, before anything loads its user."""
    if "_user_id" not in session:
        return
    if session_expired():
        logout_user()
        session.clear()
        g.session_expired = True
        flash(EXPIRED_MESSAGE, "warning")
    else:
        touch_session()


def register(app) -> None:
    # Registered first among the guards, so the password-change guard below sees the outcome.
    app.before_request(_end_expired_session)

    @app.before_request
    def _force_password_change():
        if (
            current_user.is_authenticated
            and current_user.must_change_password
            and request.endpoint not in _PASSWORD_CHANGE_EXEMPT
            # Not after a single sign-on login, nor for an account without a local password to use.
            and session.get(LOGIN_METHOD_KEY, "password") == "password"
            and can(current_user, "password.change")
        ):
            return redirect(url_for("auth.change_password"))
        return None

    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.is_secure or app.config.get("ENV_NAME") == "production":
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint != "static" and request_user_logged_in():
            # Pages behind login must not be kept by the browser or any proxy.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response
