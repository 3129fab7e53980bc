"""Admin pages: report cycles (create, edit, open, compile) and reopening material."""
from __future__ import annotations

import importlib.util
from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import DateField, TextAreaField
from wtforms.validators import Length, Optional

from ...errors import DomainError
from ...extensions import db
from ...policy import unit_decisions_read
from ...models import Assignment, Contribution, ReportCycle, Section, TransitionLog, User, UserRole
from ...services import figures as figures_svc
from ...services import outline as outline_svc
from ...services.contributions import reopen_contribution, unit_approve_contribution, unit_return_contribution
from ...services.regions import printed_name
from ...workdays import current_calendar
from ...services.cycles import compile_cycle, open_cycle, past_dues, reopen_collection
from ...services.stuck import stuck_warnings
from ...timeutil import cn_date_text, local_today
from ...workflow.states import CONTRIBUTION_STATE_LABELS
from ..fields import arg_int
from ..handler import handler, on_refusal
from . import bp
from ..own_region import get_own_or_404, is_own
from .common import back_to, compile_available
from .forms import (DATE_MSG, ActionForm, CycleCloneForm, CycleEditForm, CycleTemplateForm, CycleUploadForm,
                    OptionalReasonForm, ReasonForm, choices, follow_year, template_title)

# ------------------------------------------------------------------ cycles


@bp.route("/")
@handler("admin.manage")
def index():
    return redirect(url_for(".cycles"))


@bp.route("/cycles")
@handler("admin.manage")
def cycles():
    rows = _own_cycles()
    own = select(ReportCycle.id).where(ReportCycle.region_id == current_user.region_id)
    counts = {}
    for cycle_id, state, n in db.session.execute(
        select(Contribution.cycle_id, Contribution.state, func.count()).where(Contribution.cycle_id.in_(own))
        .group_by(Contribution.cycle_id, Contribution.state)
    ):
        counts.setdefault(cycle_id, {})[state] = n
    assigned = dict(db.session.execute(
        select(Section.cycle_id, func.count(Assignment.id)).join(Assignment, Assignment.section_id == Section.id)
        .where(Section.cycle_id.in_(own)).group_by(Section.cycle_id)
    ).all())
    return render_template("admin/cycles.html", cycles=rows, counts=counts, assigned=assigned,
                           active_nav="admin")


def _own_cycles() -> list[ReportCycle]:
    """The cycles of the admin's region, newest first (another region's never appear, nor count)."""
    return list(db.session.scalars(select(ReportCycle).where(ReportCycle.region_id == current_user.region_id)
                                   .order_by(ReportCycle.year.desc(), ReportCycle.id.desc())))


def _clone_available() -> bool:
    return importlib.util.find_spec("fazhi_flow.services.clone") is not None


def _new_cycle_page(template_form=None, upload_form=None, clone_form=None, errors=None, status=200):
    template_form = template_form or CycleTemplateForm(prefix="t")
    upload_form = upload_form or CycleUploadForm(prefix="f")
    clone_form = clone_form or CycleCloneForm(prefix="c")
    sources = _own_cycles()
    clone_form.source.choices = choices([(0, "请选择")] + [(c.id, f"{c.region} {c.year}年 {c.title}") for c in sources])
    if request.method == "GET" and not template_form.year.data:
        # The printed region name proposed is the region's own; the admin may write it longer.
        template_form.region.data = template_form.region.data or printed_name(current_user.region)
        template_form.year.data = date.today().year - 1
        template_form.title.data = template_title(template_form.year.data)
        template_form.title_year.data = str(template_form.year.data)
    return render_template("admin/cycle_new.html", template_form=template_form, upload_form=upload_form,
                           clone_form=clone_form, file_errors=errors or [], clone_available=_clone_available(),
                           has_sources=bool(sources), active_nav="admin"), status


@bp.route("/cycles/new")
@handler("admin.manage")
def cycle_new():
    return _new_cycle_page(clone_form=_clone_form_for(arg_int("source")))


def _clone_form_for(source_id: int | None) -> CycleCloneForm | None:
    """复制为新年度 links on a cycle's pages arrive with ``?source=``: that cycle, the next year and the
    title with its year moved are filled in; the admin still previews every change before saving."""
    source = db.session.get(ReportCycle, source_id) if source_id and _clone_available() else None
    if source is None or not is_own(source):  # another region's cycle is not offered, nor named
        return None
    from ...services.clone import new_title

    form = CycleCloneForm(prefix="c")
    form.source.data, form.year.data = source.id, source.year + 1
    form.title.data = new_title(source, source.year + 1, None)
    form.title_year.data = str(source.year + 1)
    return form


@bp.route("/cycles/new/template", methods=["POST"])
@handler("admin.manage")
def cycle_new_template():
    form = CycleTemplateForm(prefix="t")
    if not form.validate_on_submit():
        return _new_cycle_page(template_form=form, status=400)
    follow_year(form, template_title)
    form.region.data = (form.region.data or "").strip() or printed_name(current_user.region)
    with on_refusal(lambda exc: _new_cycle_page(template_form=form, errors=getattr(exc, "errors", None))):
        cycle = outline_svc.create_cycle_from_template(
            current_user, title=form.title.data, year=form.year.data, region=form.region.data,
            due=form.due.data, unit_head_review=form.unit_head_review.data, issuers=form.issuers.data,
            issue_date=form.issue_date.data)
    flash(f"已按标准提纲创建“{cycle.title}”。下一步：检查提纲，分配任务。", "success")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


@bp.route("/cycles/new/clone", methods=["POST"])
@handler("admin.manage")
def cycle_new_clone():
    form = CycleCloneForm(prefix="c")
    form.source.choices = choices((c.id, c.title) for c in _own_cycles())
    if form.source.data:  # another region's cycle: as if it did not exist, not "not a valid choice"
        get_own_or_404(ReportCycle, form.source.data)
    if not _clone_available():
        flash("复制往年报告的功能暂不可用。", "error")
        return redirect(url_for(".cycle_new"), code=303)
    if not form.validate_on_submit():
        return _new_cycle_page(clone_form=form, status=400)
    from ...services.clone import clone_cycle, new_title

    source = get_own_or_404(ReportCycle, form.source.data)
    follow_year(form, lambda year: new_title(source, year, None))
    if request.form.get("confirm") != "1":
        return _clone_preview(source, form)
    # clone_cycle builds sections before adding them to the session; an autoflush in between
    # (a lazy load of the source's reviewers) would warn and skip them, so flush only when it does.
    with on_refusal(lambda: _new_cycle_page(clone_form=form)), db.session.no_autoflush:
        cycle = clone_cycle(source, current_user, year=form.year.data, title=form.title.data)
    flash(f"已复制“{source.title}”的提纲和任务分配，创建“{cycle.title}”。标题、填报说明中的年份和各截止日期"
          "已顺延到新年度，请在“提纲”中检查。", "success")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


def _clone_preview(source: ReportCycle, form: CycleCloneForm):
    """First show every year and date the copy will change; nothing is saved until confirmed."""
    from ...services.clone import check_target, clone_preview

    with on_refusal(lambda: _new_cycle_page(clone_form=form)):
        year = check_target(source, current_user, form.year.data)
    return render_template("admin/cycle_clone_preview.html", form=form, source=source, year=year,
                           changes=clone_preview(source, year, form.title.data), active_nav="admin")


def _state_counts(cycle: ReportCycle) -> dict:
    return dict(db.session.execute(
        select(Contribution.state, func.count()).where(Contribution.cycle_id == cycle.id)
        .group_by(Contribution.state)).all())


@bp.route("/cycles/<int:cycle_id>")
@handler("admin.manage")
def cycle(cycle_id):
    return _cycle_page(cycle_id)


def _pending_extensions(cycle: ReportCycle) -> int:
    """延期申请 of this cycle still waiting for a decision (shown beside the link)."""
    from ...models.reminder import ExtensionRequest

    return db.session.scalar(
        select(func.count(ExtensionRequest.id)).join(Assignment, ExtensionRequest.assignment_id == Assignment.id)
        .join(Section, Assignment.section_id == Section.id)
        .where(Section.cycle_id == cycle.id, ExtensionRequest.status == "pending")) or 0


def _cycle_page(cycle_id, compile_form=None, status=200):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    n_sections = db.session.scalar(select(func.count(Section.id)).where(Section.cycle_id == cycle.id))
    n_assignments = db.session.scalar(
        select(func.count(Assignment.id)).join(Section).where(Section.cycle_id == cycle.id))
    logs = list(db.session.scalars(
        select(TransitionLog).where(TransitionLog.cycle_id == cycle.id).order_by(TransitionLog.id.desc()).limit(20)))
    return render_template(
        "admin/cycle.html", cycle=cycle, counts=_state_counts(cycle), n_sections=n_sections,
        pending_extensions=_pending_extensions(cycle),
        n_assignments=n_assignments, logs=logs, compile_form=compile_form or OptionalReasonForm(prefix="compile"),
        reopen_form=OptionalReasonForm(prefix="reopen"), action_form=ActionForm(),
        has_compile=compile_available(), STATE_LABELS=CONTRIBUTION_STATE_LABELS, active_nav="admin",
        stuck=stuck_warnings(cycle) if cycle.state in ("setup", "collecting") else [],
    ), status


@bp.route("/cycles/<int:cycle_id>/edit", methods=["GET", "POST"])
@handler("admin.manage")
def cycle_edit(cycle_id):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    form = CycleEditForm(obj=cycle)
    if not form.validate_on_submit():
        return _cycle_edit_page(cycle_id, form)
    with on_refusal(lambda: _cycle_edit_page(cycle_id, form)):
        outline_svc.update_cycle_settings(cycle, current_user, form.title.data, form.due.data,
                                          form.unit_head_review.data, form.issuers.data, form.issue_date.data,
                                          publish_deadline=form.publish_deadline.data)
        figures_svc.set_share_approved_figures(cycle, current_user, form.share_approved_figures.data)
    flash("报告设置已保存。", "success")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


def _cycle_edit_page(cycle_id: int, form: CycleEditForm):
    return render_template("admin/cycle_edit.html", cycle=get_own_or_404(ReportCycle, cycle_id), form=form,
                           active_nav="admin"), 400 if request.method == "POST" else 200


def _open_summary(cycle: ReportCycle) -> dict:
    unit_ids = set(db.session.scalars(
        select(Assignment.unit_id).join(Section).where(Section.cycle_id == cycle.id)))
    liaisons = db.session.scalar(
        select(func.count(User.id)).where(
            User.unit_id.in_(unit_ids), User.active.is_(True),
            User.role_rows.any(UserRole.role == "liaison"))) or 0
    return {"units": len(unit_ids), "liaisons": liaisons}


class _DateField(DateField):
    """A date whose wrong format is told in Chinese."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(DATE_MSG) from None


class OpenForm(FlaskForm):
    """开始征集: the date past due dates are moved to, when the admin chooses to move them."""

    move_to = _DateField("顺延至", validators=[Optional()], format="%Y-%m-%d")


class ReopenForm(OpenForm):
    reason = TextAreaField("理由（选填）", validators=[Optional(), Length(max=2000, message="理由最多2000字。")])


def _default_move_to() -> date:
    """Today + 5 working days (Beijing time): time enough to finish, little enough to stay urgent."""
    return current_calendar().add_working_days(local_today(), 5)


LATE_CHOICES = ("move", "keep")


def _late_choice_missing(cycle: ReportCycle) -> str | None:
    """The refusal when due dates have passed and the request chose neither to move nor to keep them
    (a page opened before they passed, a direct request): opening then would start late unwarned."""
    if request.form.get("late") in LATE_CHOICES or cycle.state not in ("setup", "compiling"):
        return None  # a cycle that cannot open is refused for that
    past = past_dues(cycle)
    if not past:
        return None
    return (f"有{len(past)}项任务的截止日期已过（最早为{cn_date_text(past[0].due)}），请在下方选择"
            "顺延截止日期或按原截止日期，再确认。")


def _move_due_to(form: OpenForm, cycle: ReportCycle) -> date | None:
    """The date chosen with 顺延截止日期 (the ``late`` button), or None to keep the dates as they are."""
    missing = _late_choice_missing(cycle)
    if missing:
        raise DomainError(missing)
    if request.form.get("late") != "move":
        return None
    if form.move_to.data is None:
        raise DomainError("请填写顺延后的截止日期，或选择按原截止日期开始。")
    return form.move_to.data


def _late_context(cycle: ReportCycle, form: OpenForm) -> dict:
    past = past_dues(cycle)
    if past and form.move_to.data is None and not form.move_to.errors:
        form.move_to.data = _default_move_to()
    labels = {n.section.id: n.path_label for n in outline_svc.load_outline(cycle)} if past else {}
    return {"past": past, "past_labels": labels, "today": local_today()}


@bp.route("/cycles/<int:cycle_id>/open", methods=["GET", "POST"])
@handler("admin.manage")
def cycle_open(cycle_id):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    form = OpenForm()
    if not form.validate_on_submit():
        return _open_page(cycle_id, form, 400 if form.move_to.errors else 200)
    # A refusal shows the page again as 200, as it always did.
    with on_refusal(lambda: _open_page(cycle_id, form), status=200):
        move_to = _move_due_to(form, cycle)
        open_cycle(cycle, current_user, move_due_to=move_to)
    flash("已开始征集，各单位联络员已收到填报通知。"
          + (f"已过的截止日期已顺延至{cn_date_text(move_to)}。" if move_to else ""), "success")
    stuck = stuck_warnings(cycle)
    if stuck:
        flash(f"仍有{len(stuck)}项材料无人能办理（见下方提示），请尽快指定审核人或添加账号。", "warning")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


def _open_page(cycle_id: int, form: OpenForm, status: int = 200):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    stuck = stuck_warnings(cycle)
    no_head = cycle.unit_head_review and any(w.kind == "unit_head" for w in stuck)
    return render_template("admin/cycle_open.html", cycle=cycle, form=form, summary=_open_summary(cycle),
                           stuck=stuck, no_head=no_head, active_nav="admin", **_late_context(cycle, form)), status


@bp.route("/cycles/<int:cycle_id>/compile", methods=["POST"])
@handler("admin.manage")
def cycle_compile(cycle_id):
    cycle_obj = get_own_or_404(ReportCycle, cycle_id)
    form = OptionalReasonForm(prefix="compile")
    if not form.validate_on_submit():
        return _cycle_page(cycle_id, compile_form=form, status=400)
    # Refused (material not yet approved and no reason given): the overview again, as 409.
    with on_refusal(lambda: _cycle_page(cycle_id, compile_form=form), status=409):
        compile_cycle(cycle_obj, current_user, force_reason=form.reason.data)
    flash("已进入汇总编辑。", "success")
    if compile_available():
        return redirect(url_for("compile.index", cycle_id=cycle_id), code=303)
    return redirect(url_for(".cycle", cycle_id=cycle_id), code=303)


@bp.route("/cycles/<int:cycle_id>/reopen-collection", methods=["GET", "POST"])
@handler("admin.manage")
def cycle_reopen_collection(cycle_id):
    cycle_obj = get_own_or_404(ReportCycle, cycle_id)
    form = ReopenForm(prefix="reopen")
    overview = url_for(".cycle", cycle_id=cycle_id)
    if request.method == "GET":
        return _reopen_collection_page(cycle_obj, form)
    if not form.validate_on_submit():
        return _reopen_collection_page(cycle_obj, form, 400)
    # From the overview's old one-step form a refusal goes back to the overview, as it always did;
    # past due dates not yet decided on are shown on this page, with the choice.
    late_page = "late" in request.form or _late_choice_missing(cycle_obj)
    page = (lambda: _reopen_collection_page(cycle_obj, form)) if late_page else back_to(overview)
    with on_refusal(page, status=200):
        move_to = _move_due_to(form, cycle_obj)
        reopen_collection(cycle_obj, current_user, comment=form.reason.data, move_due_to=move_to)
    flash("已重新开始征集，各单位可以继续修改材料。"
          + (f"已过的截止日期已顺延至{cn_date_text(move_to)}。" if move_to else ""), "success")
    return redirect(overview, code=303)


def _reopen_collection_page(cycle: ReportCycle, form: ReopenForm, status: int = 200):
    return render_template("admin/cycle_reopen.html", cycle=cycle, form=form, active_nav="admin",
                           **_late_context(cycle, form)), status


@bp.route("/cycles/<int:cycle_id>/contributions")
@handler("admin.manage")
def contributions(cycle_id):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    state = request.args.get("state", "approved")
    if state not in CONTRIBUTION_STATE_LABELS:
        state = "approved"
    nodes = outline_svc.load_outline(cycle)
    paths = {n.section.id: n.path_label for n in nodes}
    order = {n.section.id: i for i, n in enumerate(nodes)}
    rows = list(db.session.scalars(
        select(Contribution).where(Contribution.cycle_id == cycle.id, Contribution.state == state)
        .options(selectinload(Contribution.unit))))
    rows.sort(key=lambda c: (order.get(c.section_id, 0), c.unit.sort_order, c.unit_id))
    # 代单位负责人处理 asks per row whether the unit has a unit head: read for all rows at once.
    with unit_decisions_read(c for c in rows if c.state == "unit_review"):
        return render_template("admin/contributions.html", cycle=cycle, rows=rows, paths=paths, state=state,
                               STATE_LABELS=CONTRIBUTION_STATE_LABELS, active_nav="admin")


@bp.route("/contributions/<int:contribution_id>/reopen", methods=["GET", "POST"])
@handler("admin.manage")
def contribution_reopen(contribution_id):
    contribution = get_own_or_404(Contribution, contribution_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _reopen_page(contribution_id, form)
    with on_refusal(lambda: _reopen_page(contribution_id, form)):
        reopen_contribution(contribution, current_user, comment=form.reason.data)
    flash(f"已重新打开{contribution.unit.name}的材料，退回该单位修改。", "success")
    return redirect(url_for(".contributions", cycle_id=contribution.cycle_id), code=303)


def _reopen_page(contribution_id: int, form: ReasonForm):
    return render_template("admin/contribution_reopen.html", c=get_own_or_404(Contribution, contribution_id),
                           form=form, active_nav="admin"), (400 if request.method == "POST" else 200)


# ------------------------------------------------------------------ acting for a missing unit head

_UNIT_DECISIONS = {"unit_approve": ("approve", "已代单位负责人同意报送，材料已转给审核人。"),
                   "unit_return": ("return", "已代单位负责人退回修改，联络员会收到退回意见。")}


@bp.route("/contributions/<int:contribution_id>/unit-decision", methods=["GET", "POST"])
@handler("admin.manage")
def contribution_unit_decision(contribution_id):
    """Material waiting in 待单位审核 of a unit that has no active unit head: the admin agrees or
    returns it on the unit head's behalf (the workflow logs it so), so that it is never stuck."""
    contribution = get_own_or_404(Contribution, contribution_id)
    forms = {"approve": OptionalReasonForm(prefix="approve"), "return": ReasonForm(prefix="return")}
    forms["approve"].reason.label.text, forms["return"].reason.label.text = "意见（选填）", "退回意见"
    if request.method == "GET":
        return _unit_decision_page(contribution_id, forms)
    event = request.form.get("event", "")
    if event not in _UNIT_DECISIONS or not forms[_UNIT_DECISIONS[event][0]].validate_on_submit():
        return _unit_decision_page(contribution_id, forms, 400)
    prefix, done = _UNIT_DECISIONS[event]
    operation = unit_approve_contribution if event == "unit_approve" else unit_return_contribution
    with on_refusal(lambda: _unit_decision_page(contribution_id, forms), status=200):
        operation(contribution, current_user, comment=forms[prefix].reason.data)
    flash(done, "success")
    return redirect(url_for(".contributions", cycle_id=contribution.cycle_id, state="unit_review"), code=303)


def _unit_decision_page(contribution_id: int, forms: dict, status: int = 200):
    from ...policy import can, stand_in_refusal
    from ...web.loading import transition_logs

    c = get_own_or_404(Contribution, contribution_id)
    may_act = can(current_user, "contribution.unit_approve", c)
    refusal = None if may_act or c.state != "unit_review" else stand_in_refusal(current_user, c)
    return render_template("admin/contribution_unit_decision.html", c=c, forms=forms,
                           may_act=may_act, refusal=refusal,
                           logs=transition_logs(c), STATE_LABELS=CONTRIBUTION_STATE_LABELS,
                           active_nav="admin"), status
