"""我的任务 and 待单位审核: the liaison's and the unit head's pages."""
from flask import Blueprint

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

from . import routes  # noqa: F401
