"""Outbox messages (and, for 征集, in-app notices) caused by workflow transitions.

Connected to ``workflow.machine.transition_fired``, so the rows join the transaction of the
transition. In-app notices for these events (contribution events and 征集) are made by
``services.inbox_events``; here only the other channels (e-mail, group robots) are queued, so nobody
is told twice on one channel.
"""
from __future__ import annotations

from collections import defaultdict

from ..workflow.machine import transition_fired
from . import messages as M
from .outbox import liaisons, queue_webhook, reviewers_of, send_to_users, unit_heads, webhooks_for


def on_transition(sender, event, from_state, to_state, actor, comment=None, context=None, **_):
    from ..models import Contribution, ReportCycle

    if isinstance(sender, Contribution):
        _contribution_event(sender, event, to_state, actor, comment)
    elif isinstance(sender, ReportCycle) and event == "open":
        _cycle_opened(sender)


def _contribution_event(contribution, event, to_state, actor, comment):
    if to_state == "unit_review":
        people = unit_heads(contribution.unit_id)
    elif to_state == "submitted" and event in ("submit", "unit_approve"):
        people = reviewers_of(contribution)
    elif event in ("return", "unit_return", "reopen", "approve"):
        people = liaisons(contribution.unit_id)
    else:
        return
    people = [u for u in people if u.id != actor.id]
    msg = M.transition_message(event, contribution, actor, comment, to_state)
    send_to_users(people, msg, f"transition:{event}", inapp_kind=None, contribution=contribution)


def _cycle_opened(cycle):
    from ..services.cycles import cycle_assignments

    by_unit = defaultdict(list)
    for assignment in cycle_assignments(cycle):
        by_unit[assignment.unit_id].append(assignment)
    for unit_id, assignments in by_unit.items():
        for user in liaisons(unit_id):
            # The in-app notice of 征集 comes from services.inbox_events; here only e-mail.
            send_to_users([user], M.cycle_open_message(cycle, user, assignments), "cycle:open")
        unit_msg = M.cycle_open_message(cycle, assignments[0].unit, assignments)
        for target in webhooks_for(unit_id=unit_id):
            queue_webhook(target, unit_msg, "cycle:open")
    for target in webhooks_for(cycle_id=cycle.id):
        queue_webhook(target, M.cycle_open_group_message(cycle), "cycle:open")


_connected = False


def connect() -> None:
    """Connect the receiver once per process (idempotent)."""
    global _connected
    if not _connected:
        transition_fired.connect(on_transition, weak=False)
        _connected = True
