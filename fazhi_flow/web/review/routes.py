"""待审核: the reviewer's queue, the review page, 通过 / 退回修改, and bulk 通过 after a confirmation.

Every route declares its gate (``@handler``) and runs as one unit of work (the handler commits, or rolls
back on refusal). The area's gate carries its own refusal text (``handler(..., message=REVIEWERS_ONLY)``)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ... import policy
from ...errors import Conflict
from ...pages.review import PendingReviewPage, ReviewPage, reviewable_submissions
from ...services import contributions as svc
from ..errors import abort_with
from ..fields import arg_int, int_list
from ..handler import handler
from ..helpers import has_endpoint
from ..loading import contribution_or_abort
from . import bp
from .forms import BulkApproveForm, DecisionForm, ReturnForm

MAX_BULK = 200


REVIEWERS_ONLY = "“待审核”只对依法治区办的审核人开放。"


def _int_arg(name: str) -> int | None:
    return arg_int(name)


@bp.route("/")
@handler("review.queue", message=REVIEWERS_ONLY)
def queue():
    filters = {"cycle": _int_arg("cycle"), "section": _int_arg("section"), "unit": _int_arg("unit")}
    return render_template("review/queue.html", page=PendingReviewPage.build(current_user, filters))


@bp.route("/<int:contribution_id>")
@handler("authenticated")
def show(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    # Admins and leaders (who read every draft) and the section's reviewers read it here.
    if not (policy.can(current_user, "cycle.read_draft", contribution.cycle)
            or policy.can(current_user, "contribution.review", contribution)):
        # The unit's own people see their material on their task page.
        return redirect(url_for("tasks.edit", contribution_id=contribution.id))
    approve_form, return_form = DecisionForm(formdata=None), ReturnForm(formdata=None)
    return _render_review(contribution, approve_form, return_form)


def _render_review(contribution, approve_form, return_form, status=200):
    approve_form.version.data = return_form.version.data = contribution.version
    page = ReviewPage.build(current_user, contribution, figures=has_endpoint("figures.contribution"))
    return render_template("review/show.html", approve_form=approve_form, return_form=return_form,
                           **page.context()), status


def _decide(contribution_id: int, event: str):
    contribution = contribution_or_abort(contribution_id, current_user)
    if not policy.can(current_user, "contribution.review", contribution):
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
    if event == "approve" and contribution.state == "submitted":
        waiting = "、".join(u.name for u in policy.pending_approvers(contribution))
        flash(f"已会签同意：{contribution.unit.name}“{contribution.section.numbered_title}”，"
              f"还需{waiting}会签后才算通过。", "success")
        return redirect(url_for("review.queue"))
    flash(f"已通过：{contribution.unit.name}“{contribution.section.numbered_title}”。" if event == "approve"
          else f"已退回修改：{contribution.unit.name}“{contribution.section.numbered_title}”，联络员会收到您的意见。",
          "success")
    return redirect(url_for("review.queue"))


@bp.route("/<int:contribution_id>/approve", methods=["POST"])
@handler("review.queue", message=REVIEWERS_ONLY)
def approve(contribution_id: int):
    return _decide(contribution_id, "approve")


@bp.route("/<int:contribution_id>/return", methods=["POST"])
@handler("review.queue", message=REVIEWERS_ONLY)
def return_(contribution_id: int):
    return _decide(contribution_id, "return")


def _selected_ids(source) -> list[int]:
    return int_list(source.getlist("ids"), MAX_BULK)


@bp.route("/bulk", methods=["GET", "POST"])
@handler("review.queue", message=REVIEWERS_ONLY)
def bulk():
    """GET: the confirmation listing what will be approved; POST: approve them all or none."""
    source = request.form if request.method == "POST" else request.args
    wanted = set(_selected_ids(source))
    if not wanted:
        flash("请先勾选要通过的材料。", "warning")
        return redirect(url_for("review.queue"))
    rows = [c for c in reviewable_submissions(current_user) if c.id in wanted]
    form = BulkApproveForm()
    if request.method == "GET":
        return render_template("review/bulk_confirm.html", rows=rows, skipped=len(wanted) - len(rows), form=form)
    problem = _bulk_problem(form, rows, wanted)
    if problem:
        flash(problem, "error")
    else:
        for c in rows:
            svc.approve_contribution(c, current_user, bulk=True)
        waiting = sum(1 for c in rows if c.state == "submitted")
        flash(f"已通过{len(rows) - waiting}份材料" + (f"，会签同意{waiting}份（还需其他审核人会签）" if waiting else "")
              + "。", "success")
    return redirect(url_for("review.queue"))


def _bulk_problem(form, rows, wanted: set) -> str | None:
    """Why none of the confirmed material is approved, or None: all of it is still as confirmed."""
    if not form.validate_on_submit():
        return "操作未完成，请刷新页面后重试。"
    changed = [c for c in rows if request.form.get(f"v{c.id}") != str(c.version)]
    gone = wanted - {c.id for c in rows}
    if changed or gone:
        return (f"有{len(changed) + len(gone)}份材料在您确认后发生了变化（被撤回、已审核或重新提交），"
                "本次没有通过任何材料。请核对后重新选择。")
    return None
