"""Single sign-on (统一身份认证): OpenID Connect (oidc.py) and LDAP bind (ldap.py), both optional.

This module imports neither Authlib nor ldap3: they come with the optional ``sso`` extra, and an
installation that configures neither method must run without them. Matching a signed-on identity
to a local account (``matching.py``) is shared by both methods.
"""
from __future__ import annotations

# The session remembers how its user logged in: a single sign-on login is not sent to the
# password-change page (the person may have no local password to change).
LOGIN_METHOD_KEY = "_login_method"
METHOD_LABELS = {"password": "本地密码", "ldap": "LDAP", "oidc": "OpenID Connect"}


def oidc_enabled(config) -> bool:
    return bool(str(config.get("OIDC_ISSUER") or "").strip() and str(config.get("OIDC_CLIENT_ID") or "").strip())


def ldap_enabled(config) -> bool:
    return bool(str(config.get("LDAP_URL") or "").strip())


def oidc_button_label(config) -> str:
    return str(config.get("OIDC_BUTTON_LABEL") or "").strip() or "统一身份认证登录"


def any_enabled(config) -> bool:
    return oidc_enabled(config) or ldap_enabled(config)
