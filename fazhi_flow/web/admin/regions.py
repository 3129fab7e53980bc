"""System administrator's pages (系统管理员): the regions of the installation, their parents and first admins.

Every route declares ``@handler("region.manage")``. The regions are above any one region's admin, so
they load by id whatever their region (``get_any_or_404``); everything they change goes through
services/regions.py, which audits it.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Optional

from ...extensions import db
from ...limits import max_length
from ...models import Region, User, UserRole
from ...models.org import LEVEL_RANK, REGION_LEVELS
from ...services import regions as svc
from ..fields import db_int
from ..handler import handler, on_refusal
from . import bp
from .common import back_to, get_any_or_404
from .forms import ActionForm, choices


class RegionEditForm(FlaskForm):
    name = StringField("地区名称", validators=[DataRequired("请填写地区名称。"), max_length(Region.name, "地区名称")],
                       description="报告标题和公开页面上显示的名称，例如 益阳市赫山区 或 赫山区。")
    parent = SelectField("上级地区", coerce=int, default=0, validate_choice=False)


class RegionForm(RegionEditForm):
    code = StringField("地区代码", validators=[DataRequired("请填写地区代码。"), max_length(Region.code, "地区代码", "个字符")],
                       description="建议用GB/T 2260六位行政区划代码，例如 430903；也可用2至20个字母、数字、下划线或短横线。"
                                   "创建后不能修改。")
    level = SelectField("级别", choices=choices(REGION_LEVELS.items()), default="county")


class FirstAdminForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请填写用户名。"), max_length(User.username, "用户名", "个字符")],
                           description="登录用，全系统唯一，字母或数字开头，3至60个字符。")
    name = StringField("姓名", validators=[DataRequired("请填写姓名。"), max_length(User.name, "姓名")])
    email = StringField("电子邮箱", validators=[Optional(), max_length(User.email, "邮箱", "个字符")])
    phone = StringField("电话", validators=[Optional(), max_length(User.phone, "电话", "个字符")])


def _parent_choices(region: Region | None = None):
    """Active regions that may hold others (provinces, cities), indented as in the tree. Moving a region
    under itself or below is not offered (and refused by the service with its reason if posted)."""
    pairs = [(0, "（无，顶级地区）")]
    for node in svc.region_tree(active_only=True):
        r = node.region
        if LEVEL_RANK[r.level] >= LEVEL_RANK["county"]:
            continue
        if region is not None and (r.id == region.id or r.is_below(region)):
            continue
        pairs.append((r.id, f"{'　' * node.depth}{r.name}（{r.code}，{r.level_label}）"))
    if region is not None and region.parent is not None and region.parent_id not in {p[0] for p in pairs}:
        pairs.append((region.parent_id, f"{region.parent.name}（已停用）"))
    return choices(pairs)


def _posted_parent(form) -> Region | None:
    """The parent a form names (0: none); an id that is no region is 404."""
    if request.method != "POST" or not form.parent.data:
        return None
    return get_any_or_404(Region, form.parent.data)


@bp.route("/regions")
@handler("region.manage")
def regions():
    tree = svc.region_tree()
    return render_template("admin/regions.html", tree=tree, counts=svc.region_counts(),
                           active_nav="admin")


@bp.route("/regions/new", methods=["GET", "POST"])
@handler("region.manage")
def region_new():
    form = RegionForm()
    form.parent.choices = _parent_choices()
    if request.method == "GET":
        form.parent.data = request.args.get("parent", 0, type=db_int)
    parent = _posted_parent(form)
    if not form.validate_on_submit():
        return _region_page(form, None)
    with on_refusal(lambda: _region_page(form, None)):
        region = svc.create_region(current_user, form.code.data, form.name.data, form.level.data, parent)
    flash(f"已新建地区“{region.name}”（{region.code}）。可以为它设置第一位管理员。", "success")
    return redirect(url_for(".region_edit", region_id=region.id), code=303)


def _region_page(form, region: Region | None):
    return render_template("admin/region_form.html", form=form, region=region, admins=_admins(region),
                           action_form=ActionForm(), active_nav="admin"), (400 if request.method == "POST" else 200)


def _admins(region: Region | None) -> list[User]:
    """The region's admins (管理员), so that the page says whether it has one yet."""
    if region is None:
        return []
    return list(db.session.scalars(select(User).where(
        User.region_id == region.id, User.role_rows.any(UserRole.role == "admin")).order_by(User.id)))


@bp.route("/regions/<int:region_id>/edit", methods=["GET", "POST"])
@handler("region.manage")
def region_edit(region_id):
    region = get_any_or_404(Region, region_id)
    form = RegionEditForm(obj=region, parent=region.parent_id or 0)
    form.parent.choices = _parent_choices(region)
    parent = _posted_parent(form)
    if not form.validate_on_submit():
        return _region_page(form, region)
    with on_refusal(lambda: _region_page(form, get_any_or_404(Region, region_id))):
        svc.update_region(region, current_user, form.name.data, parent)
    flash(f"地区“{region.name}”已保存。", "success")
    return redirect(url_for(".regions"), code=303)


@bp.route("/regions/<int:region_id>/<any(deactivate, activate):action>", methods=["POST"])
@handler("region.manage")
def region_toggle(region_id, action):
    region = get_any_or_404(Region, region_id)
    back = url_for(".region_edit", region_id=region_id)
    if ActionForm().validate_on_submit():
        with on_refusal(back_to(back)):
            if action == "deactivate":
                stopped = svc.deactivate_region(region, current_user)
                message = f"已停用地区“{region.name}”，其{len(stopped)}个用户账号同时停用。"
            else:
                started = svc.activate_region(region, current_user)
                message = f"已启用地区“{region.name}”，停用地区时停用的{len(started)}个用户账号已恢复。"
        flash(message, "success")
    return redirect(back, code=303)


@bp.route("/regions/<int:region_id>/first-admin", methods=["GET", "POST"])
@handler("region.manage")
def region_first_admin(region_id):
    region = get_any_or_404(Region, region_id)
    form = FirstAdminForm()
    if not form.validate_on_submit():
        return _first_admin_page(form, region)
    with on_refusal(lambda: _first_admin_page(form, get_any_or_404(Region, region_id))):
        user, password = svc.create_first_admin(current_user, region, form.username.data, form.name.data,
                                                form.email.data, form.phone.data)
    # Shown once, never stored in clear: the admin must change it at the first login.
    return render_template("admin/passwords.html", passwords={user.username: password}, created=True,
                           back=url_for(".region_edit", region_id=region_id), active_nav="admin")


def _first_admin_page(form, region: Region):
    return render_template("admin/region_admin.html", form=form, region=region, active_nav="admin"), \
        (400 if request.method == "POST" else 200)
