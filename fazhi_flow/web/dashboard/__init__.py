"""The progress dashboard (填报进度): units × sections, deadlines, per-unit figures, XLSX export."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", static_folder="static",
               static_url_path="/static")

from . import routes  # noqa: E402,F401
