"""In-app notifications: add to the session, committed with their cause."""
from ..extensions import db
from ..models.notification import Notification
from ..timeutil import utcnow


def notify_user(user, kind: str, title: str, body: str | None = None, link: str | None = None):
    """Queue an in-app notification for ``user`` in the current transaction."""
    row = Notification(user_id=user.id, kind=kind, title=title, body=body, link=link, created_at=utcnow())
    db.session.add(row)
    return row
