"""Template filters and globals: local time, state labels, deadlines, permissions, the nav."""
from __future__ import annotations

from datetime import date, datetime

from flask import current_app
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select

from ..extensions import db
from ..timeutil import local_today, to_local, utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS, CYCLE_STATE_LABELS
from .permissions import can as _can

# CSS class per contribution state; colours live in static/css/app.css.
STATE_CLASSES = {
    "draft": "state-draft",
    "unit_review": "state-unit-review",
    "submitted": "state-submitted",
    "returned": "state-returned",
    "approved": "state-approved",
}


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    local = to_local(value)
    return local.strftime(fmt) if local else ""


def cn_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_local(value).date()
    return f"{value.year}年{value.month}月{value.day}日"


def days_left(due: date | None, today: date | None = None) -> int | None:
    if due is None:
        return None
    return (due - (today or local_today())).days


def deadline_text(due: date | None, done: bool = False) -> str:
    """'还剩3天' / '今天截止' / '已逾期2天'; '' without a due date or when already done."""
    left = days_left(due)
    if left is None or done:
        return ""
    if left > 0:
        return f"还剩{left}天"
    if left == 0:
        return "今天截止"
    return f"已逾期{-left}天"


def waiting_text(since: datetime | None, now: datetime | None = None) -> str:
    """How long something has waited: '2天3小时', '5小时', '12分钟'."""
    if since is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时"
    return f"{max(minutes, 1)}分钟"


def state_badge(state: str) -> Markup:
    label = CONTRIBUTION_STATE_LABELS.get(state, state)
    cls = STATE_CLASSES.get(state, "")
    return Markup('<span class="badge {}">{}</span>').format(cls, label)


def nl2p(text: str | None) -> Markup:
    """Escape ``text`` and give each non-empty line its own paragraph."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return Markup("").join(Markup("<p>{}</p>").format(line) for line in lines)


def filesize(n: int | None) -> str:
    from ..services.attachments import human_size

    return human_size(n or 0)


def has_endpoint(name: str) -> bool:
    return name in current_app.view_functions


def unread_count() -> int:
    if not current_user.is_authenticated:
        return 0
    from ..models import Notification

    return db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.user_id == current_user.id, Notification.read_at.is_(None)
        )
    ) or 0


def register(app) -> None:
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(cn_date, "cn_date")
    app.add_template_filter(deadline_text, "deadline_text")
    app.add_template_filter(waiting_text, "waiting")
    app.add_template_filter(state_badge, "state_badge")
    app.add_template_filter(nl2p, "nl2p")
    app.add_template_filter(filesize, "filesize")
    app.add_template_global(has_endpoint, "has_endpoint")
    app.add_template_global(days_left, "days_left")
    app.add_template_global(CONTRIBUTION_STATE_LABELS, "STATE_LABELS")
    app.add_template_global(CYCLE_STATE_LABELS, "CYCLE_STATE_LABELS")

    @app.context_processor
    def _globals():
        return {
            "can": lambda action, obj=None: _can(current_user, action, obj),
            "unread_count": unread_count,
        }


