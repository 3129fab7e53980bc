"""Admin pages: units, users and their import from CSV or XLSX.

An admin manages their own region only: every list and choice is filtered by it, and an id of another
region's unit or user (in a URL or a form) answers 404, as a missing one would."""
from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from flask import (abort, after_this_request, current_app, flash, redirect, render_template, request, send_file,
                   url_for)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ... import policy, sso
from ...errors import PermissionDenied
from ...extensions import db
from ...models import Unit, User, UserRole
from ...models.org import ROLE_LABELS, ROLES, UNIT_KINDS
from ...services.regions import regions_below
from ...services import users as user_svc
from ...sso import accounts as sso_accounts
from ..fields import db_int
from ..handler import handler, on_refusal
from . import bp
from ..own_region import get_own_or_404
from .common import STAGING_MAX_AGE, STAGING_TOKEN_RE, back_to
from .forms import (ActionForm, ImportConfirmForm, ImportForm, UnitEditForm, UnitForm, UserEditForm,
                    UserForm, choices)

# ------------------------------------------------------------------ units


def _unit_choices(exclude: Unit | None = None):
    units = db.session.scalars(select(Unit).where(Unit.active.is_(True), Unit.region_id == current_user.region_id)
                               .order_by(Unit.sort_order, Unit.id))
    return choices([(0, "（无）")] + [(u.id, u.name) for u in units if exclude is None or u.id != exclude.id])


def _posted_unit(field) -> Unit | None:
    """The unit a form names (0: none); another region's id is 404 before the form is checked, so it
    never reaches a choice list or a message."""
    if request.method != "POST" or not field.data:
        return None
    return get_own_or_404(Unit, field.data)


def _role_choices(user: User | None = None):
    """The roles this admin may give in their region, and those ``user`` has already (kept as they are).
    督导 only where regions lie below; 系统管理员 only by a system administrator. A role posted beyond
    these reaches the service, which refuses it with its reason."""
    allowed = {"admin", "reviewer", "liaison", "unit_head", "leader"}
    if regions_below(current_user.region_id):
        allowed.add("oversight")
    if policy.can(current_user, "user.grant_sysadmin"):
        allowed.add("sysadmin")
    if user is not None:
        allowed |= user.roles
    return choices((r, ROLE_LABELS[r]) for r in ROLES if r in allowed)


def _set_role_choices(form, user: User | None = None) -> None:
    form.roles.choices = _role_choices(user)
    form.roles.validate_choice = False


def _manageable_user_or_404(user_id: int) -> User:
    user = get_own_or_404(User, user_id)
    if not policy.can(current_user, "user.manage", user):
        raise PermissionDenied("系统管理员的账号只能由系统管理员管理。")
    return user


@bp.route("/units")
@handler("admin.manage")
def units():
    show = request.args.get("show", "active")
    query = select(Unit).where(Unit.region_id == current_user.region_id).order_by(Unit.sort_order, Unit.id)
    if show != "all":
        query = query.where(Unit.active.is_(True))
    rows = list(db.session.scalars(query))
    people = dict(db.session.execute(
        select(User.unit_id, func.count(User.id)).where(User.active.is_(True), User.region_id == current_user.region_id)
        .group_by(User.unit_id)).all())
    return render_template("admin/units.html", units=rows, people=people, show=show, action_form=ActionForm(),
                           active_nav="admin")


@bp.route("/units/new", methods=["GET", "POST"])
@handler("admin.manage")
def unit_new():
    form = UnitForm()
    form.parent.choices = _unit_choices()
    parent = _posted_unit(form.parent)
    if not form.validate_on_submit():
        return _unit_new_page(form)
    with on_refusal(lambda: _unit_new_page(form)):
        unit = user_svc.create_unit(current_user, form.code.data, form.name.data, form.kind.data, parent,
                                    region=current_user.region)
    flash(f"已添加单位“{unit.name}”。", "success")
    return redirect(url_for(".units"), code=303)


def _unit_new_page(form: UnitForm):
    return render_template("admin/unit_form.html", form=form, unit=None, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/units/<int:unit_id>/edit", methods=["GET", "POST"])
@handler("admin.manage")
def unit_edit(unit_id):
    unit = get_own_or_404(Unit, unit_id)
    form = UnitEditForm(obj=unit, parent=unit.parent_id or 0)
    form.parent.choices = _unit_choices(exclude=unit)
    if unit.parent_id and unit.parent_id not in {c.value for c in form.parent.choices}:
        form.parent.choices += choices([(unit.parent_id, f"{unit.parent.name}（已停用）")])
    parent = _posted_unit(form.parent)
    if not form.validate_on_submit():
        return _unit_edit_page(unit_id, form)
    with on_refusal(lambda: _unit_edit_page(unit_id, form)):
        user_svc.update_unit(unit, current_user, form.name.data, form.kind.data, parent)
    flash("单位信息已保存。", "success")
    return redirect(url_for(".units"), code=303)


def _unit_edit_page(unit_id: int, form: UnitEditForm):
    return render_template("admin/unit_form.html", form=form, unit=get_own_or_404(Unit, unit_id),
                           action_form=ActionForm(), active_nav="admin"), (400 if request.method == "POST" else 200)


@bp.route("/units/<int:unit_id>/<any(deactivate, activate):action>", methods=["POST"])
@handler("admin.manage")
def unit_toggle(unit_id, action):
    unit = get_own_or_404(Unit, unit_id)
    back = url_for(".unit_edit", unit_id=unit_id)
    if ActionForm().validate_on_submit():
        with on_refusal(back_to(back)):
            if action == "deactivate":
                user_svc.deactivate_unit(unit, current_user)
                message = f"已停用“{unit.name}”及其用户账号。"
            else:
                user_svc.activate_unit(unit, current_user)
                message = f"已启用“{unit.name}”。该单位的用户账号需逐个启用。"
        flash(message, "success")
    return redirect(back, code=303)


# ------------------------------------------------------------------ users


def _user_unit_choices(current: Unit | None = None):
    options = _unit_choices()
    if current is not None and not current.active:
        options += choices([(current.id, f"{current.name}（已停用）")])
    return options


@bp.route("/users")
@handler("admin.manage")
def users():
    q = (request.args.get("q") or "").strip()[:60]
    role = request.args.get("role", "")
    unit_id = request.args.get("unit", 0, type=db_int)
    show = request.args.get("show", "active")
    query = (select(User).options(selectinload(User.unit)).where(User.region_id == current_user.region_id)
             .order_by(User.unit_id, User.id))
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
    unit_list = list(db.session.scalars(select(Unit).where(Unit.region_id == current_user.region_id)
                                        .order_by(Unit.sort_order, Unit.id)))
    return render_template("admin/users.html", users=rows, q=q, role=role, unit_id=unit_id, show=show,
                           units=unit_list, ROLE_LABELS=ROLE_LABELS, active_nav="admin")


@bp.route("/users/new", methods=["GET", "POST"])
@handler("admin.manage")
def user_new():
    form = UserForm()
    form.unit.choices = _unit_choices()
    _set_role_choices(form)
    if request.method == "GET":
        form.unit.data = request.args.get("unit", 0, type=db_int)
    unit = _posted_unit(form.unit)
    if not form.validate_on_submit():
        return _user_new_page(form)
    with on_refusal(lambda: _user_new_page(form)):
        user, password = user_svc.create_user(current_user, form.username.data, form.name.data,
                                              form.roles.data, unit, form.email.data, form.phone.data,
                                              region=current_user.region)
    # Shown once, never stored in clear: the user must change it at the first login.
    return render_template("admin/passwords.html", passwords={user.username: password}, created=True,
                           back=url_for(".users"), active_nav="admin")


def _user_new_page(form: UserForm):
    return render_template("admin/user_form.html", form=form, user=None, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@handler("admin.manage")
def user_edit(user_id):
    user = _manageable_user_or_404(user_id)
    form = UserEditForm(obj=user, unit=user.unit_id or 0, roles=sorted(user.roles))
    form.unit.choices = _user_unit_choices(user.unit)
    _set_role_choices(form, user)
    unit = _posted_unit(form.unit)
    if not form.validate_on_submit():
        return _user_edit_page(user_id, form)
    with on_refusal(lambda: _user_edit_page(user_id, form)):
        user_svc.update_user(user, current_user, form.name.data, form.roles.data, unit, form.email.data,
                             form.phone.data)
        sso_accounts.apply_settings(user, current_user, form.password_login_disabled.data, form.unbind_sso.data)
    flash(f"{user.name}的信息已保存。", "success")
    return redirect(url_for(".users"), code=303)


def _user_edit_page(user_id: int, form: UserEditForm):
    return render_template("admin/user_form.html", form=form, user=get_own_or_404(User, user_id),
                           action_form=ActionForm(), sso_configured=sso.any_enabled(current_app.config),
                           active_nav="admin"), (400 if request.method == "POST" else 200)


@bp.route("/users/<int:user_id>/<any(deactivate, activate):action>", methods=["POST"])
@handler("admin.manage")
def user_toggle(user_id, action):
    user = _manageable_user_or_404(user_id)
    back = url_for(".user_edit", user_id=user_id)
    if ActionForm().validate_on_submit():
        with on_refusal(back_to(back)):
            if action == "deactivate":
                user_svc.deactivate_user(user, current_user)
                message = f"已停用{user.name}的账号，其登录状态已失效。"
            else:
                user_svc.activate_user(user, current_user)
                message = f"已启用{user.name}的账号。"
        flash(message, "success")
    return redirect(back, code=303)


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
@handler("admin.manage")
def user_reset_password(user_id):
    user = _manageable_user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    with on_refusal(back_to(url_for(".user_edit", user_id=user_id))):
        password = user_svc.reset_password(user, current_user)
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


def _unstage_after_commit(paths) -> None:
    """The staged file goes once the import is committed (the handler commits before the response is
    finished); a failed commit keeps it for another try."""

    @after_this_request
    def _drop(response):
        if response.status_code < 400:
            for path in paths:
                path.unlink(missing_ok=True)
        return response


@bp.route("/import", methods=["GET", "POST"])
@handler("admin.manage")
def import_people():
    form = ImportForm()
    if not form.validate_on_submit():
        return _import_page(form)
    upload = form.file.data
    filename = (upload.filename or "").rsplit("/", 1)[-1][:120]
    data = upload.read(user_svc.MAX_IMPORT_BYTES + 1)
    with on_refusal(lambda: _import_page(form)):
        preview = user_svc.parse_import(form.kind.data, filename, data, actor=current_user)
    token = _stage(form.kind.data, filename, data) if preview.ok else ""
    confirm = ImportConfirmForm(kind=form.kind.data, filename=filename, payload=token)
    return render_template("admin/import_preview.html", preview=preview, confirm=confirm,
                           filename=filename, UNIT_KINDS=UNIT_KINDS, ROLE_LABELS=ROLE_LABELS,
                           active_nav="admin")


def _import_page(form: ImportForm):
    return render_template("admin/import.html", form=form, active_nav="admin"), \
        (400 if request.method == "POST" else 200)


@bp.route("/import/confirm", methods=["POST"])
@handler("admin.manage")
def import_confirm():
    form = ImportConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    staged = _unstage(form.payload.data)
    if staged is None:
        flash("导入文件已过期或不存在，请重新上传。", "error")
        return redirect(url_for(".import_people"), code=303)
    meta, data, paths = staged
    with on_refusal(back_to(url_for(".import_people"))):
        # Checked again: the database may have changed since the preview.
        preview = user_svc.parse_import(meta["kind"], meta["filename"], data, actor=current_user)
        result = user_svc.apply_import(current_user, preview)
    _unstage_after_commit(paths)
    if meta["kind"] == "units":
        flash(f"已导入{len(result['units'])}个单位。", "success")
        return redirect(url_for(".units"), code=303)
    flash(f"已导入{len(result['users'])}个用户。请把下面的初始密码分别告知本人，首次登录时须修改。", "success")
    return render_template("admin/passwords.html", passwords=result["passwords"], created=True,
                           back=url_for(".users"), active_nav="admin")


@bp.route("/import/template-<any(units, users):kind>.xlsx")
@handler("admin.manage")
def import_template(kind):
    import io

    return send_file(io.BytesIO(user_svc.import_template(kind)), as_attachment=True,
                     download_name=f"{'单位' if kind == 'units' else '用户'}导入模板.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
