"""已发布报告: the public list of published reports, their files and hashes. No login."""
from flask import Blueprint

bp = Blueprint("public", __name__, url_prefix="/reports", static_folder="static",
               static_url_path="/static")

from . import routes  # noqa: F401
