"""Admin page: the audit log (审计日志) with filters, paging and CSV/XLSX export. Read only: the trail
has no route that changes or deletes a row."""
from __future__ import annotations

import dataclasses
import io

from flask import flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from ... import policy
from ...services import audit as svc
from ...timeutil import local_today
from ...whole_numbers import optional_int
from ..handler import handler
from . import bp

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _query() -> tuple[svc.AuditQuery, str | None]:
    """The filters of the request (or none, with the reason when one cannot be used), always within the
    viewer's scope: an admin reads their region's trail, a system administrator the system's."""
    try:
        q, problem = svc.AuditQuery.from_args(request.args), None
    except svc.FilterError as exc:
        q, problem = svc.AuditQuery(), exc.message
    admin = policy.can(current_user, "admin.manage")
    system = policy.can(current_user, "region.manage")
    # Rows of nobody's region go to the office running the installation: the top region's admins.
    unowned = system or (admin and current_user.region.parent_id is None)
    return dataclasses.replace(q, region_id=current_user.region_id if admin else None, system=system,
                               unowned=unowned), problem


@bp.route("/audit")
@handler("audit.view")
def audit():
    q, problem = _query()
    if problem:
        flash(f"{problem}以下显示全部记录。", "error")
    raw_page = request.args.get("page")
    number = optional_int(raw_page, 1) if raw_page else 1
    if number is None:
        flash("页码无效，已显示第1页。", "error")
        number = 1
    result = svc.page(q, number)
    return render_template("admin/audit.html", result=result, q=q, actions=svc.action_choices(),
                           active_nav="admin")


@bp.route("/audit/export.<any(csv, xlsx):fmt>")
@handler("audit.view")
def audit_export(fmt):
    q, problem = _query()
    if problem:
        flash(f"{problem}未导出。", "error")
        return redirect(url_for(".audit"), code=303)
    limit = svc.export_limit()
    total = svc.count(q)
    if total > limit:
        flash(f"符合条件的记录有{total}条，超过一次导出的上限{limit}条。请缩小时间范围或增加筛选条件后再导出。",
              "error")
        return redirect(url_for(".audit", **q.args()), code=303)
    name = f"审计日志_{local_today().isoformat()}.{fmt}"
    if fmt == "csv":
        return send_file(io.BytesIO(svc.export_csv(q)), as_attachment=True, download_name=name,
                         mimetype="text/csv; charset=utf-8")
    return send_file(io.BytesIO(svc.export_xlsx(q)), as_attachment=True, download_name=name, mimetype=XLSX_TYPE)
