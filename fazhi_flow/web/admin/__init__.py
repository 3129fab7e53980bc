"""The office admin's pages (管理员): cycles, outline, assignments, units, users and the audit log.

Every route declares ``@handler("admin.manage")`` (fazhi_flow/web/handler.py): admins only, one unit of work."""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", static_folder="static", static_url_path="/static")

from . import audit, common, cycle_import, cycles, outline, people  # noqa: E402,F401  (register the routes)
