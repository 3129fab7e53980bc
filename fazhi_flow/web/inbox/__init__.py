"""消息: the in-app notifications of the current user."""
from flask import Blueprint

bp = Blueprint("inbox", __name__, url_prefix="/inbox")

from . import routes  # noqa: F401
