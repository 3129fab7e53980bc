"""Login with throttling (local password, or LDAP when configured), logout that invalidates the
session, password change."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ... import policy, sso
from ...auth_loader import stamp_login
from ...extensions import db
from ...models import User
from ...ops.logs import log_refused_login
from ...services import login_throttle
from ...services.audit import record
from ..handler import handler, public
from . import bp
from .device import remember_device, trusted_device
from .forms import ChangePasswordForm, LoginForm, LogoutForm

# Compared against when the username is unknown, so that a miss costs as much time as a hit.
_DUMMY_HASH = generate_password_hash("not-a-real-password")
FAILED_MESSAGE = "用户名或密码不正确。"
LDAP_DOWN_MESSAGE = "暂时无法连接统一身份认证（LDAP）服务器，未能核对密码，请稍后再试；如持续出现，请联系管理员。"


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _find_user(username: str) -> User | None:
    name = (username or "").strip()
    if not name:
        return None
    return db.session.scalar(select(User).where(func.lower(User.username) == name.lower()))


class LoginRefused(Exception):
    """A refused login form: ``reason`` for the audit trail, ``message`` for the person."""

    def __init__(self, user, reason: str, message: str = FAILED_MESSAGE):
        super().__init__(reason)
        self.user, self.reason, self.message = user, reason, message


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        ip, device = request.remote_addr, trusted_device(username)
        wait = login_throttle.wait_seconds(username, ip, device)
        if wait:
            return _throttled(form, username, ip, device, wait)
        try:
            user, method = _check_credentials(username, form.password.data)
        except LoginRefused as refused:
            return _refuse(form, username, refused, ip, device)
        login_throttle.record_success(username, ip, device)
        return complete_login(user, method, remember_as=username)
    return login_page(form)


def login_page(form=None, status: int = 200):
    """The login page, with the single sign-on button when OpenID Connect is configured."""
    config = current_app.config
    return render_template("auth/login.html", form=form or LoginForm(), ldap_login=sso.ldap_enabled(config),
                           oidc_label=sso.oidc_button_label(config) if sso.oidc_enabled(config) else None,
                           next_url=_safe_next(request.args.get("next"))), status


def _check_credentials(username: str, password: str):
    """The account and how it was proven (``"ldap"`` or ``"password"``), or LoginRefused.

    With LDAP configured the directory is asked first; when it does not accept the password, the
    local password still works for people who have one and may use it (``password_login_allowed``)."""
    ldap_down = False
    if sso.ldap_enabled(current_app.config):
        from ...sso import ldap as sso_ldap
        from ...sso.matching import SsoRefused, match_user

        try:
            identity = sso_ldap.authenticate(username, password)
        except sso_ldap.LdapUnavailable:
            identity, ldap_down = None, True
        if identity is not None:
            try:
                return match_user(identity), "ldap"
            except SsoRefused as exc:
                raise LoginRefused(None, f"ldap_{exc.reason}", exc.message) from None
    user = _find_user(username)
    ok = user.check_password(password) if user else check_password_hash(_DUMMY_HASH, password)
    if user is not None and not policy.password_login_allowed(user):
        raise LoginRefused(user, "password_login_disabled", _sso_only_message(ldap_down))
    if not ok or not user.active:
        message = LDAP_DOWN_MESSAGE if ldap_down else FAILED_MESSAGE
        raise LoginRefused(user, "inactive" if ok else "bad_credentials", message)
    return user, "password"


def _sso_only_message(ldap_down: bool) -> str:
    config = current_app.config
    if ldap_down:
        return LDAP_DOWN_MESSAGE
    if sso.ldap_enabled(config):
        return "用户名或密码不正确。该账号不能使用本地密码，请输入统一身份认证（LDAP）的密码。"
    if sso.oidc_enabled(config):
        return f"该账号不能使用密码登录，请点击“{sso.oidc_button_label(config)}”，通过统一身份认证登录。"
    return "该账号只能通过统一身份认证登录，但本系统尚未配置统一身份认证，请联系管理员。"


def complete_login(user, method: str, remember_as: str | None = None, next_url: str | None = None):
    """Log ``user`` in (after the password, LDAP or OpenID Connect check) and answer the redirect."""
    record(user, "auth.login", f"user:{user.id}", method=method)
    login_user(user)
    stamp_login()
    session[sso.LOGIN_METHOD_KEY] = method
    return remember_device(_after_login(user, method, next_url), remember_as or user.username)


def _throttled(form, username, ip, device, wait: int):
    record(None, "auth.login_throttled", f"user:{username[:60]}", trusted_device=bool(device))
    log_refused_login(username, "throttled", ip)
    # Kept although the answer is 429 (on which the handler rolls back): refusals are recorded.
    db.session.commit()
    minutes, seconds = divmod(wait, 60)
    span = f"{minutes}分{seconds}秒" if minutes else f"{seconds}秒"
    flash(f"登录失败次数较多，为保护账号安全，请{span}后再试。", "error")
    return login_page(form, 429)


def _refuse(form, username, refused: LoginRefused, ip, device):
    """One answer for a wrong password and a deactivated account, so a refusal confirms no guess."""
    login_throttle.record_failure(username, ip, device)
    record(refused.user, "auth.login_failed", f"user:{username[:60]}", reason=refused.reason)
    log_refused_login(username, refused.reason, ip)
    flash(refused.message, "error")
    return login_page(form)


def _after_login(user, method: str = "password", next_url: str | None = None):
    # Single sign-on logins are not sent to change a local password they did not use.
    if method == "password" and user.must_change_password:
        flash("首次登录或密码已被重置，请先设置新密码。", "warning")
        return redirect(url_for("auth.change_password"))
    return redirect(next_url or _safe_next(request.args.get("next")) or url_for("main.index"))


@bp.route("/logout", methods=["POST"])
@handler("authenticated")
def logout():
    form = LogoutForm()
    if not form.validate_on_submit():
        flash("退出失败，请刷新页面后重试。", "error")
        return redirect(url_for("main.index"))
    user = current_user._get_current_object()
    # A new token makes every cookie issued for the old one useless.
    user.rotate_session_token()
    record(user, "auth.logout", f"user:{user.id}")
    logout_user()
    flash("您已安全退出。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@handler("password.change", "您的账号通过统一身份认证登录，没有本系统的密码可修改。")
def change_password():
    user = current_user._get_current_object()
    form = ChangePasswordForm(username=user.username)
    if form.validate_on_submit():
        if not user.check_password(form.current.data):
            form.current.errors.append("当前密码不正确。")
        elif form.new.data == form.current.data:
            form.new.errors.append("新密码不能与当前密码相同。")
        else:
            user.set_password(form.new.data)  # also rotates the session token
            user.must_change_password = False
            record(user, "auth.password_changed", f"user:{user.id}")
            login_user(user)  # keep this browser logged in with the new token
            flash("密码已修改。其他设备上的登录已失效。", "success")
            return redirect(url_for("main.index"))
    return render_template("auth/change_password.html", form=form, forced=user.must_change_password)
