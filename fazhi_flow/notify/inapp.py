"""The in-app inbox channel: a Notification row in the same transaction, if the user wants it."""
from __future__ import annotations

from ..extensions import db
from ..models.notification import Notification
from ..timeutil import utcnow
from .messages import site_path
from .preferences import wants


def notify_user(user, kind: str, title: str, body: str | None = None, link: str | None = None):
    """Queue an in-app notification for ``user`` in the current transaction (whatever their choice).

    ``link`` is stored site-relative: the inbox follows only local paths, and an absolute link of this
    site would otherwise lead back to the inbox."""
    row = Notification(user_id=user.id, kind=kind, title=title, body=body, link=site_path(link),
                       created_at=utcnow())
    db.session.add(row)
    return row


def notify(user, kind: str, title: str, body: str | None = None, link: str | None = None):
    """Add an in-app notification for ``user`` unless they switched the in-app channel off."""
    if not user.active or not wants(user, "inapp"):
        return None
    return notify_user(user, kind, title, body=body, link=link)
