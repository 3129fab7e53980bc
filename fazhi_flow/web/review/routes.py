"""待审核: the reviewer's queue, the review page, 通过 / 退回修改, and bulk 通过 after a confirmation."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...errors import Conflict
from ...extensions import db
from ...models import Contribution, ReportCycle
from ...services import contributions as svc
from ...services.diffs import has_changes, paragraph_diff
from ...timeutil import utcnow
from ...workflow.machine import is_contribution_reviewer
from .. import bound_text
from ..errors import abort_with
from ..fields import arg_int, int_list
from ..loading import contribution_or_abort, preload_sections, transition_logs
from ..outline_order import in_outline_order
from ..permissions import can_fire
from . import bp
from .forms import BulkApproveForm, DecisionForm, ReturnForm

MAX_BULK = 200


def _require_reviewer():
    if not current_user.has_role("reviewer"):
        abort_with(403, "“待审核”只对依法治区办的审核人开放。")


def reviewable_submissions(user) -> list[Contribution]:
    """Every submitted contribution of a collecting cycle that ``user`` may review, oldest first."""
    rows = list(db.session.scalars(
        select(Contribution).join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
        .where(Contribution.state == "submitted", ReportCycle.state == "collecting")
        .options(selectinload(Contribution.unit), selectinload(Contribution.cycle),
                 selectinload(Contribution.assignment), selectinload(Contribution.revisions))
    ))
    preload_sections(c.cycle_id for c in rows)
    rows = [c for c in rows if is_contribution_reviewer(user, c)]
    rows.sort(key=lambda c: (c.submitted_at or c.updated_at, c.id))
    return rows


def _int_arg(name: str) -> int | None:
    return arg_int(name)


@bp.route("/")
@login_required
def queue():
    _require_reviewer()
    everything = reviewable_submissions(current_user)
    filters = {"cycle": _int_arg("cycle"), "section": _int_arg("section"), "unit": _int_arg("unit")}
    rows = [
        c for c in everything
        if (filters["cycle"] is None or c.cycle_id == filters["cycle"])
        and (filters["section"] is None or c.section_id == filters["section"])
        and (filters["unit"] is None or c.unit_id == filters["unit"])
    ]
    cycles = sorted({c.cycle for c in everything}, key=lambda cy: (-cy.year, cy.id))
    sections = in_outline_order({c.section for c in everything if filters["cycle"] in (None, c.cycle_id)})
    units = sorted({c.unit for c in everything}, key=lambda u: (u.sort_order, u.name))
    return render_template("review/queue.html", rows=rows, total=len(everything), filters=filters,
                           cycles=cycles, sections=sections, units=units, now=utcnow())


@bp.route("/<int:contribution_id>")
@login_required
def show(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    if not (current_user.has_role("admin", "leader") or is_contribution_reviewer(current_user, contribution)):
        # The unit's own people see their material on their task page.
        return redirect(url_for("tasks.edit", contribution_id=contribution.id))
    approve_form, return_form = DecisionForm(formdata=None), ReturnForm(formdata=None)
    return _render_review(contribution, approve_form, return_form)


def _diff_base(revisions, logs):
    """The revision the latest is compared with: the newest earlier one the office returned or
    approved (a submission recalled before review was never seen), else the one before the latest."""
    if len(revisions) < 2:
        return None
    # Revision n is the text of the n-th 提交审核; a decision belongs to the submission before it.
    if sum(1 for log in logs if log.event == "submit") == len(revisions):
        decided, current = set(), 0
        for log in logs:
            if log.event == "submit":
                current += 1
            elif log.event in ("return", "approve"):
                decided.add(current)
        earlier = [r for r in revisions[:-1] if r.number in decided]
        if earlier:
            return earlier[-1]
    return revisions[-2]


def _render_review(contribution, approve_form, return_form, status=200):
    approve_form.version.data = return_form.version.data = contribution.version
    revisions = contribution.revisions
    logs = transition_logs(contribution)
    base = _diff_base(revisions, logs)
    diff = None
    if base is not None:
        # Compared as displayed: a changed figure shows up even where the text cites it.
        renderer = bound_text.current()
        diff = paragraph_diff(renderer.revision(base), renderer.revision(revisions[-1]))
    return render_template(
        "review/show.html", c=contribution, approve_form=approve_form, return_form=return_form,
        logs=logs, revisions=revisions, diff=diff, base=base,
        changed=diff is not None and has_changes(diff), can_decide=can_fire(current_user, contribution, "approve"),
    ), status


def _decide(contribution_id: int, event: str):
    _require_reviewer()
    contribution = contribution_or_abort(contribution_id, current_user)
    if not is_contribution_reviewer(current_user, contribution):
        abort_with(403, "您不是这个章节的审核人，不能审核这份材料。")
    form = DecisionForm() if event == "approve" else ReturnForm()
    ok = form.validate_on_submit()
    if ok and event == "return":
        ok = form.check_paragraph(len(contribution.paragraphs))
    if not ok:
        pair = (form, ReturnForm(formdata=None)) if event == "approve" else (DecisionForm(formdata=None), form)
        return _render_review(contribution, *pair, status=400)
    if form.version.data != contribution.version:
        raise Conflict("这份材料在您打开页面后有了变化（可能已被撤回或重新提交），请查看最新内容后再审核。")
    context = {}
    if event == "return" and form.paragraph.data:
        context["paragraph"] = form.paragraph.data
    operation = svc.approve_contribution if event == "approve" else svc.return_contribution
    operation(contribution, current_user, comment=form.comment.data, **context)
    db.session.commit()
    flash(f"已通过：{contribution.unit.name}“{contribution.section.numbered_title}”。" if event == "approve"
          else f"已退回修改：{contribution.unit.name}“{contribution.section.numbered_title}”，联络员会收到您的意见。",
          "success")
    return redirect(url_for("review.queue"))


@bp.route("/<int:contribution_id>/approve", methods=["POST"])
@login_required
def approve(contribution_id: int):
    return _decide(contribution_id, "approve")


@bp.route("/<int:contribution_id>/return", methods=["POST"])
@login_required
def return_(contribution_id: int):
    return _decide(contribution_id, "return")


def _selected_ids(source) -> list[int]:
    return int_list(source.getlist("ids"), MAX_BULK)


@bp.route("/bulk", methods=["GET", "POST"])
@login_required
def bulk():
    """GET: the confirmation listing what will be approved; POST: approve them all or none."""
    _require_reviewer()
    source = request.form if request.method == "POST" else request.args
    wanted = set(_selected_ids(source))
    if not wanted:
        flash("请先勾选要通过的材料。", "warning")
        return redirect(url_for("review.queue"))
    rows = [c for c in reviewable_submissions(current_user) if c.id in wanted]
    form = BulkApproveForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("操作未完成，请刷新页面后重试。", "error")
            return redirect(url_for("review.queue"))
        changed = [c for c in rows if request.form.get(f"v{c.id}") != str(c.version)]
        gone = wanted - {c.id for c in rows}
        if changed or gone:
            flash(f"有{len(changed) + len(gone)}份材料在您确认后发生了变化（被撤回、已审核或重新提交），"
                  "本次没有通过任何材料。请核对后重新选择。", "error")
            return redirect(url_for("review.queue"))
        for c in rows:
            svc.approve_contribution(c, current_user, bulk=True)
        db.session.commit()
        flash(f"已通过{len(rows)}份材料。", "success")
        return redirect(url_for("review.queue"))
    skipped = len(wanted) - len(rows)
    return render_template("review/bulk_confirm.html", rows=rows, skipped=skipped, form=form)
