"""督导 pages: every route declares ``oversight.view`` (the oversight role); a region that is not
below the user's own answers 404 exactly as a missing one (an id tells nothing about other regions).
The pages only read, except the 督办 form, which writes a notice, e-mails and an audit row."""
from __future__ import annotations

import io

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from ...extensions import db
from ...models import Region
from ...services import oversight as svc
from ..handler import handler, on_refusal
from . import bp

YEAR_MIN, YEAR_MAX = 2000, 2100


def _year() -> tuple[int | None, str | None]:
    """The ``year`` asked for (None: the latest), and the message when it is not a year."""
    raw = (request.args.get("year") or "").strip()
    if not raw:
        return None, None
    if raw.isdigit() and YEAR_MIN <= int(raw) <= YEAR_MAX:
        return int(raw), None
    return None, f"参数 year：“{raw[:20]}”不是年份（{YEAR_MIN}—{YEAR_MAX}），已显示最近的年度。"


@bp.route("/")
@handler("oversight.view")
def index():
    year, problem = _year()
    view = svc.overview(current_user, year)
    return render_template("oversight/index.html", view=view, problem=problem, own=view.own,
                           percent=svc.percent, active_nav="oversight")


def _comparison():
    year, problem = _year()
    per = (request.args.get("per") or "").strip() or None
    table = svc.comparison(current_user, year, per)
    return table, [p for p in (problem, table.error) if p]


@bp.route("/indicators")
@handler("oversight.view")
def indicators():
    table, problems = _comparison()
    return render_template("oversight/indicators.html", table=table, problems=problems, own=table.own,
                           note=svc.NOTE, number_text=svc.number_text, ratio_text=svc.ratio_text,
                           percent=svc.percent, active_nav="oversight")


@bp.route("/indicators.xlsx")
@handler("oversight.view")
def indicators_xlsx():
    table, _problems = _comparison()
    if table.year is None:
        return redirect(url_for(".indicators"))
    data = svc.export_xlsx(table)
    return send_file(io.BytesIO(data), as_attachment=True, download_name=svc.export_name(table),
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _region_below_or_404(region_id: int) -> Region:
    region = db.session.get(Region, region_id)
    if not svc.may_oversee(current_user, region):
        abort(404)
    return region


@bp.route("/regions/<int:region_id>/remind", methods=["GET", "POST"])
@handler("oversight.view")
def remind(region_id: int):
    region = _region_below_or_404(region_id)
    year, _problem = _year()
    if request.method == "POST":
        text = request.form.get("text")
        with on_refusal(lambda: _remind_page(region, year, text)):
            told = svc.remind(current_user, region, text, year)
        flash(f"已向{region.name}的{told}位管理员发出督办。", "success")
        return redirect(url_for(".index", year=year), code=303)
    return _remind_page(region, year, "")


def _remind_page(region: Region, year: int | None, text: str | None):
    return render_template("oversight/remind.html", region=region, year=year, text=text or "",
                           admins=svc.region_admins(region), limit=svc.REMIND_MAX, active_nav="oversight")
