"""督导: the regions below an oversight user's own — progress, publication, figures side by side, 督办."""
from flask import Blueprint

bp = Blueprint("oversight", __name__, url_prefix="/oversight", static_folder="static",
               static_url_path="/static")

from . import routes  # noqa: E402,F401
