"""The progress dashboard: admins, reviewers and leaders see every unit; a liaison or unit head
sees only their own unit's row. Both routes declare ``cycle.view`` (``@handler``: whoever may see the
progress of a cycle at all); anonymous users go to the login page, others without the right get 403.

The cycles are those of the viewer's region; a cycle of another region is 404, except for an
oversight user (督导) over that region, who reads its dashboard: every unit, no links into the
material, nothing to change."""
from __future__ import annotations

import io

from flask import redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import case, select

from ... import policy
from ...extensions import db
from ...models import ReportCycle
from ...models.org import UNIT_KINDS
from ...pages.dashboard import build_page
from ...services import dashboard as svc
from ...workflow.states import CYCLE_STATE_LABELS
from ..errors import abort_with
from ..fields import db_int
from ..handler import handler
from . import bp

# Who enters the dashboard: those who see progress in their region, and overseers.
GATE = "cycle.view"
GATE_MESSAGE = "“填报进度”只对管理员、审核人、签发领导、各单位联络员和单位负责人以及督导开放。"
NO_CYCLE = "该年度报告不存在。"


def _cycles(region_id: int) -> list[ReportCycle]:
    # Running cycles first, then the most recent; only the region's own (a handful: one a year).
    running = case((ReportCycle.state == "collecting", 0), (ReportCycle.state == "setup", 2), else_=1)
    return list(db.session.scalars(
        select(ReportCycle).where(ReportCycle.region_id == region_id)
        .order_by(running, ReportCycle.year.desc(), ReportCycle.id.desc())))


def _choose():
    """(cycle or None, the cycles of its region to choose from, whether the view is an oversight read).

    The cycle is the one named in the URL (``?cycle=``) when the viewer may see its progress, else 404;
    without one, the first of the viewer's region. A cycle of another region is 404 unless the viewer
    oversees that region. The own region's cycles are read at once: the named one is usually among them."""
    wanted = request.args.get("cycle", type=db_int)
    cycles = _cycles(current_user.region_id)
    if wanted is None:
        cycle = cycles[0] if cycles else None
    else:
        cycle = next((c for c in cycles if c.id == wanted), None) or db.session.get(ReportCycle, wanted)
        if cycle is None or not policy.can(current_user, "cycle.view", cycle):
            abort_with(404, NO_CYCLE)
        if cycle.region_id != current_user.region_id:
            cycles = _cycles(cycle.region_id)
    region_id = cycle.region_id if cycle is not None else current_user.region_id
    # Reading a region below, or without a role that sees progress in the own region: read only,
    # every unit, no links into material.
    oversight = region_id != current_user.region_id or not policy.can(current_user, "dashboard.view")
    return cycle, cycles, oversight


def _filters():
    state = request.args.get("state") or None
    if state not in svc.CELL_LABELS:
        state = None
    kind = request.args.get("kind") or None
    if kind not in UNIT_KINDS:
        kind = None
    return {"state": state, "unit_kind": kind, "overdue_only": request.args.get("overdue") == "1"}


@bp.route("/")
@handler(GATE, message=GATE_MESSAGE)
def index():
    cycle, cycles, oversight = _choose()
    page = build_page(cycle, cycles, current_user, _filters(), request.args.get("page", type=db_int),
                      oversight=oversight)
    return render_template("dashboard/index.html", page=page, cycles=cycles, filters=page.filters,
                           CELL_LABELS=svc.CELL_LABELS, UNIT_KINDS=UNIT_KINDS, CYCLE_STATE_LABELS=CYCLE_STATE_LABELS,
                           oversight=oversight, active_nav="dashboard")


@bp.route("/export.xlsx")
@handler(GATE, message=GATE_MESSAGE)
def export():
    cycle, _cycles_, oversight = _choose()
    dash = None if cycle is None else svc.build_dashboard(cycle, current_user, **_filters(), all_units=oversight)
    if dash is None:
        return redirect(url_for(".index"))
    name = f"{dash.cycle.year}年报送进度_{dash.today.isoformat()}.xlsx"
    return send_file(io.BytesIO(svc.export_xlsx(dash)), as_attachment=True, download_name=name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
