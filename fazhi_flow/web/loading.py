"""Loading helpers shared by the task and review pages: permission-checked fetches, batch preloads."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import joinedload, selectinload

from .. import policy
from ..database import get_locked
from ..extensions import db
from ..models import Attachment, Contribution, ReportCycle, Section, TransitionLog
from .errors import abort_with

# Events whose comment is a decision on the material (shown as "the latest reviewer comment").
DECISION_EVENTS = ("return", "approve", "unit_return", "unit_approve", "reopen")


def in_own_region(obj, user) -> bool:
    """Whether ``obj`` belongs to ``user``'s region. Pages answer an object of another region with
    404, as if it did not exist: a 403 would confirm that the id is in use elsewhere."""
    return policy.region_of(obj) in (None, user.region_id)


def contribution_or_abort(contribution_id: int, user, for_draft_save: bool = False) -> Contribution:
    """The contribution, when ``user`` may see it; else 404 (another region, or none) or 403.
    ``for_draft_save``: read with its cycle in one query under a row lock, which the save then keeps
    (``database.get_locked``): the request must lock nothing else first, nor decide anything after."""
    if for_draft_save:
        contribution = get_locked(Contribution, contribution_id, [joinedload(Contribution.cycle)])
    else:
        contribution = db.session.get(Contribution, contribution_id)
    if contribution is None or not in_own_region(contribution, user):
        abort_with(404, "这份材料不存在。")
    if not policy.can(user, "contribution.view", contribution):
        abort_with(403, "这份材料属于其他单位，您没有权限查看。")
    return contribution


def attachment_or_abort(attachment_id: int, user) -> Attachment:
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or not in_own_region(attachment, user):
        abort_with(404, "这个附件不存在，可能已被删除。")
    if not policy.can(user, "attachment.download", attachment):
        abort_with(403, "这个附件属于其他单位的材料，您没有权限下载。")
    return attachment


def own_cycle_or_abort(cycle_id: int, user) -> ReportCycle:
    """A cycle of ``user``'s region (drafts, compile, material); any other → 404."""
    cycle = db.session.get(ReportCycle, cycle_id)
    if cycle is None or cycle.region_id != user.region_id:
        abort_with(404, "该年度报告不存在。")
    return cycle


def preload_sections(cycle_ids) -> None:
    """Load every section of the cycles (with children, reviewers) so numbering needs no more queries."""
    ids = sorted(set(cycle_ids))
    if not ids:
        return
    list(db.session.scalars(
        select(ReportCycle).where(ReportCycle.id.in_(ids)).options(selectinload(ReportCycle.sections))
    ))
    list(db.session.scalars(
        select(Section).where(Section.cycle_id.in_(ids))
        .options(selectinload(Section.children), selectinload(Section.reviewers))
    ))


def latest_comments(contribution_ids) -> dict[int, TransitionLog]:
    ids = list(set(contribution_ids))
    if not ids:
        return {}
    rows = db.session.scalars(
        select(TransitionLog)
        .where(TransitionLog.contribution_id.in_(ids), TransitionLog.comment.is_not(None),
               TransitionLog.event.in_(DECISION_EVENTS))
        .options(selectinload(TransitionLog.actor), selectinload(TransitionLog.on_behalf_of))
        .order_by(TransitionLog.created_at.desc(), TransitionLog.id.desc())
    )
    latest: dict[int, TransitionLog] = {}
    for row in rows:
        latest.setdefault(row.contribution_id, row)
    return latest


def transition_logs(contribution: Contribution) -> list[TransitionLog]:
    return list(db.session.scalars(
        select(TransitionLog).where(TransitionLog.contribution_id == contribution.id)
        .options(selectinload(TransitionLog.actor), selectinload(TransitionLog.on_behalf_of))
        .order_by(TransitionLog.created_at, TransitionLog.id)
    ))


# The editor lists at most this many of the other units of a section (lead units first): a
# province's section has thousands; the rest are only counted, by state.
OTHER_UNITS_LISTED = 30


@dataclass
class OtherUnits:
    """The other units of a contribution's section, as the editor shows them."""
    rows: list  # at most OTHER_UNITS_LISTED plain rows: unit name, role, state
    counts: dict[str, int]  # state -> the other units' contributions in it (states with none left out)
    total: int

    @property
    def hidden(self) -> int:
        """How many other units are counted but not listed."""
        return self.total - len(self.rows)

    @property
    def summary(self) -> list[tuple[str, int]]:
        """(state label, count) in the workflow's order of states."""
        from ..workflow.states import CONTRIBUTION_STATE_LABELS

        return [(label, self.counts[state]) for state, label in CONTRIBUTION_STATE_LABELS.items()
                if state in self.counts]


def other_units_on_section(contribution: Contribution, limit: int = OTHER_UNITS_LISTED) -> OtherUnits:
    """The other contributions of the same section in two queries whatever their number: their count
    by state, and the first ``limit`` of them (lead units first, then by contribution id) as plain rows
    with their unit's name, role and state (their texts and objects are not needed)."""
    from types import SimpleNamespace

    from ..models import Assignment, Unit
    from ..models.cycle import ASSIGNMENT_ROLES

    others = (Contribution.section_id == contribution.section_id, Contribution.id != contribution.id)
    counts = dict(db.session.execute(
        select(Contribution.state, func.count()).where(*others).group_by(Contribution.state)).all())
    rows = db.session.execute(
        select(Unit.name, Assignment.role, Contribution.state)
        .join(Assignment, Contribution.assignment_id == Assignment.id).join(Unit, Unit.id == Contribution.unit_id)
        .where(*others)
        .order_by(case((Assignment.role == "lead", 0), else_=1), Contribution.id)
        .limit(limit))
    listed = [SimpleNamespace(unit=SimpleNamespace(name=name), state=state,
                              assignment=SimpleNamespace(role=role, role_label=ASSIGNMENT_ROLES[role]))
              for name, role, state in rows]
    return OtherUnits(rows=listed, counts=counts, total=sum(counts.values()))
