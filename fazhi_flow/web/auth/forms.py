"""Forms of the auth area."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from ...services.users import password_problem


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名。"), Length(max=60, message="用户名过长。")])
    password = PasswordField("密码", validators=[DataRequired("请输入密码。"), Length(max=200, message="密码过长。")])
    submit = SubmitField("登录")


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
        problem = password_problem(field.data or "", self._username)
        if problem:
            raise ValidationError(problem)


class LogoutForm(FlaskForm):
    submit = SubmitField("退出登录")
