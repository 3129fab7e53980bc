"""Forms of the auth area."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

MIN_PASSWORD = 8


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名。"), Length(max=60, message="用户名过长。")])
    password = PasswordField("密码", validators=[DataRequired("请输入密码。"), Length(max=200, message="密码过长。")])
    submit = SubmitField("登录")


def check_password_strength(password: str, username: str = "") -> str | None:
    """Return a Chinese message when ``password`` is too weak, else None."""
    if len(password) < MIN_PASSWORD:
        return f"新密码至少需要{MIN_PASSWORD}个字符。"
    if len(password) > 128:
        return "新密码不能超过128个字符。"
    if password.isdigit() or password.isalpha():
        return "新密码不能只有数字或只有字母，请混合使用字母、数字或符号。"
    if username and password.lower() == username.lower():
        return "新密码不能与用户名相同。"
    return None


class ChangePasswordForm(FlaskForm):
    current = PasswordField("当前密码", validators=[DataRequired("请输入当前密码。"), Length(max=200)])
    new = PasswordField("新密码", validators=[DataRequired("请输入新密码。")])
    confirm = PasswordField("再次输入新密码", validators=[DataRequired("请再次输入新密码。"),
                                                      EqualTo("new", message="两次输入的新密码不一致。")])
    submit = SubmitField("修改密码")

    def __init__(self, *args, username: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._username = username

    def validate_new(self, field):
        problem = check_password_strength(field.data or "", self._username)
        if problem:
            raise ValidationError(problem)


class LogoutForm(FlaskForm):
    submit = SubmitField("退出登录")
