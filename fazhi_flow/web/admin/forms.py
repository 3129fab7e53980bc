"""Forms of the office admin's pages. Labels and messages in Chinese."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (BooleanField, DateField, HiddenField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ...limits import max_length
from ...models import ReportCycle, Section, Unit, User
from ...models.org import ROLE_LABELS, ROLES, UNIT_KINDS
from ...whole_numbers import optional_int
from ...workflow.states import REVIEW_MODE_LABELS
from ..fields import IntField

DATE_MSG = "日期格式应为 年-月-日，例如 2025-01-10。"


class CnDateField(DateField):
    """A date whose wrong format is told in Chinese (WTForms says "Not a valid date value")."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(DATE_MSG) from None


def choices(pairs) -> list[SelectChoice]:
    """Select choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token is checked."""


class ReasonForm(FlaskForm):
    reason = TextAreaField("理由", validators=[DataRequired("请填写理由。"),
                                             Length(max=2000, message="理由最多2000字。")])


class OptionalReasonForm(FlaskForm):
    reason = TextAreaField("理由（强制进入汇总编辑时必填）",
                           validators=[Optional(), Length(max=2000, message="理由最多2000字。")])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _year_field():
    return IntField("年度", validators=[InputRequired("请填写年度，例如 2024。"),
                                      NumberRange(2000, 2100, "年度应在2000至2100之间。")])


class CycleSettingsMixin:
    title = StringField("报告标题", validators=[DataRequired("请填写报告标题。"),
                                             max_length(ReportCycle.title, "标题")])
    due = CnDateField("材料截止日期", validators=[Optional()], format="%Y-%m-%d")
    unit_head_review = BooleanField("材料须经单位负责人同意后报送")
    issuers = TextAreaField("落款单位（每行一个）", validators=[Optional(), max_length(ReportCycle.issuers, "落款单位")])
    issue_date = CnDateField("成文日期", validators=[Optional()], format="%Y-%m-%d")


def template_title(year: int) -> str:
    """The title proposed for a new cycle built on the standard outline."""
    return f"{year}年法治政府建设年度报告"


def _year_title_field(label: str):
    # Empty: the title proposed for the chosen year. data-year-title lets static/js/app.js move the
    # year in the proposed title when the year is changed.
    return StringField(label, validators=[Optional(), max_length(ReportCycle.title, "标题")],
                       render_kw={"data-year-title": ""})


def _title_year_field():
    # The year the title on the page was proposed for: a title still equal to that proposal follows
    # the year actually chosen (also without JavaScript).
    return HiddenField(render_kw={"data-title-year": ""})


def follow_year(form, proposed) -> None:
    """Give ``form.title`` the title ``proposed(year)`` for the chosen year when it is empty or still
    the untouched proposal for the year the page proposed it for (``form.title_year``)."""
    year, title = form.year.data, (form.title.data or "").strip()
    raw = (form.title_year.data or "").strip()
    shown_for = optional_int(raw, 2000, 2100)
    if not title or (shown_for is not None and shown_for != year and title == proposed(shown_for)):
        form.title.data = proposed(year)
    form.title_year.data = str(year)


class CycleTemplateForm(CycleSettingsMixin, FlaskForm):
    year = _year_field()
    # The name printed in the report; empty: the region's own name (the route fills it in).
    region = StringField("地区", validators=[Optional(), max_length(ReportCycle.region, "地区")])
    title = _year_title_field("报告标题")
    title_year = _title_year_field()


class CycleEditForm(CycleSettingsMixin, FlaskForm):
    share_approved_figures = BooleanField("允许联络员查看和引用其他单位已审核通过的统计数据")
    # Empty: 1 April of the following year (the oversight view counts the days to it).
    publish_deadline = CnDateField("发布截止日期", validators=[Optional()], format="%Y-%m-%d")


class CycleUploadForm(FlaskForm):
    file = FileField("年度报告定义文件（YAML）", validators=[FileRequired("请选择要上传的文件。")])


class CycleCloneForm(FlaskForm):
    source = SelectField("复制哪一年的报告", coerce=int, validators=[DataRequired("请选择要复制的年度报告。")])
    year = _year_field()
    title = _year_title_field("新报告标题")
    title_year = _title_year_field()


class ReviewModeField(RadioField):
    """任一审核人通过 / 全部审核人会签, a wrong value told in Chinese."""

    def pre_validate(self, form):
        if self.data not in REVIEW_MODE_LABELS:
            raise ValidationError("请选择审核方式：任一审核人通过，或全部审核人会签。")


class SectionForm(FlaskForm):
    title = StringField("章节标题", validators=[max_length(Section.title, "标题")],
                        description="开篇段落可以不写标题。")
    guidance = TextAreaField("填报说明", validators=[max_length(Section.guidance, "填报说明")])
    word_limit = IntField("字数上限", validators=[Optional(), NumberRange(1, 100000, "字数上限应为1至100000。")])
    run_in = BooleanField("标题与正文同段（如“（一）标题。正文……”）")
    due = CnDateField("本章节截止日期（留空则沿用上级或全局截止日期）", validators=[Optional()], format="%Y-%m-%d")
    review_mode = ReviewModeField("审核方式", choices=choices(REVIEW_MODE_LABELS.items()), default="any",
                                  description="“全部审核人会签”：本章节（或上级章节）指定的审核人都同意后，材料才算通过；"
                                              "任何一位退回，材料即退回修改。")


class NewSectionForm(SectionForm):
    review_mode = None  # a new section names no reviewers yet: set on its edit page later
    parent = SelectField("上级章节", coerce=int, default=0)
    code = StringField("章节代码（可留空自动生成）", validators=[Optional(), max_length(Section.code, "章节代码", "个字符")])


class UnitForm(FlaskForm):
    code = StringField("单位代码", validators=[DataRequired("请填写单位代码。"), max_length(Unit.code, "单位代码", "个字符")],
                       description="字母开头，只用字母、数字、下划线和短横线，例如 sfj。创建后不能修改。")
    name = StringField("单位名称", validators=[DataRequired("请填写单位名称。"), max_length(Unit.name, "单位名称")])
    kind = SelectField("单位类型", choices=choices(UNIT_KINDS.items()), default="government")
    parent = SelectField("上级单位", coerce=int, default=0)


class UnitEditForm(UnitForm):
    code = None  # the code is a stable key used by cycle files


class UserForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请填写用户名。"), max_length(User.username, "用户名", "个字符")],
                           description="登录用，字母或数字开头，3至60个字符。创建后不能修改。")
    name = StringField("姓名", validators=[DataRequired("请填写姓名。"), max_length(User.name, "姓名")])
    unit = SelectField("所属单位", coerce=int, default=0)
    roles = MultiCheckboxField("角色", choices=choices((r, ROLE_LABELS[r]) for r in ROLES))
    email = StringField("电子邮箱", validators=[Optional(), max_length(User.email, "邮箱", "个字符")])
    phone = StringField("电话", validators=[Optional(), max_length(User.phone, "电话", "个字符")])

    def validate_roles(self, field):
        if not field.data:
            raise ValidationError("请至少选择一个角色。")


class UserEditForm(UserForm):
    username = None
    password_login_disabled = BooleanField("停用本地密码登录（只能通过统一身份认证登录）")
    unbind_sso = BooleanField("解除与统一身份认证账号的关联")


class ImportForm(FlaskForm):
    kind = RadioField("导入内容", choices=choices([("units", "单位"), ("users", "用户")]), default="units",
                      validators=[DataRequired("请选择导入单位还是用户。")])
    file = FileField("文件（.xlsx 或 .csv）", validators=[FileRequired("请选择要上传的文件。")])


class ImportConfirmForm(FlaskForm):
    kind = HiddenField()
    filename = HiddenField()
    payload = HiddenField()  # the checked file, base64; checked again before anything is written
