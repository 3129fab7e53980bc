"""Forms of the liaison's and the unit head's pages."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ...services.contributions import MAX_BODY_CHARS
from ..fields import IntField

COMMENT_MAX = 2000


class EditorForm(FlaskForm):
    # Length is checked by the service so that an over-long text comes back with its own message.
    body = TextAreaField("正文")
    version = IntField("版本", validators=[InputRequired("页面缺少版本信息，请刷新后重试。")])
    # The evidence file travels with the text, so choosing 上传附件 never loses what was typed.
    file = FileField("附件")

    max_chars = MAX_BODY_CHARS


class VersionForm(FlaskForm):
    version = IntField("版本", validators=[InputRequired("页面缺少版本信息，请刷新后重试。")])


class DecisionForm(FlaskForm):
    """同意报送 / 通过: an optional comment."""

    version = IntField("版本", validators=[InputRequired("页面缺少版本信息，请刷新后重试。")])
    comment = TextAreaField("意见（可不填）", validators=[
        Optional(), Length(max=COMMENT_MAX, message=f"意见最多{COMMENT_MAX}字。")])


class ReturnForm(FlaskForm):
    """退回修改: a comment is required and may point at a paragraph."""

    version = IntField("版本", validators=[InputRequired("页面缺少版本信息，请刷新后重试。")])
    comment = TextAreaField("退回意见", validators=[
        DataRequired("退回修改必须填写意见，说明需要怎样修改。"),
        Length(max=COMMENT_MAX, message=f"意见最多{COMMENT_MAX}字。")])
    paragraph = IntField("针对第几段（可不填）", validators=[Optional()])

    def check_paragraph(self, count: int) -> bool:
        value = self.paragraph.data
        if value is None:
            return True
        if not 1 <= value <= max(count, 0):
            self.paragraph.errors = list(self.paragraph.errors) + [
                f"段落编号应在1到{count}之间，或者不填。" if count else "材料没有段落，请不要填写段落编号。"]
            return False
        return True
