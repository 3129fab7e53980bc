"""The progress dashboard: admins, reviewers and leaders see every unit; a liaison or unit head
sees only their own unit's row. Both routes declare ``dashboard.view`` (``@handler``): anonymous users
go to the login page, others without the right get 403."""
from __future__ import annotations

import io

from flask import abort, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy import case, select

from ...extensions import db
from ...models import ReportCycle
from ...models.org import UNIT_KINDS
from ...pages.dashboard import build_page
from ...services import dashboard as svc
from ...workflow.states import CYCLE_STATE_LABELS
from ..fields import db_int
from ..handler import handler
from . import bp


def _cycles():
    # Running cycles first, then the most recent.
    running = case((ReportCycle.state == "collecting", 0), (ReportCycle.state == "setup", 2), else_=1)
    return list(db.session.execute(
        select(ReportCycle.id, ReportCycle.title, ReportCycle.region, ReportCycle.year, ReportCycle.state)
        .order_by(running, ReportCycle.year.desc(), ReportCycle.id.desc())).all())


def _filters():
    state = request.args.get("state") or None
    if state not in svc.CELL_LABELS:
        state = None
    kind = request.args.get("kind") or None
    if kind not in UNIT_KINDS:
        kind = None
    return {"state": state, "unit_kind": kind, "overdue_only": request.args.get("overdue") == "1"}


def _cycle(cycles):
    wanted = request.args.get("cycle", type=db_int)
    ids = [c.id for c in cycles]
    if not ids:
        return None
    if wanted is not None and wanted not in ids:
        abort(404)
    return db.session.get(ReportCycle, wanted or ids[0])


def _load(cycles):
    cycle = _cycle(cycles)
    return None if cycle is None else svc.build_dashboard(cycle, current_user, **_filters())


@bp.route("/")
@handler("dashboard.view")
def index():
    cycles = _cycles()
    page = build_page(_cycle(cycles), cycles, current_user, _filters(), request.args.get("page", type=db_int))
    return render_template("dashboard/index.html", page=page, dash=page.dash, cycles=cycles, filters=page.filters,
                           CELL_LABELS=svc.CELL_LABELS, CELL_CLASSES=svc.CELL_CLASSES, CELL_MARKS=svc.CELL_MARKS,
                           UNIT_KINDS=UNIT_KINDS, CYCLE_STATE_LABELS=CYCLE_STATE_LABELS, percent=svc.percent,
                           active_nav="dashboard")


@bp.route("/export.xlsx")
@handler("dashboard.view")
def export():
    cycles = _cycles()
    dash = _load(cycles)
    if dash is None:
        return redirect(url_for(".index"))
    name = f"{dash.cycle.year}年报送进度_{dash.today.isoformat()}.xlsx"
    return send_file(io.BytesIO(svc.export_xlsx(dash)), as_attachment=True, download_name=name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
