"""Outbox messages and in-app notices caused by workflow transitions.

Connected to ``workflow.machine.transition_fired``, so the rows join the transaction of the
transition. In-app notices for contribution events and 征集 are made by ``services.inbox_events``; for
those only the other channels (e-mail, group robots) are queued here, so nobody is told twice on one
channel; the admins standing in for a missing unit head and 重新征集, which the inbox does not cover,
get both here. The steps around the signature (提请签发, 退回, 签发, 更正) are announced here on both
channels, each person's choice respected; 发布 is announced by a publish hook, once the publication
exists (its page is the link).
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ..extensions import db
from ..services.delegations import with_substitutes
from ..workflow.machine import transition_fired
from . import messages as M
from .outbox import (
    admins,
    leaders,
    liaisons,
    queue_webhook,
    region_id_of,
    reviewers_of,
    send_to_users,
    unit_heads,
    webhooks_for,
    with_role_in_units,
)


def on_transition(sender, event, from_state, to_state, actor, comment=None, context=None, **_):
    from ..models import Contribution, ReportCycle

    if isinstance(sender, Contribution):
        _contribution_event(sender, event, to_state, actor, comment)
    elif isinstance(sender, ReportCycle) and event == "open":
        _cycle_opened(sender)
    elif isinstance(sender, ReportCycle) and event == "reopen_collection":
        _collection_reopened(sender, actor, comment, context or {})
    elif isinstance(sender, ReportCycle):
        _signature_event(sender, event, from_state, actor, comment)


def _contribution_event(contribution, event, to_state, actor, comment):
    if to_state == "unit_review":
        people = unit_heads(contribution.unit_id)
        if not people:
            _to_stand_ins(contribution, actor)
            return
    elif to_state == "submitted" and event in ("submit", "unit_approve"):
        people = reviewers_of(contribution)
    elif event in ("return", "unit_return", "reopen", "approve") and to_state != "submitted":
        # (A 会签同意 leaving the material waiting for other reviewers is no news for the unit.)
        people = liaisons(contribution.unit_id)
    else:
        return
    # 委托: the delegators' active substitutes are told too (each once; not the one who acted).
    people = [u for u in with_substitutes(people) if u.id != actor.id]
    msg = M.transition_message(event, contribution, actor, comment, to_state)
    send_to_users(people, msg, f"transition:{event}", inapp_kind=None, contribution=contribution)


def stand_ins(unit_id: int, admins_: list) -> list:
    """The admins who may decide for a unit without a unit head: not those writing its material as
    its liaisons (policy refuses them)."""
    from ..policy import is_unit_liaison

    return [u for u in admins_ if not is_unit_liaison(u, unit_id)]


def _to_stand_ins(contribution, actor) -> None:
    """Material submitted into 待单位审核 of a unit with no active unit head would wait for nobody: the
    admins, who may decide in the unit head's place, are told instead, in-app and by e-mail as each
    chose (the inbox's own notice goes to unit heads only, so here both channels)."""
    people = _others(stand_ins(contribution.unit_id, admins(region_id_of(contribution))), actor)
    send_to_users(people, M.unit_review_stand_in_message(contribution, actor), "transition:submit",
                  inapp_kind="to_unit_review", contribution=contribution)


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


def _collection_reopened(cycle, actor, comment, context) -> None:
    """重新征集: the units with material not yet approved are told which sections to finish and their
    due dates (moved ones said so), in-app and by e-mail as each chose, and on their group robots.
    Units whose material is all approved have nothing to do and are not told."""
    from sqlalchemy.orm import selectinload

    from ..models import Assignment, Contribution, Section

    db.session.scalars(select(Section).where(Section.cycle_id == cycle.id)).all()  # the outline, once
    open_work = list(db.session.scalars(
        select(Assignment).join(Section).outerjoin(Contribution, Contribution.assignment_id == Assignment.id)
        .where(Section.cycle_id == cycle.id, db.or_(Contribution.id.is_(None), Contribution.state != "approved"))
        .options(selectinload(Assignment.unit), selectinload(Assignment.contribution))
        .order_by(Assignment.id)))
    by_unit = defaultdict(list)
    for assignment in open_work:
        by_unit[assignment.unit_id].append(assignment)
    people = defaultdict(list)
    for user in with_role_in_units("liaison", by_unit, cycle.region_id):
        people[user.unit_id].append(user)
    moved_to = context.get("moved_to")
    for unit_id, assignments in by_unit.items():
        msg = M.collection_reopened_message(cycle, assignments, comment, moved_to)
        send_to_users(_others(people[unit_id], actor), msg, "cycle:reopen_collection", inapp_kind="cycle")
        for target in webhooks_for(unit_id=unit_id):
            queue_webhook(target, msg, "cycle:reopen_collection")
    for target in webhooks_for(cycle_id=cycle.id):
        queue_webhook(target, M.collection_reopened_group_message(cycle, moved_to), "cycle:reopen_collection")


def _signed_version_number(cycle) -> int | None:
    from ..services.compile import latest_version

    version = latest_version(cycle)
    return version.number if version is not None else None


def _signature_event(cycle, event, from_state, actor, comment):
    """提请签发 and 提请签发更正 to the leaders; 退回 and 签发 to the admins (a signed correction, which is
    published at once, to the other leaders as well), all of the cycle's own region. Nobody is told of
    their own step.

    Receivers of one signal run in no set order, so these messages name nothing that another listener
    makes for the same step (the draft version of a request, the publication of a correction)."""
    from ..services.compile import correction_note

    correcting = from_state == "correcting" or event == "request_correction"
    region_id = cycle.region_id
    if event in ("request_signoff", "request_correction"):
        people, kind = with_substitutes(leaders(region_id)), "signoff"
        msg = M.signoff_requested_message(cycle, actor, comment, correcting)
    elif event == "return":
        people, kind = admins(region_id), "returned"
        msg = M.signoff_returned_message(cycle, actor, comment, correcting)
    elif event == "sign" and correcting:
        people, kind = admins(region_id) + leaders(region_id), "cycle"
        msg = M.correction_published_message(cycle, actor, correction_note(cycle), comment)
    elif event == "sign":
        people, kind = admins(region_id), "cycle"
        msg = M.signed_message(cycle, actor, comment, _signed_version_number(cycle))
    else:
        return
    send_to_users(_others(people, actor), msg, f"cycle:{event}", inapp_kind=kind)


def announce_publication(cycle, actor) -> None:
    """PUBLISH_HOOKS entry, run after the publication is frozen: 发布 to everyone who contributed."""
    from ..services.compile import latest_publication

    publication = latest_publication(cycle)
    if publication is None:  # pragma: no cover - freeze_publication runs first
        return
    msg = M.published_message(cycle, publication)
    send_to_users(_others(contributors(cycle), actor), msg, "cycle:publish", inapp_kind="cycle")


# Steps by which a reviewer or a unit head decided on material: who did one of them contributed.
REVIEW_EVENTS = ("approve", "return", "unit_approve", "unit_return")


def contributors(cycle) -> list:
    """Who contributed to ``cycle``: the liaisons of units with material in it (text written or
    anything submitted) and everyone who reviewed material of it (reviewers and unit heads); people
    of the cycle's region only."""
    from ..models import Contribution, TransitionLog, User

    units = {unit_id for unit_id, state, body in db.session.execute(
        select(Contribution.unit_id, Contribution.state, Contribution.body)
        .where(Contribution.cycle_id == cycle.id)) if state != "draft" or (body or "").strip()}
    # The liaisons of all those units in one statement, however many units contributed.
    people = with_role_in_units("liaison", units, cycle.region_id)
    people += db.session.scalars(
        select(User).where(User.active.is_(True), User.region_id == cycle.region_id, User.id.in_(
            select(TransitionLog.actor_id).join(Contribution, TransitionLog.contribution_id == Contribution.id)
            .where(Contribution.cycle_id == cycle.id, TransitionLog.event.in_(REVIEW_EVENTS))))
        .order_by(User.id))
    return people


def _others(people, actor) -> list:
    actor_id = getattr(actor, "id", None)
    return [u for u in people if u.id != actor_id]


_connected = False


def connect() -> None:
    """Connect the receiver once per process (idempotent)."""
    global _connected
    if not _connected:
        # services.compile adds its publish hook (which freezes the publication) at import: importing
        # it first puts ours after it, so the announcement of 发布 can link the published report.
        from ..services import compile as _compile  # noqa: F401
        from ..services import cycles as cycle_ops

        transition_fired.connect(on_transition, weak=False)
        if announce_publication not in cycle_ops.PUBLISH_HOOKS:
            cycle_ops.PUBLISH_HOOKS.append(announce_publication)
        _connected = True
