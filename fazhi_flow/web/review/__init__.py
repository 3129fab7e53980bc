"""待审核: the reviewer's queue and review page."""
from flask import Blueprint

bp = Blueprint("review", __name__, url_prefix="/review")

from . import routes  # noqa: E402,F401
