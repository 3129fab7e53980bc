"""Response headers and the request guards that apply to every page."""
from __future__ import annotations

from flask import redirect, request, url_for
from flask_login import current_user

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# Endpoints a user who must change the password may still reach.
_PASSWORD_CHANGE_EXEMPT = {"auth.change_password", "auth.logout", "static"}


def register(app) -> None:
    @app.before_request
    def _force_password_change():
        if (
            current_user.is_authenticated
            and current_user.must_change_password
            and request.endpoint not in _PASSWORD_CHANGE_EXEMPT
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
        if request.endpoint != "static" and current_user.is_authenticated:
            # Pages behind login must not be kept by the browser or any proxy.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        return response
