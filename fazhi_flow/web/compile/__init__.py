"""汇总签发: compile the merged report, sign it off, keep its versions, publish and correct it."""
from flask import Blueprint

bp = Blueprint("compile", __name__, url_prefix="/compile", static_folder="static",
               static_url_path="/static")

from . import routes  # noqa: E402,F401
