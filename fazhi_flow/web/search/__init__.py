"""搜索: one search box over what the searcher may read (fazhi_flow/services/search.py)."""
from flask import Blueprint

bp = Blueprint("search", __name__, url_prefix="/search", static_folder="static", static_url_path="/static")

from . import routes  # noqa: E402,F401
