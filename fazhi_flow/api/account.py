"""API 令牌: the page where a logged-in person makes, lists and revokes their personal access tokens.

A new token's text is shown once, in the answer to the form that made it (never flashed: the flash
travels in the session cookie); only its hash is stored.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from ..timeutil import utcnow
from ..web.errors import abort_with
from ..web.fields import IntField
from ..web.handler import handler, on_refusal
from . import tokens
from .registry import PREFIX

bp = Blueprint("api_tokens", __name__, url_prefix="/account/tokens")


class ScopeField(RadioField):
    """A radio choice whose refusal of a value not offered is in Chinese."""

    def pre_validate(self, form):
        if self.data not in {c.value for c in self.choices}:
            raise ValidationError("权限只能是“只读”或“读写”。")


class TokenForm(FlaskForm):
    name = StringField("名称（用途）", validators=[
        DataRequired("请填写令牌名称（例如用途），以便日后识别。"),
        Length(max=tokens.NAME_MAX, message=f"令牌名称最多{tokens.NAME_MAX}字。")])
    scope = ScopeField("权限", choices=[SelectChoice("read", "只读：只能读取"),
                                         SelectChoice("write", "读写：可以保存、提交和审核")],
                       default="read", validators=[InputRequired("请选择权限。")])
    days = IntField("有效期（天）", default=tokens.DEFAULT_DAYS, validators=[
        InputRequired("请填写有效期（天）。"),
        NumberRange(min=1, max=tokens.MAX_DAYS, message=f"有效期必须是1到{tokens.MAX_DAYS}天。")])


class RevokeForm(FlaskForm):
    """Only the CSRF token."""


def _page(form: TokenForm, created: str | None = None, created_row=None, status: int = 200):
    return render_template("api/tokens.html", form=form, revoke_form=RevokeForm(),
                           rows=tokens.live_tokens(current_user), now=utcnow(), created=created,
                           created_row=created_row, api_prefix=PREFIX), status


@bp.route("/", methods=["GET", "POST"])
@handler("authenticated")
def index():
    form = TokenForm()
    if not form.is_submitted():
        return _page(form)
    if not form.validate():
        return _page(form, status=422)
    with on_refusal(lambda: _page(form, status=422)):
        row, text = tokens.create_token(current_user, form.name.data, form.scope.data, form.days.data)
    return _page(TokenForm(formdata=None), created=text, created_row=row, status=201)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@handler("authenticated")
def revoke(token_id: int):
    form = RevokeForm()
    if not form.validate_on_submit():
        flash("页面已过期，请刷新后重试。", "error")
        return redirect(url_for(".index"), code=303)
    # Another person's token (of any region) is not found, as a missing id.
    if not tokens.is_own(current_user, token_id):
        abort_with(404, "这个令牌不存在。")
    with on_refusal(lambda: redirect(url_for(".index"), code=303)):
        row = tokens.revoke_token(current_user, token_id)
    flash(f"令牌“{row.name}”（{row.prefix}…）已撤销，使用它的程序将无法再访问。", "success")
    return redirect(url_for(".index"), code=303)
