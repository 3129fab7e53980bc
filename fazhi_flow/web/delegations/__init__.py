"""委托: naming a substitute for a period, and what the substitute may open for the delegator."""
from flask import Blueprint

bp = Blueprint("delegations", __name__, url_prefix="/delegations")

from . import routes  # noqa: E402,F401
