"""Admin pages: the outline editor and the assignments of sections to units."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ...extensions import db
from ...models import Assignment, ReportCycle, Section
from ...models.org import UNIT_KINDS
from ...services import assignments as assignment_svc
from ...services import outline as outline_svc
from ...services.stuck import stuck_warnings
from ..fields import db_int
from ..handler import handler, on_refusal
from . import bp
from .assignment_sheet import AssignmentSheet
from ..own_region import get_own_or_404
from .common import back_to
from .forms import ActionForm, NewSectionForm, SectionForm, choices

# ------------------------------------------------------------------ outline


def _parent_choices(nodes, exclude_depth=outline_svc.MAX_DEPTH):
    return choices([(0, "（一级章节）")] + [(n.section.id, "　" * (n.depth - 1) + n.numbered_title)
                                           for n in nodes if n.depth < exclude_depth])


@bp.route("/cycles/<int:cycle_id>/outline")
@handler("admin.manage")
def outline(cycle_id):
    return _outline_page(cycle_id)


def _outline_page(cycle_id: int, form: NewSectionForm | None = None, status: int = 200):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    nodes = outline_svc.load_outline(cycle)
    if form is None:
        form = NewSectionForm(prefix="new")
        form.parent.data = request.args.get("parent", 0, type=db_int)
    form.parent.choices = _parent_choices(nodes)
    counts = dict(db.session.execute(
        select(Assignment.section_id, func.count(Assignment.id)).join(Section)
        .where(Section.cycle_id == cycle.id).group_by(Assignment.section_id)).all())
    return render_template("admin/outline.html", cycle=cycle, nodes=nodes, form=form, counts=counts,
                           action_form=ActionForm(), editable=cycle.state in outline_svc.EDITABLE_CYCLE_STATES,
                           active_nav="admin"), status


@bp.route("/cycles/<int:cycle_id>/sections", methods=["POST"])
@handler("admin.manage")
def section_add(cycle_id):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    form = NewSectionForm(prefix="new")
    form.parent.choices = _parent_choices(outline_svc.load_outline(cycle))
    if not form.validate_on_submit():
        return _outline_page(cycle_id, form, status=400)
    parent = db.session.get(Section, form.parent.data) if form.parent.data else None
    with on_refusal(lambda: _outline_page(cycle_id, form)):
        section = outline_svc.add_section(cycle, current_user, form.title.data, parent=parent,
                                          guidance=form.guidance.data, word_limit=form.word_limit.data,
                                          run_in=form.run_in.data, due=form.due.data, code=form.code.data)
    flash(f"已添加章节“{section.title or '开篇段落'}”。", "success")
    return redirect(url_for(".outline", cycle_id=cycle_id) + f"#s{section.id}", code=303)


@bp.route("/sections/<int:section_id>/edit", methods=["GET", "POST"])
@handler("admin.manage")
def section_edit(section_id):
    section = get_own_or_404(Section, section_id)
    form = SectionForm(obj=section)
    if not form.validate_on_submit():
        return _section_edit_page(section_id, form)
    with on_refusal(lambda: _section_edit_page(section_id, form)):
        outline_svc.update_section(section, current_user, form.title.data, form.guidance.data,
                                   form.word_limit.data, form.run_in.data, form.due.data,
                                   review_mode=form.review_mode.data)
    flash("章节已保存。", "success")
    return redirect(url_for(".outline", cycle_id=section.cycle_id) + f"#s{section.id}", code=303)


def _path_label(section: Section) -> str:
    nodes = outline_svc.load_outline(section.cycle)
    return next((n.path_label for n in nodes if n.section.id == section.id), "")


def _section_edit_page(section_id: int, form: SectionForm):
    section = get_own_or_404(Section, section_id)
    return render_template("admin/section_edit.html", section=section, path=_path_label(section), form=form,
                           active_nav="admin"), 400 if request.method == "POST" else 200


MOVES = {"up": lambda s, u: outline_svc.move_section(s, u, "up"),
         "down": lambda s, u: outline_svc.move_section(s, u, "down"),
         "indent": outline_svc.indent_section,
         "outdent": outline_svc.outdent_section}


@bp.route("/sections/<int:section_id>/move", methods=["POST"])
@handler("admin.manage")
def section_move(section_id):
    section = get_own_or_404(Section, section_id)
    form = ActionForm()
    direction = request.form.get("direction", "")
    if direction not in MOVES:
        abort(400)
    back = url_for(".outline", cycle_id=section.cycle_id) + f"#s{section_id}"
    if form.validate_on_submit():
        with on_refusal(back_to(back)):
            MOVES[direction](section, current_user)
    return redirect(back, code=303)


@bp.route("/sections/<int:section_id>/delete", methods=["GET", "POST"])
@handler("admin.manage")
def section_delete(section_id):
    section = get_own_or_404(Section, section_id)
    cycle_id = section.cycle_id
    form = ActionForm()
    if not form.validate_on_submit():
        return _section_delete_page(section_id, form)
    # A refusal shows the page again as 200, as it always did.
    with on_refusal(lambda: _section_delete_page(section_id, form), status=200):
        outline_svc.delete_section(section, current_user)
    flash("章节已删除。", "success")
    return redirect(url_for(".outline", cycle_id=cycle_id), code=303)


def _section_delete_page(section_id: int, form: ActionForm):
    section = get_own_or_404(Section, section_id)
    nodes = outline_svc.load_outline(section.cycle)
    ids = {section.id}
    below = []
    for n in nodes:
        if n.section.parent_id in ids:
            ids.add(n.section.id)
            below.append(n)
    path = next((n.path_label for n in nodes if n.section.id == section.id), "")
    n_assign = db.session.scalar(select(func.count(Assignment.id)).where(Assignment.section_id.in_(ids)))
    return render_template("admin/section_delete.html", section=section, path=path, below=below,
                           n_assign=n_assign, form=form, active_nav="admin")


# ------------------------------------------------------------------ assignments


@bp.route("/cycles/<int:cycle_id>/assignments")
@handler("admin.manage")
def assignments(cycle_id):
    cycle = get_own_or_404(ReportCycle, cycle_id)
    nodes = outline_svc.load_outline(cycle)
    rows = list(db.session.scalars(
        select(Assignment).join(Section).where(Section.cycle_id == cycle.id)
        .options(selectinload(Assignment.unit)).order_by(Assignment.id)))
    by_section: dict[int, list] = {}
    for a in rows:
        by_section.setdefault(a.section_id, []).append(a)
    reviewers = {s.id: s.reviewers for s in db.session.scalars(
        select(Section).where(Section.cycle_id == cycle.id).options(selectinload(Section.reviewers)))}
    unassigned_leaves = [n for n in nodes if n.is_leaf and not by_section.get(n.section.id)]
    return render_template("admin/assignments.html", cycle=cycle, nodes=nodes, by_section=by_section,
                           reviewers=reviewers, unassigned_leaves=unassigned_leaves, stuck=stuck_warnings(cycle),
                           editable=cycle.state in assignment_svc.EDITABLE_CYCLE_STATES, active_nav="admin")


@bp.route("/sections/<int:section_id>/assignments", methods=["GET", "POST"])
@handler("admin.manage")
def section_assignments(section_id):
    section = get_own_or_404(Section, section_id)
    form = ActionForm()
    sheet = AssignmentSheet.load(section)
    if request.method == "GET":
        return _section_assignments_page(section, sheet, form, 200)
    if not form.validate_on_submit():
        abort(400)
    sheet.read(request.form)
    if sheet.errors:
        for e in sheet.errors:
            flash(e, "error")
        return _section_assignments_page(section, sheet, form, 400)
    with on_refusal(lambda: _section_assignments_page(get_own_or_404(Section, section_id), sheet, form, 400)):
        counts = assignment_svc.set_section_assignments(section, current_user, sheet.wanted, sheet.due,
                                                        sorted(sheet.chosen_reviewers))
    flash(f"任务分配已保存：新增{counts['added']}个单位，修改{counts['changed']}项，"
          f"取消{counts['removed']}个单位。", "success")
    return redirect(url_for(".assignments", cycle_id=section.cycle_id) + f"#s{section.id}", code=303)


def _section_assignments_page(section: Section, sheet: AssignmentSheet, form: ActionForm, status: int):
    inherited = section.parent.effective_due() if section.parent else section.cycle.due
    with_material = {uid for uid, a in sheet.existing.items() if assignment_svc.has_material(a)} \
        if section.assignments else set()
    return render_template(
        "admin/section_assignments.html", section=section, path=_path_label(section), units=sheet.units,
        typed=sheet.typed, reviewers=sheet.reviewers, chosen_reviewers=sheet.chosen_reviewers,
        section_due=sheet.section_due, inherited=inherited, with_material=with_material, form=form,
        UNIT_KINDS=UNIT_KINDS, editable=section.cycle.state in assignment_svc.EDITABLE_CYCLE_STATES,
        active_nav="admin",
    ), status
