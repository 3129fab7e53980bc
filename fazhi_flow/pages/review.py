"""待审核 (the reviewer's queue) and the review page of one contribution."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle
from ..timeutil import utcnow
from . import due_of, load_viewer, preload_sections
from .editor import contribution_figures, load_contribution


def reviewable_submissions(user) -> list[Contribution]:
    """Every submitted contribution of a collecting cycle that ``user`` may review, oldest first."""
    from ..workflow.machine import is_contribution_reviewer

    rows = list(db.session.scalars(
        select(Contribution).join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
        .join(Assignment, Contribution.assignment_id == Assignment.id)
        .where(Contribution.state == "submitted", ReportCycle.state == "collecting")
        .options(contains_eager(Contribution.cycle), contains_eager(Contribution.assignment),
                 selectinload(Contribution.unit), selectinload(Contribution.revisions))
    ))
    preload_sections(c.cycle_id for c in rows)
    rows = [c for c in rows if is_contribution_reviewer(user, c)]
    rows.sort(key=lambda c: (c.submitted_at or c.updated_at, c.id))
    return rows


@dataclass
class QueueRow:
    id: int
    unit_name: str
    role: str
    role_label: str
    section_label: str
    preview: str
    due: object  # DueStatus, done: the material reached the office
    overdue: bool  # submitted after the due date
    submitted_at: object
    revision_count: int


@dataclass
class PendingReviewPage:
    rows: list[QueueRow]
    total: int
    filters: dict
    cycles: list  # (id, title)
    sections: list  # (id, path label)
    units: list  # (id, name)
    now: object

    @classmethod
    def build(cls, user, filters: dict) -> PendingReviewPage:
        """``filters``: ``cycle``, ``section``, ``unit`` ids or None."""
        from ..timeutil import to_local
        from ..web import bound_text
        from ..web.helpers import due_status
        from ..web.outline_order import in_outline_order

        load_viewer(user)
        everything = reviewable_submissions(user)
        chosen = [
            c for c in everything
            if (filters["cycle"] is None or c.cycle_id == filters["cycle"])
            and (filters["section"] is None or c.section_id == filters["section"])
            and (filters["unit"] is None or c.unit_id == filters["unit"])
        ]
        renderer = bound_text.current()
        rows = []
        for c in chosen:
            due = due_status(c, done=True)
            submitted = to_local(c.submitted_at)
            rows.append(QueueRow(
                c.id, c.unit.name, c.assignment.role, c.assignment.role_label, c.section.path_label,
                renderer.preview(c), due,
                bool(due.due and submitted and submitted.strftime("%Y-%m-%d") > due.due.isoformat()),
                c.submitted_at, len(c.revisions)))
        cycles = sorted({c.cycle for c in everything}, key=lambda cy: (-cy.year, cy.id))
        sections = in_outline_order({c.section for c in everything if filters["cycle"] in (None, c.cycle_id)})
        units = sorted({c.unit for c in everything}, key=lambda u: (u.sort_order, u.name))
        return cls(rows=rows, total=len(everything), filters=filters,
                   cycles=[(cy.id, cy.title) for cy in cycles],
                   sections=[(s.id, s.path_label) for s in sections],
                   units=[(u.id, u.name) for u in units], now=utcnow())


def diff_base(revisions, logs):
    """The revision the latest is compared with: the newest earlier one the office returned or
    approved (a submission recalled before review was never seen), else the one before the latest."""
    if len(revisions) < 2:
        return None
    # Revision n is the text of the n-th 提交审核; a decision belongs to the submission before it.
    if sum(1 for log in logs if log.event == "submit") == len(revisions):
        decided, current = set(), 0
        for log in logs:
            if log.event == "submit":
                current += 1
            elif log.event in ("return", "approve"):
                decided.add(current)
        earlier = [r for r in revisions[:-1] if r.number in decided]
        if earlier:
            return earlier[-1]
    return revisions[-2]


@dataclass
class ReviewPage:
    c: Contribution
    logs: list
    revisions: list
    diff: object
    base: object
    changed: bool
    can_decide: bool
    due: object
    paragraphs: list
    fig: object  # services.figures.ContributionFigures for the figures panel, or None
    show_figures: bool

    @classmethod
    def build(cls, user, contribution: Contribution, *, figures: bool = True) -> ReviewPage:
        from ..services.diffs import has_changes, paragraph_diff
        from ..web import bound_text
        from ..web.loading import transition_logs
        from ..web.permissions import can_fire

        load_viewer(user)
        c = load_contribution(contribution)
        revisions = c.revisions
        logs = transition_logs(c)
        base = diff_base(revisions, logs)
        renderer = bound_text.current()
        diff = None
        if base is not None:
            # Compared as displayed: a changed figure shows up even where the text cites it.
            diff = paragraph_diff(renderer.revision(base), renderer.revision(revisions[-1]))
        fig = contribution_figures(user, c, figures)
        shown = fig is not None and bool(fig.rows or fig.results or fig.literals or fig.mostly_unchanged)
        return cls(c=c, logs=logs, revisions=revisions, diff=diff, base=base,
                   changed=diff is not None and has_changes(diff), can_decide=can_fire(user, c, "approve"),
                   due=due_of(c), paragraphs=renderer.paragraphs(c), fig=fig, show_figures=shown)

    def context(self) -> dict:
        return {"page": self, "c": self.c, "logs": self.logs, "revisions": self.revisions, "diff": self.diff,
                "base": self.base, "changed": self.changed, "can_decide": self.can_decide, "due": self.due,
                "paragraphs": self.paragraphs, "fig": self.fig}
