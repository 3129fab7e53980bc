"""Friendly Chinese error pages; domain errors become a flash message on forms."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import DomainError
from ..extensions import db
from ..services.audit import record_refusal

logger = logging.getLogger(__name__)

MESSAGES = {
    400: ("请求有误", "提交的内容无法处理。请返回上一页检查后再试。"),
    403: ("没有权限", "您没有权限查看或操作这项内容。如确需处理，请联系依法治区办管理员。"),
    404: ("页面不存在", "您要找的页面不存在，或者已被删除。"),
    405: ("操作方式不正确", "请通过页面上的按钮进行操作。"),
    409: ("内容已被他人修改", "您打开页面之后，这项内容已被他人处理。请刷新页面查看最新状态。"),
    413: ("文件太大", "上传的文件超过了大小限制。请压缩或拆分后再上传。"),
    429: ("操作过于频繁", "请稍候再试。"),
    500: ("系统出错了", "处理您的请求时出现问题，您填写的内容可能没有保存。请稍后再试，或联系管理员。"),
}


CSRF_MESSAGE = "页面已过期或缺少安全校验。请返回上一页，刷新后重新提交。"


def render_error(status: int, message: str | None = None):
    title, default = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    return render_template("errors/error.html", status=status, title=title,
                           message=message or default), status


def safe_referrer() -> str | None:
    """The Referer when it points at this site, else None (never redirect elsewhere)."""
    ref = request.referrer
    if not ref:
        return None
    parts = urlsplit(ref)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def register(app) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        db.session.rollback()
        if exc.status == 403:
            record_refusal("forbidden", exc.message)
        if request.method == "POST":
            back = safe_referrer()
            if back:
                flash(exc.message, "error")
                return redirect(back, code=303)
        return render_error(exc.status, exc.message)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        return csrf_refused(exc)

    # Unexpected exceptions reach this handler as InternalServerError (Flask has logged them already);
    # under TESTING they propagate instead, so tests see the real error.
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        db.session.rollback()
        status = exc.code or 500
        if status in (401,):
            status = 403
        if status == 403:
            record_refusal("forbidden", exc.description)
        # Only our own messages (set through abort(code, description=...)) are shown; werkzeug's
        # English defaults are replaced by the Chinese text.
        custom = exc.description if getattr(exc, "_fazhi_message", False) else None
        response, code = render_error(status, custom)
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        return response, code, headers


def csrf_refused(exc):
    """A failed CSRF check: nothing of the request is kept, the refusal is audited, the page explains."""
    db.session.rollback()
    record_refusal("csrf", getattr(exc, "description", None))
    return render_error(400, CSRF_MESSAGE)


def abort_with(status: int, message: str):
    """Abort with ``status`` and a Chinese ``message`` shown on the error page."""
    from werkzeug.exceptions import default_exceptions

    exc = default_exceptions[status](description=message)
    exc._fazhi_message = True
    raise exc
