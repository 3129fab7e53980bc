"""Device cookies (OWASP "slow down online guessing with device cookies").

After a successful login the browser receives a signed, long-lived cookie naming the accounts that
have logged in from it. A login attempt for one of those accounts from that browser is throttled on
the device's own counter instead of the shared address and account counters, so a guesser behind
the office's NAT cannot lock out colleagues who have logged in before. Stateless: the cookie is
signed with SECRET_KEY (itsdangerous), no table is needed.
"""
from __future__ import annotations

import secrets

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

_SALT = "fazhi-device-cookie"
MAX_NAMES = 5  # accounts remembered per browser (a shared office PC)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def _max_age() -> int:
    return int(current_app.config["DEVICE_COOKIE_DAYS"]) * 86400


def _read() -> dict | None:
    raw = request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"])
    if not raw or len(raw) > 2000:
        return None
    try:
        data = _serializer().loads(raw, max_age=_max_age())
    except BadSignature:  # also a cookie older than DEVICE_COOKIE_DAYS
        return None
    if not isinstance(data, dict) or not isinstance(data.get("n"), str) or not isinstance(data.get("u"), list):
        return None
    return data


def _name(username: str) -> str:
    return (username or "").strip().lower()


def trusted_device(username: str) -> str | None:
    """The device id when this browser holds a valid device cookie for ``username``, else None."""
    data = _read()
    if data is None or _name(username) not in data["u"]:
        return None
    return data["n"]


def remember_device(response, username: str):
    """Add ``username`` to this browser's device cookie (a new one keeps a fresh id)."""
    data = _read() or {"n": secrets.token_hex(8), "u": []}
    names = [_name(username)] + [n for n in data["u"] if n != _name(username)]
    value = _serializer().dumps({"n": data["n"], "u": names[:MAX_NAMES]})
    config = current_app.config
    response.set_cookie(config["DEVICE_COOKIE_NAME"], value, max_age=_max_age(), path="/",
                        secure=bool(config.get("SESSION_COOKIE_SECURE")), httponly=True, samesite="Lax")
    return response
