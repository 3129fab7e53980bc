"""The office admin's pages (管理员): cycles, outline, assignments, units, users and the audit log; the
system administrator's regions (系统管理员, ``@handler("region.manage")``).

Every route declares its permission with ``@handler(...)`` (fazhi_flow/web/handler.py), mostly
"admin.manage": admins only, one unit of work."""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", static_folder="static", static_url_path="/static")

from . import audit, common, cycle_import, cycles, outline, people, regions  # noqa: E402,F401  (register the routes)
