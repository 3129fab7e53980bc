"""The in-app inbox channel: a Notification row in the same transaction, if the user wants it."""
from __future__ import annotations

from ..services.notifications import notify_user
from .preferences import wants


def notify(user, kind: str, title: str, body: str | None = None, link: str | None = None):
    """Add an in-app notification for ``user`` unless they switched the in-app channel off."""
    if not user.active or not wants(user, "inapp"):
        return None
    return notify_user(user, kind, title, body=body, link=link)
