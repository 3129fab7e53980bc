"""Who may see or do what, in one place, used by routes and templates alike (``can(...)``)."""
from __future__ import annotations

from ..services.contributions import can_edit
from ..workflow.machine import contribution_actor_allowed, is_contribution_reviewer


def _logged_in(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def can_view_contribution(user, contribution) -> bool:
    """The unit's own people, the section's reviewers, admins and leaders."""
    if not _logged_in(user):
        return False
    if user.has_role("admin", "leader"):
        return True
    if user.unit_id is not None and user.unit_id == contribution.unit_id:
        return True
    return is_contribution_reviewer(user, contribution)


def can_fire(user, contribution, event: str) -> bool:
    """True when the event is possible now (state, cycle) and ``user`` may fire it."""
    from ..workflow.machine import _sources
    from ..workflow.states import CONTRIBUTION_TRANSITIONS

    if not _logged_in(user) or contribution.cycle.state != "collecting":
        return False
    if contribution.state not in _sources(CONTRIBUTION_TRANSITIONS, event):
        return False
    return contribution_actor_allowed(user, contribution, event)


def can_edit_contribution(user, contribution) -> bool:
    return _logged_in(user) and can_edit(user, contribution)


def can_review(user, contribution) -> bool:
    return _logged_in(user) and is_contribution_reviewer(user, contribution)


def can_download_attachment(user, attachment) -> bool:
    return can_view_contribution(user, attachment.contribution)


def can_manage_attachments(user, contribution) -> bool:
    return can_edit_contribution(user, contribution)


ACTIONS = {
    "view": can_view_contribution,
    "edit": can_edit_contribution,
    "review": can_review,
    "attach": can_manage_attachments,
    "download": can_download_attachment,
}


def can(user, action: str, obj=None) -> bool:
    """``can(user, 'edit', contribution)``; an event name (``submit``, ``approve`` …) asks can_fire."""
    if action in ACTIONS:
        return ACTIONS[action](user, obj)
    return can_fire(user, obj, action)
