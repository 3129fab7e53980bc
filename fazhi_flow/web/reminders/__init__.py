"""Pages for deadlines and reminders: policy, extension requests, 催报, the outbox, my channels."""
from flask import Blueprint

bp = Blueprint("reminders", __name__, url_prefix="/reminders")

from . import routes  # noqa: E402,F401
