"""Login with throttling, logout that invalidates the session, password change."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

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
        user = _find_user(username)
        ok = user.check_password(form.password.data) if user else check_password_hash(
            _DUMMY_HASH, form.password.data)
        if not ok or not user.active:
            return _refuse(form, username, user, ip, device, reason="inactive" if ok else "bad_credentials")
        login_throttle.record_success(username, ip, device)
        record(user, "auth.login", f"user:{user.id}")
        login_user(user)
        stamp_login()
        return remember_device(_after_login(user), user.username)
    return render_template("auth/login.html", form=form)


def _throttled(form, username, ip, device, wait: int):
    record(None, "auth.login_throttled", f"user:{username[:60]}", trusted_device=bool(device))
    log_refused_login(username, "throttled", ip)
    # Kept although the answer is 429 (on which the handler rolls back): refusals are recorded.
    db.session.commit()
    minutes, seconds = divmod(wait, 60)
    span = f"{minutes}分{seconds}秒" if minutes else f"{seconds}秒"
    flash(f"登录失败次数较多，为保护账号安全，请{span}后再试。", "error")
    return render_template("auth/login.html", form=form), 429


def _refuse(form, username, user, ip, device, reason: str):
    """One answer for a wrong password and a deactivated account, so a refusal confirms no guess."""
    login_throttle.record_failure(username, ip, device)
    record(user, "auth.login_failed", f"user:{username[:60]}", reason=reason)
    log_refused_login(username, reason, ip)
    flash(FAILED_MESSAGE, "error")
    return render_template("auth/login.html", form=form), 200


def _after_login(user):
    if user.must_change_password:
        flash("首次登录或密码已被重置，请先设置新密码。", "warning")
        return redirect(url_for("auth.change_password"))
    return redirect(_safe_next(request.args.get("next")) or url_for("main.index"))


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
@handler("authenticated")
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
