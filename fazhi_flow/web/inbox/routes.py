"""List notifications, open one (marks it read by a POST), mark all read."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select, update

from ...extensions import db
from ...models import Notification
from ...notify.messages import site_path
from ...timeutil import utcnow
from ..fields import db_int
from ..handler import handler
from . import bp

PER_PAGE = 30


def _own(notification_id: int) -> Notification:
    row = db.session.get(Notification, notification_id)
    if row is None or row.user_id != current_user.id:
        from ..errors import abort_with

        abort_with(404, "这条消息不存在。")
    return row


def _safe_link(link: str | None) -> str:
    """The local path a notice leads to. Links are written by the application as site-relative paths;
    an absolute one (written before they were) leads to its path on this site, never elsewhere."""
    link = site_path(link)
    # "//host" and "/\host" are read by browsers as another site.
    if link and link.startswith("/") and not link.startswith(("//", "/\\")):
        return link
    return url_for("inbox.index")


@bp.route("/")
@handler("authenticated")
def index():
    page = max(1, request.args.get("page", 1, type=db_int) or 1)
    only_unread = request.args.get("unread") == "1"
    query = select(Notification).where(Notification.user_id == current_user.id)
    if only_unread:
        query = query.where(Notification.read_at.is_(None))
    # A page past the end is an empty list, not a 404 (error_out=False).
    found = db.paginate(query.order_by(Notification.created_at.desc(), Notification.id.desc()),
                        page=page, per_page=PER_PAGE, error_out=False)
    return render_template("inbox/index.html", rows=list(found.items), page=page, pages=max(1, found.pages),
                           total=found.total, only_unread=only_unread, form=FlaskForm())


@bp.route("/<int:notification_id>/open", methods=["POST"])
@handler("authenticated")
def open_(notification_id: int):
    form = FlaskForm()
    if not form.validate_on_submit():
        flash("页面已过期，请重试。", "error")
        return redirect(url_for("inbox.index"))
    row = _own(notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
    return redirect(_safe_link(row.link))


@bp.route("/<int:notification_id>/read", methods=["POST"])
@handler("authenticated")
def mark_read(notification_id: int):
    form = FlaskForm()
    if form.validate_on_submit():
        row = _own(notification_id)
        if row.read_at is None:
            row.read_at = utcnow()
    return redirect(url_for("inbox.index"))


@bp.route("/read-all", methods=["POST"])
@handler("authenticated")
def mark_all_read():
    form = FlaskForm()
    if form.validate_on_submit():
        db.session.execute(
            update(Notification)
            .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )
        flash("全部消息已标为已读。", "success")
    return redirect(url_for("inbox.index"))
