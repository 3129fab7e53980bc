"""Forms of the compile and sign-off pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from ..fields import IntField


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token is checked."""


class SectionTextForm(FlaskForm):
    body = TextAreaField("合并稿", validators=[Length(max=50_000, message="每个章节最多50000字。")])
    # The version of the section's merged text the form was loaded at (0: still pre-filled).
    version = IntField(validators=[InputRequired("页面已过期，请刷新后再保存。"), NumberRange(min=0)])


class CommentForm(FlaskForm):
    comment = TextAreaField("说明（可选）", validators=[Optional(), Length(max=2000, message="最多2000字。")])


class SignForm(FlaskForm):
    version = HiddenField(validators=[DataRequired("页面已过期，请刷新后再签发。")])
    comment = TextAreaField("签发意见（可选）", validators=[Optional(), Length(max=2000, message="最多2000字。")])


class ReturnForm(FlaskForm):
    comment = TextAreaField("退回意见", validators=[DataRequired("退回修改必须填写意见。"),
                                                Length(max=5000, message="意见最多5000字。")])


class CorrectionForm(FlaskForm):
    note = TextAreaField("更正说明", validators=[DataRequired("请填写更正说明：更正了什么、为什么更正。"),
                                             Length(max=2000, message="更正说明最多2000字。")])
    # What the admin compared: the published version and the draft number shown on the page. A form
    # loaded before a newer one is refused, so nobody asks to sign a text they did not check.
    published = IntField(widget=HiddenInput(), validators=[InputRequired("页面已过期，请刷新后再提交。"),
                                                            NumberRange(min=1)])
    draft = IntField(widget=HiddenInput(), validators=[InputRequired("页面已过期，请刷新后再提交。"),
                                                       NumberRange(min=1)])


class AppendixForm(FlaskForm):
    appendix = BooleanField("发布时附统计指标汇总表")
