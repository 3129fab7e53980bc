"""One shared ``transitions.Machine`` per workflow and ``fire()``, the only writer of state columns.

A fired event is checked (state, cycle state, actor, comment, content), applied by the machine, logged
in ``TransitionLog`` and flushed. The row's version column makes the UPDATE conditional, so of two users
racing on one object exactly one wins and the other gets a ``Conflict``. Nothing is committed here.
"""
from __future__ import annotations

import logging

from blinker import Namespace
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError
from transitions import Machine

from ..errors import Conflict, DomainError, PermissionDenied
from ..extensions import db
from ..policy import (
    acts_for_unit_head,
    can,
    contribution_actor_allowed,
    countersign_refusal,
    countersign_required,
    cycle_actor_allowed,
    cycle_principal_for,
    is_contribution_reviewer,
    own_submission_refusal,
    pending_approvers,
    principal_for,
    stand_in_refusal,
)
from ..timeutil import utcnow
from . import states as S

logger = logging.getLogger(__name__)
# Who may fire an event is decided in policy; the names stay importable from here for older callers.
__all__ = ["contribution_actor_allowed", "cycle_actor_allowed", "fire", "is_contribution_reviewer",
           "transition_fired"]

_signals = Namespace()
# Sent inside the transaction after a transition is applied and logged; receivers (notifications,
# outbox) must only add rows to the session, never commit or talk to the network.
transition_fired = _signals.signal("transition-fired")

_CONDITIONS = {
    "unit_head_review": lambda ev: bool(ev.model.cycle.unit_head_review),
    "no_unit_head_review": lambda ev: not ev.model.cycle.unit_head_review,
    # Read after this approval is recorded (``_countersign``), with the reviewers as they are now.
    "countersign_pending": lambda ev: bool(pending_approvers(ev.model)),
    "countersign_complete": lambda ev: not pending_approvers(ev.model),
}


def _build(states, table) -> Machine:
    transitions = []
    for row in table:
        spec = {k: v for k, v in row.items() if k not in ("if", "label")}
        if "if" in row:
            spec["conditions"] = [_CONDITIONS[row["if"]]]
        transitions.append(spec)
    return Machine(
        model=None,
        states=states,
        transitions=transitions,
        initial=None,
        auto_transitions=False,
        model_attribute="state",
        send_event=True,
    )


contribution_machine = _build(S.CONTRIBUTION_STATES, S.CONTRIBUTION_TRANSITIONS)
cycle_machine = _build(S.CYCLE_STATES, S.CYCLE_TRANSITIONS)


def _sources(table, event):
    return {src for row in table if row["trigger"] == event for src in row["source"]}


def _refuse_state(label, event_label):
    raise DomainError(f"当前状态为“{label}”，不能执行“{event_label}”。")


def _check_contribution(contribution, event, actor, comment):
    labels = S.CONTRIBUTION_EVENT_LABELS
    if event not in labels:
        raise DomainError(f"未知的操作“{event}”。")
    if contribution.state not in _sources(S.CONTRIBUTION_TRANSITIONS, event):
        _refuse_state(S.CONTRIBUTION_STATE_LABELS[contribution.state], labels[event])
    principal = principal_for(actor, contribution, event)
    if principal is None:
        if S.CONTRIBUTION_EVENT_ACTORS[event] == "section_reviewer" and actor.unit_id == contribution.unit_id \
                and can(actor, "review.queue"):
            raise PermissionDenied("不能审核本单位报送的材料。")
        refusal = stand_in_refusal(actor, contribution) if S.CONTRIBUTION_EVENT_ACTORS[event] == "unit_head" else None
        raise PermissionDenied(refusal or f"您没有权限对该材料执行“{labels[event]}”。")
    own = own_submission_refusal(actor, contribution, event)
    if own:
        raise PermissionDenied(own)
    cycle = contribution.cycle
    if cycle.state != "collecting":
        if event == "reopen" and cycle.state in ("published", "correcting"):
            raise DomainError("报告已发布，不能重新打开材料。")
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，材料只能在征集中修改。")
    if event in S.CONTRIBUTION_COMMENT_REQUIRED and not (comment or "").strip():
        raise DomainError(f"“{labels[event]}”必须填写意见或理由。")
    if event == "submit" and not (contribution.body or "").strip():
        raise DomainError("材料内容为空，不能提交审核。请先填写正文。")
    return principal


def _on_behalf(contribution, event, actor, comment, context):
    """An admin deciding for a unit without a unit head: said in the logged comment (shown wherever
    the history is, and audited with it) and marked in the context."""
    if S.CONTRIBUTION_EVENT_ACTORS[event] != "unit_head" or not acts_for_unit_head(actor, contribution):
        return comment, context
    note = (f"管理员代单位负责人{S.CONTRIBUTION_EVENT_LABELS[event]}"
            f"（{contribution.unit.name}没有启用的单位负责人）")
    comment = f"{note}：{comment.strip()}" if (comment or "").strip() else note
    return comment, {**context, "on_behalf": "单位负责人"}


def _countersign(contribution, actor, comment):
    """Record an approval of a section approved by all its reviewers (会签) as the principal's (whose
    approval the click counts as: ``countersign_principal``), once per revision, before the machine
    decides whether it was the last one required. Returns that principal (None outside 会签)."""
    from ..models import ContributionApproval
    from ..policy import countersign_approvals, countersign_principal, current_revision_number

    if not countersign_required(contribution):
        return None
    refusal = countersign_refusal(actor, contribution)
    if refusal:
        raise DomainError(refusal)
    principal = countersign_principal(actor, contribution)
    if any(a.reviewer_id == principal.id for a in countersign_approvals(contribution)):
        return principal  # given already, and nobody else is pending any more: this click settles it
    db.session.add(ContributionApproval(
        contribution_id=contribution.id, revision_number=current_revision_number(contribution),
        reviewer_id=principal.id, actor_id=actor.id, comment=(comment or "").strip() or None,
        created_at=utcnow()))
    try:
        db.session.flush()
    except IntegrityError:
        # The same approval given twice at once (a double click in two tabs): the other one stands.
        raise Conflict("这份材料的会签刚被处理过，请刷新页面后查看最新状态。") from None
    return principal


def _check_cycle(cycle, event, actor, comment):
    labels = S.CYCLE_EVENT_LABELS
    if event not in labels:
        raise DomainError(f"未知的操作“{event}”。")
    if cycle.state not in _sources(S.CYCLE_TRANSITIONS, event):
        _refuse_state(cycle.state_label, labels[event])
    principal = cycle_principal_for(actor, cycle, event)
    if principal is None:
        raise PermissionDenied(f"您没有权限对年度报告执行“{labels[event]}”。")
    if event in S.CYCLE_COMMENT_REQUIRED and not (comment or "").strip():
        raise DomainError(f"“{labels[event]}”必须填写意见。")
    return principal


def fire(obj, event: str, actor, comment: str | None = None, **context):
    """Fire ``event`` on a Contribution or ReportCycle as ``actor``; log it; flush.

    :raise DomainError: the event is not allowed now, for this actor, or without a comment.
    :raise Conflict: somebody else changed the object first.
    """
    from ..models import Contribution, ReportCycle, TransitionLog

    if isinstance(obj, Contribution):
        principal = _check_contribution(obj, event, actor, comment)
        comment, context = _on_behalf(obj, event, actor, comment, context)
        if event == "approve":
            # A reviewer standing in for another required reviewer gives their own approval first,
            # then the other's: the log names whose it was.
            principal = _countersign(obj, actor, comment) or principal
        machine, subject = contribution_machine, {"contribution_id": obj.id}
    elif isinstance(obj, ReportCycle):
        principal = _check_cycle(obj, event, actor, comment)
        machine, subject = cycle_machine, {"cycle_id": obj.id}
    else:  # pragma: no cover - programming error
        raise TypeError(f"no workflow for {type(obj).__name__}")

    before = obj.state
    if not machine.events[event].trigger(obj):
        raise DomainError("该操作当前不可执行。")
    if obj.state == before:
        # A transition back to the same state (会签同意) still updates the row and its version, so
        # that of the last two approvers racing one wins and the other gets a Conflict.
        flag_modified(obj, "state")
    try:
        # The conditional UPDATE (… WHERE id = ? AND version = ?): a lost race matches no row.
        db.session.flush()
    except StaleDataError:
        raise Conflict("该内容刚被他人处理过，请刷新页面后查看最新状态。") from None
    log = TransitionLog(
        event=event, from_state=before, to_state=obj.state, actor_id=actor.id,
        # 委托: a substitute's action is logged as theirs on behalf of the delegator.
        on_behalf_of_id=principal.id if principal.id != actor.id else None,
        comment=(comment or "").strip() or None, context=context or None, created_at=utcnow(),
        **subject,
    )
    db.session.add(log)
    transition_fired.send(obj, event=event, from_state=before, to_state=obj.state, actor=actor,
                          comment=log.comment, context=context)
    db.session.flush()
    logger.info("%s %s: %s -> %s by %s", type(obj).__name__, obj.id, before, obj.state, actor.username)
    return log
