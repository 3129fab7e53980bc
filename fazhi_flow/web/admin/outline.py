"""Admin pages: the outline editor and the assignments of sections to units."""
from __future__ import annotations

from datetime import date

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ...errors import DomainError
from ...extensions import db
from ...models import Assignment, ReportCycle, Section, Unit, User, UserRole
from ...models.org import UNIT_KINDS
from ...services import assignments as assignment_svc
from ...services import outline as outline_svc
from ...services.stuck import stuck_warnings
from ..fields import db_int, int_list
from . import bp
from .common import flash_refusal, get_or_404
from .forms import ActionForm, NewSectionForm, SectionForm, choices

# ------------------------------------------------------------------ outline


def _parent_choices(nodes, exclude_depth=outline_svc.MAX_DEPTH):
    return choices([(0, "（一级章节）")] + [(n.section.id, "　" * (n.depth - 1) + n.numbered_title)
                                           for n in nodes if n.depth < exclude_depth])


@bp.route("/cycles/<int:cycle_id>/outline")
def outline(cycle_id, form=None, status=200):
    cycle = get_or_404(ReportCycle, cycle_id)
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
def section_add(cycle_id):
    cycle = get_or_404(ReportCycle, cycle_id)
    form = NewSectionForm(prefix="new")
    form.parent.choices = _parent_choices(outline_svc.load_outline(cycle))
    if not form.validate_on_submit():
        return outline(cycle_id, form=form, status=400)
    parent = db.session.get(Section, form.parent.data) if form.parent.data else None
    try:
        section = outline_svc.add_section(cycle, current_user, form.title.data, parent=parent,
                                          guidance=form.guidance.data, word_limit=form.word_limit.data,
                                          run_in=form.run_in.data, due=form.due.data, code=form.code.data)
        db.session.commit()
    except DomainError as exc:
        flash_refusal(exc)
        return outline(cycle_id, form=form, status=400)
    flash(f"已添加章节“{section.title or '开篇段落'}”。", "success")
    return redirect(url_for(".outline", cycle_id=cycle_id) + f"#s{section.id}", code=303)


@bp.route("/sections/<int:section_id>/edit", methods=["GET", "POST"])
def section_edit(section_id):
    section = get_or_404(Section, section_id)
    form = SectionForm(obj=section)
    if form.validate_on_submit():
        try:
            outline_svc.update_section(section, current_user, form.title.data, form.guidance.data,
                                       form.word_limit.data, form.run_in.data, form.due.data)
            db.session.commit()
        except DomainError as exc:
            flash_refusal(exc)
            section = get_or_404(Section, section_id)
        else:
            flash("章节已保存。", "success")
            return redirect(url_for(".outline", cycle_id=section.cycle_id) + f"#s{section.id}", code=303)
    nodes = outline_svc.load_outline(section.cycle)
    path = next((n.path_label for n in nodes if n.section.id == section.id), "")
    return render_template("admin/section_edit.html", section=section, path=path, form=form,
                           active_nav="admin"), 400 if request.method == "POST" else 200


MOVES = {"up": lambda s, u: outline_svc.move_section(s, u, "up"),
         "down": lambda s, u: outline_svc.move_section(s, u, "down"),
         "indent": outline_svc.indent_section,
         "outdent": outline_svc.outdent_section}


@bp.route("/sections/<int:section_id>/move", methods=["POST"])
def section_move(section_id):
    section = get_or_404(Section, section_id)
    form = ActionForm()
    direction = request.form.get("direction", "")
    if direction not in MOVES:
        abort(400)
    if form.validate_on_submit():
        try:
            MOVES[direction](section, current_user)
            db.session.commit()
        except DomainError as exc:
            flash_refusal(exc)
    return redirect(url_for(".outline", cycle_id=section.cycle_id) + f"#s{section_id}", code=303)


@bp.route("/sections/<int:section_id>/delete", methods=["GET", "POST"])
def section_delete(section_id):
    section = get_or_404(Section, section_id)
    cycle_id = section.cycle_id
    form = ActionForm()
    if form.validate_on_submit():
        try:
            outline_svc.delete_section(section, current_user)
            db.session.commit()
        except DomainError as exc:
            flash_refusal(exc)
        else:
            flash("章节已删除。", "success")
            return redirect(url_for(".outline", cycle_id=cycle_id), code=303)
        section = get_or_404(Section, section_id)
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
def assignments(cycle_id):
    cycle = get_or_404(ReportCycle, cycle_id)
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


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"日期“{text}”格式不正确，应为 年-月-日，例如 2025-01-10") from None


@bp.route("/sections/<int:section_id>/assignments", methods=["GET", "POST"])
def section_assignments(section_id):
    section = get_or_404(Section, section_id)
    cycle = section.cycle
    form = ActionForm()
    existing = {a.unit_id: a for a in section.assignments}
    units = list(db.session.scalars(
        select(Unit).where(Unit.active.is_(True) | Unit.id.in_(list(existing))).order_by(Unit.sort_order, Unit.id)))
    reviewers = list(db.session.scalars(
        select(User).where(User.active.is_(True), User.role_rows.any(UserRole.role == "reviewer"))
        .order_by(User.name, User.id)))
    # What the page shows: the stored values, or on a failed POST what was typed.
    typed = {u.id: {"role": existing[u.id].role if u.id in existing else "",
                    "due": existing[u.id].due.isoformat() if u.id in existing and existing[u.id].due else ""}
             for u in units}
    chosen_reviewers = {u.id for u in section.reviewers}
    section_due = section.due.isoformat() if section.due else ""
    errors: list[str] = []
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        wanted = {}
        for u in units:
            role = request.form.get(f"role-{u.id}", "")
            due_text = request.form.get(f"due-{u.id}", "").strip()
            typed[u.id] = {"role": role, "due": due_text}
            due = None
            if due_text:
                try:
                    due = _parse_date(due_text)
                except ValueError as exc:
                    errors.append(f"{u.name}：{exc}")
            if role not in ("", "lead", "support"):
                errors.append(f"{u.name}：分工只能是牵头或配合")
            wanted[u.id] = assignment_svc.UnitChoice(role, due)
        section_due = request.form.get("section_due", "").strip()
        due_value = None
        if section_due:
            try:
                due_value = _parse_date(section_due)
            except ValueError as exc:
                errors.append(f"本章节截止日期：{exc}")
        try:
            chosen_reviewers = set(int_list(request.form.getlist("reviewers")))
        except ValueError:
            abort(400)
        if not errors:
            try:
                counts = assignment_svc.set_section_assignments(section, current_user, wanted, due_value,
                                                                sorted(chosen_reviewers))
                db.session.commit()
            except DomainError as exc:
                flash_refusal(exc)
                section = get_or_404(Section, section_id)
            else:
                flash(f"任务分配已保存：新增{counts['added']}个单位，修改{counts['changed']}项，"
                      f"取消{counts['removed']}个单位。", "success")
                return redirect(url_for(".assignments", cycle_id=cycle.id) + f"#s{section.id}", code=303)
        else:
            for e in errors:
                flash(e, "error")
    nodes = outline_svc.load_outline(section.cycle)
    path = next((n.path_label for n in nodes if n.section.id == section.id), "")
    inherited = section.parent.effective_due() if section.parent else section.cycle.due
    with_material = {uid for uid, a in existing.items() if assignment_svc.has_material(a)} \
        if section.assignments else set()
    return render_template(
        "admin/section_assignments.html", section=section, path=path, units=units, typed=typed,
        reviewers=reviewers, chosen_reviewers=chosen_reviewers, section_due=section_due, inherited=inherited,
        with_material=with_material, form=form, UNIT_KINDS=UNIT_KINDS,
        editable=section.cycle.state in assignment_svc.EDITABLE_CYCLE_STATES, active_nav="admin",
    ), (400 if request.method == "POST" else 200)
