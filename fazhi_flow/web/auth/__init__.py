"""Login (password, LDAP, OpenID Connect), logout and password change."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import oidc, routes  # noqa: F401
