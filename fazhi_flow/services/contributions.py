"""Operations on contributions: save a draft and fire the workflow's events."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm.exc import StaleDataError

from .. import policy
from ..database import lock_row
from ..errors import Conflict, DomainError
from ..extensions import db
from ..models import Contribution, Revision, User
from ..timeutil import cn_datetime_text, utcnow
from ..workflow.machine import fire
from .audit import record

# Extra checks run before a submission (e.g. figures that break an error rule). Each is called as
# check(contribution, actor) and raises DomainError to refuse.
SUBMIT_CHECKS: list = []
# Extra snapshot data stored with each revision: each is called as fn(contribution) -> dict.
REVISION_DATA: list = []

MAX_BODY_CHARS = 50_000
EMPTY_BODY = "材料内容为空，不能提交审核。请先填写正文并保存草稿。"
# Autosaves by the same person this close together are one editing session: one audit row.
AUTOSAVE_SESSION = timedelta(minutes=30)


class DraftClosed(Conflict):
    """An autosave reached a draft that can no longer be edited (submitted, cycle closed since)."""


def can_edit(user, contribution) -> bool:
    return policy.can(user, "contribution.edit", contribution)


def save_draft(contribution: Contribution, actor, body: str, expected_version: int | None = None):
    """Save the draft text (保存草稿).

    :raise Conflict: the draft changed since ``expected_version`` was loaded; nothing is written.
    """
    body = _checked_draft(contribution, actor, body, expected_version, refuse=DomainError)
    if body == (contribution.body or ""):
        return contribution
    _write_draft(contribution, actor, body)
    record(actor, "contribution.save", f"contribution:{contribution.id}", chars=len(body),
           on_behalf_of=policy.acting_as(actor, "contribution.write", contribution))
    _flush_or_conflict()
    return contribution


def autosave_draft(contribution: Contribution, actor, body: str, expected_version: int | None) -> bool:
    """Save the draft while the liaison types (自动保存): the checks of ``save_draft``, no revision, and
    at most one audit row per editing session, so that saving every few seconds does not fill the
    audit trail. A session goes on while the same person's writes follow each other within
    ``AUTOSAVE_SESSION`` (read from the draft's own updated_by/updated_at: no extra query).

    Returns whether anything was written. A state in which the draft cannot be edited (submitted,
    cycle closed) raises DraftClosed, a Conflict: the page was right when loaded, something changed since.
    """
    body = _checked_draft(contribution, actor, body, expected_version, refuse=DraftClosed)
    if body == (contribution.body or ""):
        return False
    now = utcnow()
    continuing = (contribution.updated_by_id == actor.id and contribution.updated_at is not None
                  and now - contribution.updated_at < AUTOSAVE_SESSION)
    _write_draft(contribution, actor, body, now)
    if not continuing:
        # The ordinary save's action, so that the trail's filter 保存材料 finds these sessions too.
        record(actor, "contribution.save", f"contribution:{contribution.id}", chars=len(body), via="自动保存",
               on_behalf_of=policy.acting_as(actor, "contribution.write", contribution))
    _flush_or_conflict()
    return True


def _checked_draft(contribution: Contribution, actor, body: str, expected_version: int | None, refuse) -> str:
    """The normalised text, after the checks every draft write makes; ``refuse`` is the error class of a
    state that does not allow editing."""
    policy.require(actor, "contribution.write", contribution, "只有本单位联络员可以编辑该材料。")
    # A colleague's submit or save in flight: check against its result (the row's columns; the
    # cycle's state is read as loaded by this request).
    lock_row(contribution, columns_only=True)
    if contribution.cycle.state != "collecting":
        raise refuse(f"年度报告当前为“{contribution.cycle.state_label}”，材料只能在征集中修改。")
    if contribution.state not in ("draft", "returned"):
        raise refuse(f"材料当前为“{contribution.state_label}”，不能编辑。如需修改，请先撤回。")
    body = (body or "").replace("\r\n", "\n").strip()
    if len(body) > MAX_BODY_CHARS:
        raise DomainError(f"正文过长（{len(body)}字），最多{MAX_BODY_CHARS}字。")
    if expected_version is not None and expected_version != contribution.version:
        # By id: the relationship still holds whoever was loaded before the row was re-read.
        editor = db.session.get(User, contribution.updated_by_id) if contribution.updated_by_id else None
        who = editor.name if editor else "他人"
        when = contribution.updated_at
        raise Conflict(f"该草稿已被{who}于{_fmt(when)}修改，您的内容尚未保存。请核对后再保存。")
    return body


def _write_draft(contribution: Contribution, actor, body: str, now=None) -> None:
    contribution.body = body
    contribution.updated_at = now or utcnow()
    contribution.updated_by_id = actor.id


def _fmt(value):
    return cn_datetime_text(value) if value else "刚才"


def _flush_or_conflict():
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict("该内容刚被他人修改，请刷新页面后再试。") from None


def refuse_empty_submission(contribution: Contribution, actor) -> None:
    """Refuse to submit material without text, before any other check of the submission (a figure's
    problem is beside the point while there is no text). Only for whoever may submit it: anyone else
    is told by the workflow why they may not.

    :raise DomainError: with EMPTY_BODY.
    """
    if policy.can(actor, "contribution.submit", contribution) and not contribution.paragraphs:
        raise DomainError(EMPTY_BODY)


def submit_contribution(contribution: Contribution, actor) -> Revision:
    """Submit (提交审核): fire ``submit`` and snapshot the text as a new revision."""
    # Figures or files saved by a colleague at this moment either land before the snapshot or are
    # refused after it; the checks below then see exactly what the revision will hold.
    lock_row(contribution)
    refuse_empty_submission(contribution, actor)
    for check in SUBMIT_CHECKS:
        check(contribution, actor)
    log = fire(contribution, "submit", actor)
    number = len(contribution.revisions) + 1
    data = {}
    for fn in REVISION_DATA:
        data.update(fn(contribution) or {})
    revision = Revision(contribution=contribution, number=number, body=contribution.body,
                        data=data or None, author_id=actor.id, created_at=utcnow())
    db.session.add(revision)
    contribution.submitted_at = utcnow()
    record(actor, "contribution.submit", f"contribution:{contribution.id}", revision=number,
           on_behalf_of=log.on_behalf_of_id)
    _flush_or_conflict()
    return revision


def _simple(event: str, audit: str):
    def operation(contribution: Contribution, actor, comment: str | None = None, **context):
        log = fire(contribution, event, actor, comment=comment, **context)
        # A 会签同意 that leaves the material waiting for other reviewers is not yet a decision.
        if event in ("approve", "return", "unit_return", "reopen") and log.to_state != "submitted":
            contribution.decided_at = utcnow()
        # The logged context, not the caller's: it says when an admin acted for a missing unit head.
        record(actor, audit, f"contribution:{contribution.id}", comment=log.comment,
               on_behalf_of=log.on_behalf_of_id, **(log.context or {}))
        _flush_or_conflict()
        return log

    operation.__name__ = audit.replace(".", "_")
    operation.__doc__ = f"Fire ``{event}`` on a contribution as ``actor``."
    return operation


recall_contribution = _simple("recall", "contribution.recall")
unit_approve_contribution = _simple("unit_approve", "contribution.unit_approve")
unit_return_contribution = _simple("unit_return", "contribution.unit_return")
approve_contribution = _simple("approve", "contribution.approve")
return_contribution = _simple("return", "contribution.return")
reopen_contribution = _simple("reopen", "contribution.reopen")

OPERATIONS = {
    "submit": lambda c, actor, comment=None, **ctx: submit_contribution(c, actor),
    "recall": recall_contribution,
    "unit_approve": unit_approve_contribution,
    "unit_return": unit_return_contribution,
    "approve": approve_contribution,
    "return": return_contribution,
    "reopen": reopen_contribution,
}


def apply_event(contribution: Contribution, event: str, actor, comment: str | None = None, **context):
    """Dispatch a contribution event by name (used by the CLI and bulk actions)."""
    try:
        operation = OPERATIONS[event]
    except KeyError:
        raise DomainError(f"未知的操作“{event}”。") from None
    return operation(contribution, actor, comment=comment, **context)
