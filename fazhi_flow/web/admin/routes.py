"""Routes of the office admin (管理员). Every route needs the admin role; POSTs carry a CSRF token.

Each handler loads, validates the form, calls one service, commits once and redirects; a refused
operation (DomainError) is rolled back and shown as a flash above the same form, with what was typed.
"""
from __future__ import annotations

import importlib.util
import json
import re
import secrets
import time
from datetime import date
from pathlib import Path

from flask import (abort, current_app, flash, redirect, render_template, request, send_file, url_for)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ...errors import DomainError
from ...extensions import db
from ...models import (Assignment, Contribution, ReportCycle, Section, TransitionLog, Unit, User,
                       UserRole)
from ...models.org import ROLE_LABELS, ROLES, UNIT_KINDS
from ...services import assignments as assignment_svc
from ...services import outline as outline_svc
from ...services import users as user_svc
from ...services.contributions import reopen_contribution
from ...services.cycles import compile_cycle, open_cycle, reopen_collection
from ...workflow.states import CONTRIBUTION_STATE_LABELS
from ..fields import db_int
from . import bp
from .forms import (ActionForm, CycleCloneForm, CycleEditForm, CycleTemplateForm, CycleUploadForm,
                    ImportConfirmForm, ImportForm, NewSectionForm, OptionalReasonForm, ReasonForm,
                    SectionForm, UnitEditForm, UnitForm, UserEditForm, UserForm, choices)

MAX_CYCLE_FILE = 1024 * 1024
STAGING_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,60}$")
STAGING_MAX_AGE = 24 * 3600


@bp.before_request
def _admin_only():
    # Server-side guard for every admin route, GET included.
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not current_user.has_role("admin"):
        abort(403)
    return None


def _get(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        abort(404)
    return obj


def _fail(exc: DomainError) -> None:
    db.session.rollback()
    flash(exc.message, "error")


def _compile_endpoint() -> bool:
    return "compile.index" in current_app.view_functions


# ------------------------------------------------------------------ cycles


@bp.route("/")
def index():
    return redirect(url_for(".cycles"))


@bp.route("/cycles")
def cycles():
    rows = list(db.session.scalars(select(ReportCycle).order_by(ReportCycle.year.desc(), ReportCycle.id.desc())))
    counts = {}
    for cycle_id, state, n in db.session.execute(
        select(Contribution.cycle_id, Contribution.state, func.count()).group_by(Contribution.cycle_id,
                                                                                 Contribution.state)
    ):
        counts.setdefault(cycle_id, {})[state] = n
    assigned = dict(db.session.execute(
        select(Section.cycle_id, func.count(Assignment.id)).join(Assignment, Assignment.section_id == Section.id)
        .group_by(Section.cycle_id)
    ).all())
    return render_template("admin/cycles.html", cycles=rows, counts=counts, assigned=assigned,
                           active_nav="admin")


def _clone_available() -> bool:
    return importlib.util.find_spec("fazhi_flow.services.clone") is not None


def _new_cycle_page(template_form=None, upload_form=None, clone_form=None, errors=None, status=200):
    template_form = template_form or CycleTemplateForm(prefix="t")
    upload_form = upload_form or CycleUploadForm(prefix="f")
    clone_form = clone_form or CycleCloneForm(prefix="c")
    sources = list(db.session.scalars(select(ReportCycle).order_by(ReportCycle.year.desc(), ReportCycle.id.desc())))
    clone_form.source.choices = choices([(0, "请选择")] + [(c.id, f"{c.region} {c.year}年 {c.title}") for c in sources])
    if request.method == "GET" and not template_form.year.data:
        template_form.year.data = date.today().year - 1
        template_form.title.data = f"{template_form.year.data}年法治政府建设年度报告"
    return render_template("admin/cycle_new.html", template_form=template_form, upload_form=upload_form,
                           clone_form=clone_form, file_errors=errors or [], clone_available=_clone_available(),
                           has_sources=bool(sources), active_nav="admin"), status


@bp.route("/cycles/new")
def cycle_new():
    return _new_cycle_page()


@bp.route("/cycles/new/template", methods=["POST"])
def cycle_new_template():
    form = CycleTemplateForm(prefix="t")
    if not form.validate_on_submit():
        return _new_cycle_page(template_form=form, status=400)
    try:
        cycle = outline_svc.create_cycle_from_template(
            current_user, title=form.title.data, year=form.year.data, region=form.region.data,
            due=form.due.data, unit_head_review=form.unit_head_review.data, issuers=form.issuers.data,
            issue_date=form.issue_date.data)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return _new_cycle_page(template_form=form, errors=getattr(exc, "errors", None), status=400)
    flash(f"已按标准提纲创建“{cycle.title}”。下一步：检查提纲，分配任务。", "success")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


@bp.route("/cycles/new/file", methods=["POST"])
def cycle_new_file():
    from ...services.importer import import_cycle

    form = CycleUploadForm(prefix="f")
    if not form.validate_on_submit():
        return _new_cycle_page(upload_form=form, status=400)
    data = form.file.data.read(MAX_CYCLE_FILE + 1)
    try:
        if len(data) > MAX_CYCLE_FILE:
            raise DomainError("文件过大：年度报告定义文件最大1MB。")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DomainError("文件不是UTF-8编码的文本，请用UTF-8编码保存YAML文件后再上传。") from None
        result = import_cycle(text, current_user)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return _new_cycle_page(upload_form=form, errors=getattr(exc, "errors", None), status=400)
    created = "、".join(f"{label}{result.created[k]}个" for k, label in
                       (("units", "单位"), ("users", "用户"), ("sections", "章节"), ("assignments", "任务分配"))
                       if result.created.get(k))
    flash(f"已导入“{result.cycle.title}”。" + (f"新建：{created}。" if created else "")
          + ("" if result.changed else "文件与现有内容一致，没有变化。"), "success")
    if result.passwords:
        return render_template("admin/passwords.html", passwords=result.passwords,
                               back=url_for(".cycle", cycle_id=result.cycle.id), active_nav="admin")
    return redirect(url_for(".cycle", cycle_id=result.cycle.id), code=303)


@bp.route("/cycles/new/clone", methods=["POST"])
def cycle_new_clone():
    form = CycleCloneForm(prefix="c")
    form.source.choices = choices((c.id, c.title) for c in db.session.scalars(select(ReportCycle)))
    if not _clone_available():
        flash("复制往年报告的功能暂不可用。", "error")
        return redirect(url_for(".cycle_new"), code=303)
    if not form.validate_on_submit():
        return _new_cycle_page(clone_form=form, status=400)
    from ...services.clone import clone_cycle

    source = _get(ReportCycle, form.source.data)
    try:
        # clone_cycle builds sections before adding them to the session; an autoflush in between
        # (a lazy load of the source's reviewers) would warn and skip them, so flush only when it does.
        with db.session.no_autoflush:
            cycle = clone_cycle(source, current_user, year=form.year.data, title=form.title.data)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return _new_cycle_page(clone_form=form, status=400)
    flash(f"已复制“{source.title}”的提纲和任务分配，创建“{cycle.title}”。各截止日期已顺延到新年度，请检查。", "success")
    return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)


def _state_counts(cycle: ReportCycle) -> dict:
    return dict(db.session.execute(
        select(Contribution.state, func.count()).where(Contribution.cycle_id == cycle.id)
        .group_by(Contribution.state)).all())


@bp.route("/cycles/<int:cycle_id>")
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
    cycle = _get(ReportCycle, cycle_id)
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
        has_compile=_compile_endpoint(), STATE_LABELS=CONTRIBUTION_STATE_LABELS, active_nav="admin",
    ), status


@bp.route("/cycles/<int:cycle_id>/edit", methods=["GET", "POST"])
def cycle_edit(cycle_id):
    cycle = _get(ReportCycle, cycle_id)
    form = CycleEditForm(obj=cycle)
    if form.validate_on_submit():
        try:
            outline_svc.update_cycle_settings(cycle, current_user, form.title.data, form.due.data,
                                              form.unit_head_review.data, form.issuers.data, form.issue_date.data)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
        else:
            flash("报告设置已保存。", "success")
            return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)
    return render_template("admin/cycle_edit.html", cycle=_get(ReportCycle, cycle_id), form=form,
                           active_nav="admin"), 400 if request.method == "POST" else 200


def _open_summary(cycle: ReportCycle) -> dict:
    unit_ids = set(db.session.scalars(
        select(Assignment.unit_id).join(Section).where(Section.cycle_id == cycle.id)))
    liaisons = db.session.execute(
        select(User.unit_id, func.count(User.id)).where(
            User.unit_id.in_(unit_ids), User.active.is_(True),
            User.role_rows.any(UserRole.role == "liaison")).group_by(User.unit_id)).all()
    with_liaison = dict(liaisons)
    without = list(db.session.scalars(
        select(Unit).where(Unit.id.in_(unit_ids - set(with_liaison))).order_by(Unit.sort_order, Unit.id)))
    without_head = []
    if cycle.unit_head_review:
        # Their submissions would wait in 待单位审核 with nobody able to approve them.
        with_head = set(db.session.scalars(
            select(User.unit_id).where(User.unit_id.in_(unit_ids), User.active.is_(True),
                                       User.role_rows.any(UserRole.role == "unit_head"))))
        without_head = list(db.session.scalars(
            select(Unit).where(Unit.id.in_(unit_ids - with_head)).order_by(Unit.sort_order, Unit.id)))
    return {"units": len(unit_ids), "liaisons": sum(with_liaison.values()), "without_liaison": without,
            "without_head": without_head}


@bp.route("/cycles/<int:cycle_id>/open", methods=["GET", "POST"])
def cycle_open(cycle_id):
    cycle = _get(ReportCycle, cycle_id)
    form = ActionForm()
    if form.validate_on_submit():
        try:
            open_cycle(cycle, current_user)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
        else:
            flash("已开始征集，各单位联络员已收到填报通知。", "success")
            return redirect(url_for(".cycle", cycle_id=cycle.id), code=303)
        cycle = _get(ReportCycle, cycle_id)
    return render_template("admin/cycle_open.html", cycle=cycle, form=form, summary=_open_summary(cycle),
                           active_nav="admin")


@bp.route("/cycles/<int:cycle_id>/compile", methods=["POST"])
def cycle_compile(cycle_id):
    cycle_obj = _get(ReportCycle, cycle_id)
    form = OptionalReasonForm(prefix="compile")
    if not form.validate_on_submit():
        return _cycle_page(cycle_id, compile_form=form, status=400)
    try:
        compile_cycle(cycle_obj, current_user, force_reason=form.reason.data)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return _cycle_page(cycle_id, compile_form=form, status=409)
    flash("已进入汇总编辑。", "success")
    if _compile_endpoint():
        return redirect(url_for("compile.index", cycle_id=cycle_id), code=303)
    return redirect(url_for(".cycle", cycle_id=cycle_id), code=303)


@bp.route("/cycles/<int:cycle_id>/reopen-collection", methods=["POST"])
def cycle_reopen_collection(cycle_id):
    cycle_obj = _get(ReportCycle, cycle_id)
    form = OptionalReasonForm(prefix="reopen")
    if form.validate_on_submit():
        try:
            reopen_collection(cycle_obj, current_user, comment=form.reason.data)
            db.session.commit()
            flash("已重新开始征集，各单位可以继续修改材料。", "success")
        except DomainError as exc:
            _fail(exc)
    else:
        flash("理由最多2000字。", "error")
    return redirect(url_for(".cycle", cycle_id=cycle_id), code=303)


@bp.route("/cycles/<int:cycle_id>/contributions")
def contributions(cycle_id):
    cycle = _get(ReportCycle, cycle_id)
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
    return render_template("admin/contributions.html", cycle=cycle, rows=rows, paths=paths, state=state,
                           STATE_LABELS=CONTRIBUTION_STATE_LABELS, active_nav="admin")


@bp.route("/contributions/<int:contribution_id>/reopen", methods=["GET", "POST"])
def contribution_reopen(contribution_id):
    contribution = _get(Contribution, contribution_id)
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            reopen_contribution(contribution, current_user, comment=form.reason.data)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
            contribution = _get(Contribution, contribution_id)
        else:
            flash(f"已重新打开{contribution.unit.name}的材料，退回该单位修改。", "success")
            return redirect(url_for(".contributions", cycle_id=contribution.cycle_id), code=303)
    return render_template("admin/contribution_reopen.html", c=contribution, form=form, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


# ------------------------------------------------------------------ outline


def _parent_choices(nodes, exclude_depth=outline_svc.MAX_DEPTH):
    return choices([(0, "（一级章节）")] + [(n.section.id, "　" * (n.depth - 1) + n.numbered_title)
                                           for n in nodes if n.depth < exclude_depth])


@bp.route("/cycles/<int:cycle_id>/outline")
def outline(cycle_id, form=None, status=200):
    cycle = _get(ReportCycle, cycle_id)
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
    cycle = _get(ReportCycle, cycle_id)
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
        _fail(exc)
        return outline(cycle_id, form=form, status=400)
    flash(f"已添加章节“{section.title or '开篇段落'}”。", "success")
    return redirect(url_for(".outline", cycle_id=cycle_id) + f"#s{section.id}", code=303)


@bp.route("/sections/<int:section_id>/edit", methods=["GET", "POST"])
def section_edit(section_id):
    section = _get(Section, section_id)
    form = SectionForm(obj=section)
    if form.validate_on_submit():
        try:
            outline_svc.update_section(section, current_user, form.title.data, form.guidance.data,
                                       form.word_limit.data, form.run_in.data, form.due.data)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
            section = _get(Section, section_id)
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
    section = _get(Section, section_id)
    form = ActionForm()
    direction = request.form.get("direction", "")
    if direction not in MOVES:
        abort(400)
    if form.validate_on_submit():
        try:
            MOVES[direction](section, current_user)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
    return redirect(url_for(".outline", cycle_id=section.cycle_id) + f"#s{section_id}", code=303)


@bp.route("/sections/<int:section_id>/delete", methods=["GET", "POST"])
def section_delete(section_id):
    section = _get(Section, section_id)
    cycle_id = section.cycle_id
    form = ActionForm()
    if form.validate_on_submit():
        try:
            outline_svc.delete_section(section, current_user)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
        else:
            flash("章节已删除。", "success")
            return redirect(url_for(".outline", cycle_id=cycle_id), code=303)
        section = _get(Section, section_id)
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
    cycle = _get(ReportCycle, cycle_id)
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
                           reviewers=reviewers, unassigned_leaves=unassigned_leaves,
                           editable=cycle.state in assignment_svc.EDITABLE_CYCLE_STATES, active_nav="admin")


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"日期“{text}”格式不正确，应为 年-月-日，例如 2025-01-10") from None


@bp.route("/sections/<int:section_id>/assignments", methods=["GET", "POST"])
def section_assignments(section_id):
    section = _get(Section, section_id)
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
            chosen_reviewers = {int(v) for v in request.form.getlist("reviewers")}
        except ValueError:
            abort(400)
        if not errors:
            try:
                counts = assignment_svc.set_section_assignments(section, current_user, wanted, due_value,
                                                                sorted(chosen_reviewers))
                db.session.commit()
            except DomainError as exc:
                _fail(exc)
                section = _get(Section, section_id)
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


# ------------------------------------------------------------------ units


def _unit_choices(exclude: Unit | None = None):
    units = db.session.scalars(select(Unit).where(Unit.active.is_(True)).order_by(Unit.sort_order, Unit.id))
    return choices([(0, "（无）")] + [(u.id, u.name) for u in units if exclude is None or u.id != exclude.id])


@bp.route("/units")
def units():
    show = request.args.get("show", "active")
    query = select(Unit).order_by(Unit.sort_order, Unit.id)
    if show != "all":
        query = query.where(Unit.active.is_(True))
    rows = list(db.session.scalars(query))
    people = dict(db.session.execute(
        select(User.unit_id, func.count(User.id)).where(User.active.is_(True)).group_by(User.unit_id)).all())
    return render_template("admin/units.html", units=rows, people=people, show=show, action_form=ActionForm(),
                           active_nav="admin")


@bp.route("/units/new", methods=["GET", "POST"])
def unit_new():
    form = UnitForm()
    form.parent.choices = _unit_choices()
    if form.validate_on_submit():
        try:
            parent = db.session.get(Unit, form.parent.data) if form.parent.data else None
            unit = user_svc.create_unit(current_user, form.code.data, form.name.data, form.kind.data, parent)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
        else:
            flash(f"已添加单位“{unit.name}”。", "success")
            return redirect(url_for(".units"), code=303)
    return render_template("admin/unit_form.html", form=form, unit=None, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/units/<int:unit_id>/edit", methods=["GET", "POST"])
def unit_edit(unit_id):
    unit = _get(Unit, unit_id)
    form = UnitEditForm(obj=unit, parent=unit.parent_id or 0)
    form.parent.choices = _unit_choices(exclude=unit)
    if unit.parent_id and unit.parent_id not in {c.value for c in form.parent.choices}:
        form.parent.choices += choices([(unit.parent_id, f"{unit.parent.name}（已停用）")])
    if form.validate_on_submit():
        try:
            parent = db.session.get(Unit, form.parent.data) if form.parent.data else None
            user_svc.update_unit(unit, current_user, form.name.data, form.kind.data, parent)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
            unit = _get(Unit, unit_id)
        else:
            flash("单位信息已保存。", "success")
            return redirect(url_for(".units"), code=303)
    return render_template("admin/unit_form.html", form=form, unit=unit, action_form=ActionForm(),
                           active_nav="admin"), (400 if request.method == "POST" else 200)


@bp.route("/units/<int:unit_id>/<any(deactivate, activate):action>", methods=["POST"])
def unit_toggle(unit_id, action):
    unit = _get(Unit, unit_id)
    if ActionForm().validate_on_submit():
        try:
            if action == "deactivate":
                user_svc.deactivate_unit(unit, current_user)
                message = f"已停用“{unit.name}”及其用户账号。"
            else:
                user_svc.activate_unit(unit, current_user)
                message = f"已启用“{unit.name}”。该单位的用户账号需逐个启用。"
            db.session.commit()
            flash(message, "success")
        except DomainError as exc:
            _fail(exc)
    return redirect(url_for(".unit_edit", unit_id=unit_id), code=303)


# ------------------------------------------------------------------ users


def _user_unit_choices(current: Unit | None = None):
    options = _unit_choices()
    if current is not None and not current.active:
        options += choices([(current.id, f"{current.name}（已停用）")])
    return options


@bp.route("/users")
def users():
    q = (request.args.get("q") or "").strip()[:60]
    role = request.args.get("role", "")
    unit_id = request.args.get("unit", 0, type=db_int)
    show = request.args.get("show", "active")
    query = select(User).options(selectinload(User.unit)).order_by(User.unit_id, User.id)
    if q:
        like = f"%{q}%"
        query = query.where(User.username.ilike(like) | User.name.ilike(like))
    if role in ROLES:
        query = query.where(User.role_rows.any(UserRole.role == role))
    if unit_id:
        query = query.where(User.unit_id == unit_id)
    if show != "all":
        query = query.where(User.active.is_(True))
    rows = list(db.session.scalars(query.limit(1000)))
    unit_list = list(db.session.scalars(select(Unit).order_by(Unit.sort_order, Unit.id)))
    return render_template("admin/users.html", users=rows, q=q, role=role, unit_id=unit_id, show=show,
                           units=unit_list, ROLE_LABELS=ROLE_LABELS, active_nav="admin")


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserForm()
    form.unit.choices = _unit_choices()
    if request.method == "GET":
        form.unit.data = request.args.get("unit", 0, type=db_int)
    if form.validate_on_submit():
        try:
            unit = db.session.get(Unit, form.unit.data) if form.unit.data else None
            user, password = user_svc.create_user(current_user, form.username.data, form.name.data,
                                                  form.roles.data, unit, form.email.data, form.phone.data)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
        else:
            # Shown once, never stored in clear: the user must change it at the first login.
            return render_template("admin/passwords.html", passwords={user.username: password}, created=True,
                                   back=url_for(".users"), active_nav="admin")
    return render_template("admin/user_form.html", form=form, user=None, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def user_edit(user_id):
    user = _get(User, user_id)
    form = UserEditForm(obj=user, unit=user.unit_id or 0, roles=sorted(user.roles))
    form.unit.choices = _user_unit_choices(user.unit)
    if form.validate_on_submit():
        try:
            unit = db.session.get(Unit, form.unit.data) if form.unit.data else None
            user_svc.update_user(user, current_user, form.name.data, form.roles.data, unit, form.email.data,
                                 form.phone.data)
            db.session.commit()
        except DomainError as exc:
            _fail(exc)
            user = _get(User, user_id)
        else:
            flash(f"{user.name}的信息已保存。", "success")
            return redirect(url_for(".users"), code=303)
    return render_template("admin/user_form.html", form=form, user=user, action_form=ActionForm(),
                           active_nav="admin"), (400 if request.method == "POST" else 200)


@bp.route("/users/<int:user_id>/<any(deactivate, activate):action>", methods=["POST"])
def user_toggle(user_id, action):
    user = _get(User, user_id)
    if ActionForm().validate_on_submit():
        try:
            if action == "deactivate":
                user_svc.deactivate_user(user, current_user)
                message = f"已停用{user.name}的账号，其登录状态已失效。"
            else:
                user_svc.activate_user(user, current_user)
                message = f"已启用{user.name}的账号。"
            db.session.commit()
            flash(message, "success")
        except DomainError as exc:
            _fail(exc)
    return redirect(url_for(".user_edit", user_id=user_id), code=303)


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
def user_reset_password(user_id):
    user = _get(User, user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        password = user_svc.reset_password(user, current_user)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return redirect(url_for(".user_edit", user_id=user_id), code=303)
    return render_template("admin/passwords.html", passwords={user.username: password}, reset=True,
                           back=url_for(".user_edit", user_id=user_id), active_nav="admin")


# ------------------------------------------------------------------ import users / units


def _staging_dir() -> Path:
    folder = Path(current_app.instance_path) / "import-staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _stage(kind: str, filename: str, data: bytes) -> str:
    """Keep an uploaded import file until the admin confirms it; return its token."""
    folder = _staging_dir()
    now = time.time()
    for old in folder.glob("*"):
        if now - old.stat().st_mtime > STAGING_MAX_AGE:
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    (folder / f"{token}.bin").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps({"kind": kind, "filename": filename,
                                                      "user": current_user.id}), encoding="utf-8")
    return token


def _unstage(token: str):
    if not STAGING_TOKEN_RE.match(token or ""):
        return None
    folder = _staging_dir()
    meta_path, data_path = folder / f"{token}.json", folder / f"{token}.bin"
    if not meta_path.exists() or not data_path.exists():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("user") != current_user.id:
        return None
    return meta, data_path.read_bytes(), (meta_path, data_path)


@bp.route("/import", methods=["GET", "POST"])
def import_people():
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        filename = (upload.filename or "").rsplit("/", 1)[-1][:120]
        data = upload.read(user_svc.MAX_IMPORT_BYTES + 1)
        try:
            preview = user_svc.parse_import(form.kind.data, filename, data)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            db.session.rollback()  # the preview reads only; make sure nothing lingers
            token = _stage(form.kind.data, filename, data) if preview.ok else ""
            confirm = ImportConfirmForm(kind=form.kind.data, filename=filename, payload=token)
            return render_template("admin/import_preview.html", preview=preview, confirm=confirm,
                                   filename=filename, UNIT_KINDS=UNIT_KINDS, ROLE_LABELS=ROLE_LABELS,
                                   active_nav="admin")
    return render_template("admin/import.html", form=form, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/import/confirm", methods=["POST"])
def import_confirm():
    form = ImportConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    staged = _unstage(form.payload.data)
    if staged is None:
        flash("导入文件已过期或不存在，请重新上传。", "error")
        return redirect(url_for(".import_people"), code=303)
    meta, data, paths = staged
    try:
        # Checked again: the database may have changed since the preview.
        preview = user_svc.parse_import(meta["kind"], meta["filename"], data)
        result = user_svc.apply_import(current_user, preview)
        db.session.commit()
    except DomainError as exc:
        _fail(exc)
        return redirect(url_for(".import_people"), code=303)
    for path in paths:
        path.unlink(missing_ok=True)
    if meta["kind"] == "units":
        flash(f"已导入{len(result['units'])}个单位。", "success")
        return redirect(url_for(".units"), code=303)
    flash(f"已导入{len(result['users'])}个用户。请把下面的初始密码分别告知本人，首次登录时须修改。", "success")
    return render_template("admin/passwords.html", passwords=result["passwords"], created=True,
                           back=url_for(".users"), active_nav="admin")


@bp.route("/import/template-<any(units, users):kind>.xlsx")
def import_template(kind):
    import io

    return send_file(io.BytesIO(user_svc.import_template(kind)), as_attachment=True,
                     download_name=f"{'单位' if kind == 'units' else '用户'}导入模板.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

