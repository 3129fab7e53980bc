"""Template filters and globals: local time, state labels, deadlines in working days, bound numbers,
permissions, the nav."""
from __future__ import annotations

from datetime import date, datetime

from flask import current_app
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..publish.naming import full_title
from ..timeutil import cn_date_text, cn_datetime_text, utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS, CYCLE_STATE_LABELS
from . import bound_text

# CSS class per contribution state; colours live in static/css/app.css.
STATE_CLASSES = {
    "draft": "state-draft",
    "unit_review": "state-unit-review",
    "submitted": "state-submitted",
    "returned": "state-returned",
    "approved": "state-approved",
}


def cn_date(value: date | datetime | None, time: bool | None = None, seconds: bool = False) -> str:
    """The one date filter of the pages: a date as '2025年1月6日', a datetime in Beijing time (the
    TIMEZONE setting) as '2025年1月6日 09:00'; ``time=False`` shows a datetime by its day only,
    ``seconds=True`` adds the seconds (the audit log)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        # Stored ISO text (a JSON field or a form echo): shown like the value it names.
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and time is not False:
        return cn_datetime_text(value, seconds=seconds)
    return cn_date_text(value)


def localtime(value: datetime | None, fmt: str | None = None) -> str:
    """Former name of ``cn_date`` for datetimes, kept so that a template still using it shows the same
    format (tests/web/test_words_and_times.py keeps templates on ``cn_date``); ``fmt`` is ignored."""
    return cn_date(value)


def due_status(value, done: bool = False):
    """A deadline in working days: ``due_status(date | assignment | contribution)`` → DueStatus
    (``.label`` 还剩3个工作日 / 今天截止 / 已逾期2个工作日, ``.date_label``, ``.css_class``)."""
    from ..workdays import due_status as _due_status

    return _due_status(value, done=done)


def due_label(value, done: bool = False) -> str:
    """'2025年1月10日（星期五） 还剩3个工作日' for a date, an assignment or a contribution."""
    return str(due_status(value, done=done))


# Material that has reached the office: its deadline is met, only the date is shown.
DUE_MET_STATES = ("submitted", "approved")


def contribution_due(contribution):
    """The DueStatus of a contribution as its unit sees it (no countdown once it reached the office)."""
    return due_status(contribution, done=contribution.state in DUE_MET_STATES)


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


def nav_counts() -> dict[str, int]:
    """Small to-do counts for the menu, one COUNT query each: 我的任务 and 待单位审核 of the user's unit."""
    from ..models import Contribution, ReportCycle

    if not current_user.is_authenticated or current_user.unit_id is None:
        return {}
    counts = {}
    base = select(func.count(Contribution.id)).join(ReportCycle, Contribution.cycle_id == ReportCycle.id) \
        .where(Contribution.unit_id == current_user.unit_id, ReportCycle.state == "collecting")
    if policy.can(current_user, "tasks.write"):
        counts["tasks"] = db.session.scalar(base.where(Contribution.state.in_(("draft", "returned")))) or 0
    if policy.can(current_user, "unit_queue.view"):
        counts["unit_queue"] = db.session.scalar(base.where(Contribution.state == "unit_review")) or 0
    return counts


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
    app.add_template_filter(due_label, "due_label")
    app.add_template_filter(waiting_text, "waiting")
    app.add_template_filter(state_badge, "state_badge")
    app.add_template_filter(nl2p, "nl2p")
    app.add_template_filter(filesize, "filesize")
    app.add_template_global(has_endpoint, "has_endpoint")
    app.add_template_global(full_title, "full_title")
    app.add_template_global(due_status, "due_status")
    app.add_template_global(contribution_due, "contribution_due")
    app.add_template_global(bound_text.bound_paragraphs, "bound_paragraphs")
    app.add_template_global(bound_text.bound_text, "bound_text")
    app.add_template_global(bound_text.revision_text, "revision_text")
    app.add_template_global(bound_text.preview, "text_preview")
    app.add_template_global(CONTRIBUTION_STATE_LABELS, "STATE_LABELS")
    app.add_template_global(CYCLE_STATE_LABELS, "CYCLE_STATE_LABELS")

    @app.context_processor
    def _globals():
        return {
            # Templates ask the same policy as routes and services: can('compile.view'), can('contribution.edit', c).
            "can": lambda action, obj=None: policy.can(current_user, action, obj),
            "unread_count": unread_count,
            "nav_counts": nav_counts,
        }


