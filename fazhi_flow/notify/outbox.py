"""Queue messages in the outbox, in the caller's transaction (nothing is sent for a rolled-back change)."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import User
from ..models.reminder import OutboxMessage, WebhookTarget
from ..timeutil import utcnow
from . import inapp
from .messages import Message
from .preferences import preferences_of, wants


def queue_email(user, message: Message, cause: str, reminder=None, contribution=None,
                expires_at=None, now=None, choices=None) -> OutboxMessage | None:
    """Queue an e-mail to ``user`` unless they have no address or switched e-mail off (``choices``:
    the channel choices already read, see ``preferences.preferences_of``)."""
    if not user.active or not wants(user, "email", choices):
        return None
    row = OutboxMessage(
        channel="email", user_id=user.id, address=user.email.strip(), subject=message.subject,
        body=message.body, cause=cause, reminder=reminder,
        contribution_id=getattr(contribution, "id", None), status="pending", next_attempt_at=now or utcnow(),
        expires_at=expires_at, created_at=now or utcnow(),
    )
    db.session.add(row)
    return row


def queue_webhook(target: WebhookTarget, message: Message, cause: str, reminder=None, contribution=None,
                  mobiles: list[str] | None = None, expires_at=None, now=None) -> OutboxMessage | None:
    if not target.active:
        return None
    row = OutboxMessage(
        channel="webhook", webhook_id=target.id, address=target.name, subject=message.subject,
        body=message.short, payload={"mobiles": sorted({m for m in mobiles if m})} if mobiles else None,
        cause=cause, reminder=reminder, contribution_id=getattr(contribution, "id", None),
        status="pending", next_attempt_at=now or utcnow(), expires_at=expires_at,
        created_at=now or utcnow(),
    )
    db.session.add(row)
    return row


def send_to_users(users, message: Message, cause: str, inapp_kind: str | None = None, reminder=None,
                  contribution=None, expires_at=None, now=None) -> int:
    """Tell each user once: in-app (when ``inapp_kind`` is given) and by e-mail, as each prefers.

    ``now`` (naive UTC) is when the message becomes due; a job passes its own time. Returns the
    number of users told by at least one channel. Everyone's channel choices are read in one
    statement, so telling many people costs no more statements than telling one.
    """
    people, seen = [], set()
    for user in users:
        if user.id not in seen and user.active:
            seen.add(user.id)
            people.append(user)
    choices = preferences_of(people)
    told = 0
    for user in people:
        note = inapp.notify_user(user, inapp_kind, message.subject, body=message.short, link=message.path) \
            if inapp_kind and wants(user, "inapp", choices) else None
        mail = queue_email(user, message, cause, reminder=reminder, contribution=contribution,
                           expires_at=expires_at, now=now, choices=choices)
        told += bool(note or mail)
    return told


def webhooks_for(unit_id: int | None = None, cycle_id: int | None = None) -> list[WebhookTarget]:
    conds = []
    if unit_id is not None:
        conds.append(WebhookTarget.unit_id == unit_id)
    if cycle_id is not None:
        conds.append(WebhookTarget.cycle_id == cycle_id)
    if not conds:
        return []
    return list(db.session.scalars(
        select(WebhookTarget).where(WebhookTarget.active.is_(True), db.or_(*conds)).order_by(WebhookTarget.id)
    ))


# ------------------------------------------------------------------ recipients
#
# Every selection of people is limited to one region (the region of the material or cycle the
# message is about): an office's admins, reviewers and leaders act within their region only, so a
# district's digest, escalations or announcements never reach another district's people.


def _with_role(role: str, region_id: int | None = None, unit_id: int | None = None) -> list[User]:
    """The active users with ``role`` in a region or in a unit (a unit lies in one region, and its
    people with it: models.org refuses a user of another region's unit). One of the two is required:
    there is no "everyone with the role" any more."""
    from ..models import UserRole

    if region_id is None and unit_id is None:
        raise ValueError("a selection of people needs a region or a unit")
    q = select(User).join(UserRole).where(UserRole.role == role, User.active.is_(True))
    if region_id is not None:
        q = q.where(User.region_id == region_id)
    if unit_id is not None:
        q = q.where(User.unit_id == unit_id)
    return list(db.session.scalars(q.order_by(User.id)).unique())


def with_role_in_units(role: str, unit_ids, region_id: int) -> list[User]:
    """The active users of ``region_id`` with ``role`` in any of ``unit_ids``, in one statement (by
    unit, then id). Units belong to one region; the region is checked too, as a second line."""
    from ..models import UserRole

    unit_ids = set(unit_ids)
    if not unit_ids:
        return []
    return list(db.session.scalars(
        select(User).join(UserRole).where(UserRole.role == role, User.active.is_(True), User.unit_id.in_(unit_ids),
                                          User.region_id == region_id)
        .order_by(User.unit_id, User.id)).unique())


def liaisons(unit_id: int) -> list[User]:
    """The unit's active liaisons (a unit and its people are of one region)."""
    return _with_role("liaison", unit_id=unit_id)


def unit_heads(unit_id: int) -> list[User]:
    return _with_role("unit_head", unit_id=unit_id)


def admins(region_id: int) -> list[User]:
    """The admins of ``region_id`` (never another region's)."""
    return _with_role("admin", region_id)


def leaders(region_id: int) -> list[User]:
    """The signing leaders (签发领导) of ``region_id``."""
    return _with_role("leader", region_id)


def region_id_of(obj) -> int | None:
    """The region a contribution, cycle or unit belongs to (policy decides what that is)."""
    from ..policy import region_of

    return region_of(obj)


def reviewers_of(contribution) -> list[User]:
    """Reviewers who may review ``contribution``: named for its section, else every reviewer of the
    cycle's region; never one of its own unit, never one of another region (a reviewer named across
    regions by mistake is not told about material they may not open)."""
    from ..workflow.machine import is_contribution_reviewer

    region_id = region_id_of(contribution)
    named = contribution.section.effective_reviewers()
    pool = named if named else _with_role("reviewer", region_id)
    return [u for u in pool if u.active and u.region_id == region_id and is_contribution_reviewer(u, contribution)]
