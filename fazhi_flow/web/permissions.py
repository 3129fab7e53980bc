"""Older names for questions now answered by ``fazhi_flow.policy`` (the one place that decides).

Each is a thin alias: ``can_edit_contribution(user, c)`` is ``policy.can(user, "contribution.edit", c)``.
New code asks ``policy.can`` directly.
"""
from __future__ import annotations

from .. import policy


def can_view_contribution(user, contribution) -> bool:
    return policy.can(user, "contribution.view", contribution)


def can_fire(user, contribution, event: str) -> bool:
    """True when the event is possible now (state, cycle) and ``user`` may fire it."""
    return policy.can(user, f"contribution.{event}", contribution)


def can_edit_contribution(user, contribution) -> bool:
    return policy.can(user, "contribution.edit", contribution)


def can_review(user, contribution) -> bool:
    return policy.can(user, "contribution.review", contribution)


def can_download_attachment(user, attachment) -> bool:
    return policy.can(user, "attachment.download", attachment)


def can_manage_attachments(user, contribution) -> bool:
    return policy.can(user, "contribution.attach", contribution)


# Short names once accepted by ``can``; an event name (``submit``, ``approve`` …) is a contribution event.
SHORT_ACTIONS = {
    "view": "contribution.view",
    "edit": "contribution.edit",
    "review": "contribution.review",
    "attach": "contribution.attach",
    "download": "attachment.download",
}


def can(user, action: str, obj=None) -> bool:
    """``can(user, 'edit', contribution)`` as before; a dotted action goes to policy unchanged."""
    if "." not in action:
        action = SHORT_ACTIONS.get(action, f"contribution.{action}")
    return policy.can(user, action, obj)
