"""待审核 (the reviewer's queue) and the review page of one contribution."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle
from ..timeutil import utcnow
from . import due_of, load_viewer, prepare_figures, preload_sections
from .editor import contribution_figures, figures_shown, load_contribution


def reviewable_submissions(user) -> list[Contribution]:
    """Every submitted contribution of a collecting cycle of ``user``'s region that ``user`` may
    review, oldest first."""
    from ..workflow.machine import is_contribution_reviewer

    rows = list(db.session.scalars(
        select(Contribution).join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
        .join(Assignment, Contribution.assignment_id == Assignment.id)
        .where(Contribution.state == "submitted", ReportCycle.state == "collecting",
               ReportCycle.region_id == user.region_id)
        .options(contains_eager(Contribution.cycle), contains_eager(Contribution.assignment),
                 selectinload(Contribution.unit), selectinload(Contribution.revisions))
    ))
    preload_sections(c.cycle_id for c in rows)
    viewers = reviewing_as(user)
    rows = [c for c in rows if any(is_contribution_reviewer(v, c) for v in viewers)]
    # 会签: what the viewer approved already waits for the others, not for another approval.
    signed = countersign_states(user, rows)
    rows = [c for c in rows if not (c.id in signed and signed[c.id].mine)]
    rows.sort(key=lambda c: (c.submitted_at or c.updated_at, c.id))
    return rows


@dataclass
class Countersign:
    """The countersign (会签) of one contribution's revision under review."""

    approved_ids: set  # whose approvals (reviewer ids) it has
    required: list  # the reviewers who all have to approve (policy.countersign_required)
    pending: list  # of those, who has not yet
    mine: bool  # the viewer's approval (their own, or their delegator's) is among them


def countersign_states(user, contributions) -> dict:
    """Countersign of each of ``contributions`` in a section set to 'all' (others are left out), the
    approvals read in one statement; sections, reviewers and revisions must be loaded already."""
    from .. import policy
    from ..models import ContributionApproval as A

    counted = {c.id: c for c in contributions if policy.countersign_required(c)}
    if not counted:
        return {}
    given: dict[int, set] = {cid: set() for cid in counted}
    clicked: dict[int, set] = {cid: set() for cid in counted}
    for cid, number, reviewer_id, actor_id in db.session.execute(
            select(A.contribution_id, A.revision_number, A.reviewer_id, A.actor_id)
            .where(A.contribution_id.in_(counted))):
        if number == policy.current_revision_number(counted[cid]):
            given[cid].add(reviewer_id)
            clicked[cid].add(actor_id or reviewer_id)
    states = {}
    for cid, c in counted.items():
        principal = policy.countersign_principal(user, c, given[cid]) or user
        pending = policy.pending_approvers(c, given[cid])
        # (Nobody pending any more: one who approved may settle it, so it is theirs to do again.)
        # One person gives one approval of a revision, in whoever's name (会签 means several people).
        done = principal.id in given[cid] or user.id in clicked[cid]
        states[cid] = Countersign(given[cid], policy.countersign_required(c), pending, done and bool(pending))
    return states


def reviewing_as(user) -> list:
    """The viewer, then the reviewers they stand in for (委托): whose queue 待审核 shows."""
    from .. import policy

    return [user, *(p for p in policy.acting_for(user) if p.has_role("reviewer"))]


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
    countersign: Countersign | None = None  # in a section approved by all its reviewers (会签)


PAGE_SIZE = 50  # rows of 待审核 per page


def reviewable_refs(user) -> tuple[list, list]:
    """(id, cycle id, section id, unit id) of every submitted contribution of a collecting cycle of
    ``user``'s region that ``user`` may review, oldest first, read as plain rows (a city has
    thousands, a page shows 50); with the cycles and sections loaded for them, to be kept while the
    rows are used."""
    from types import SimpleNamespace

    from ..models import Section
    from ..workflow.machine import is_contribution_reviewer

    rows = db.session.execute(
        select(Contribution.id, Contribution.cycle_id, Contribution.section_id, Contribution.unit_id,
               Contribution.submitted_at, Contribution.updated_at)
        .join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
        # Only the reviewer's region: a section naming no reviewer is open to the reviewers of its own
        # region, never of another (the policy refuses those one by one; the queue's counts must too).
        .where(Contribution.state == "submitted", ReportCycle.state == "collecting",
               ReportCycle.region_id == user.region_id)).all()
    kept = preload_sections(r.cycle_id for r in rows)
    # The policy reads the contribution's unit and section only; its answer depends on the section
    # and on whether the unit is the reviewer's own.
    allowed: dict[tuple, bool] = {}
    chosen = []
    # Plain values read once: ``user`` is often the request's proxy, and a city has thousands of rows.
    own_unit = user.unit_id
    viewers = [(v, v.unit_id) for v in reviewing_as(user)]
    for r in rows:
        for at, (v, unit_id) in enumerate(viewers):
            key = (at, r.section_id, r.unit_id == unit_id, r.unit_id == own_unit)
            if key not in allowed:
                stand_in = SimpleNamespace(unit_id=r.unit_id, section=db.session.get(Section, r.section_id))
                allowed[key] = is_contribution_reviewer(v, stand_in)
            if allowed[key]:
                chosen.append(r)
                break
    chosen.sort(key=lambda r: (r.submitted_at or r.updated_at, r.id))
    return chosen, kept


@dataclass(frozen=True)
class ReviewQueue:
    """What 待审核 shows of every row a reviewer may review, before paging: kept per reviewer while
    the tokens of the region's collecting cycles hold (they change with a contribution's state, the
    outline, a section's reviewers, the units), so a page of a city's queue reads 50 rows, not 4,500."""

    refs: tuple  # (contribution id, cycle id, section id, unit id), oldest submission first
    labels: dict  # section id -> path label, for every section of the cycles with rows
    cycles: tuple  # (id, title) of the cycles with rows, newest year first
    sections: tuple  # (id, path label, cycle id) of the sections with rows, in outline order
    units: tuple  # (id, name) of the units with rows, in the units' order


def _reviewer_key(user) -> tuple:
    """Everything of the viewer, and of those they stand in for, that decides which rows are theirs
    (``is_contribution_reviewer``): ids, the reviewer role, units, regions, a substitute's unit."""
    out = []
    for v in reviewing_as(user):  # the viewer first
        substitute = getattr(v, "substitute", None)
        out.append((type(v).__name__, v.id, v.has_role("reviewer"), v.unit_id, v.region_id,
                    None if substitute is None else (substitute.id, substitute.unit_id)))
    return tuple(out)


def review_queue(user) -> tuple[ReviewQueue, list]:
    """``user``'s queue, and the cycles and sections loaded to make it (empty when it was kept: the
    caller loads what its page needs)."""
    from ..figures.cache import QUEUES, cycle_tokens

    # Read before the rows, so what is kept under these tokens is at least as new as they are.
    tokens = cycle_tokens(ReportCycle.region_id == user.region_id, ReportCycle.state == "collecting")
    key = None if tokens is None else ("review-queue", str(db.engine.url), tokens, _reviewer_key(user))
    found = QUEUES.get(key) if key is not None else None
    if found is not None:
        return found, []
    found, kept = _make_queue(user)
    if key is not None:
        QUEUES.put(key, found)
    return found, kept


def _make_queue(user) -> tuple[ReviewQueue, list]:
    from ..models import Section, Unit
    from ..web.outline_order import in_outline_order

    refs, kept = reviewable_refs(user)
    # Each cycle's labels in one walk of its outline (loaded by reviewable_refs): a label asked
    # section by section numbers its siblings again for every row and every filter choice.
    cycles = sorted({db.session.get(ReportCycle, i) for i in {r.cycle_id for r in refs}},
                    key=lambda cy: (-cy.year, cy.id))
    labels = {sid: label for cy in cycles for sid, label in cy.path_labels().items()}
    sections = in_outline_order({db.session.get(Section, i) for i in {r.section_id for r in refs}})
    unit_ids = sorted({r.unit_id for r in refs})
    units = sorted(db.session.execute(select(Unit.id, Unit.name, Unit.sort_order).where(Unit.id.in_(unit_ids)))
                   if unit_ids else [], key=lambda u: (u.sort_order, u.name))
    queue = ReviewQueue(
        refs=tuple((r.id, r.cycle_id, r.section_id, r.unit_id) for r in refs), labels=labels,
        cycles=tuple((cy.id, cy.title) for cy in cycles),
        sections=tuple((sec.id, labels.get(sec.id) or sec.path_label, sec.cycle_id) for sec in sections),
        units=tuple((u.id, u.name) for u in units))
    return queue, kept


@dataclass
class PendingReviewPage:
    rows: list[QueueRow]
    total: int
    filters: dict
    cycles: list  # (id, title)
    sections: list  # (id, path label)
    units: list  # (id, name)
    now: object
    number: int = 1  # this page's number
    pages: int = 1  # how many pages the filtered list has
    matching: int = 0  # rows matching the filters
    on_behalf: tuple = ()  # names of the reviewers the viewer stands in for (委托)

    def link_args(self, number: int) -> dict:
        """Query arguments of page ``number`` with the current filters."""
        args = {key: value for key, value in self.filters.items() if value is not None}
        if number > 1:
            args["page"] = number
        return args

    @property
    def first_row(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1 if self.rows else 0

    @classmethod
    def build(cls, user, filters: dict, number: int | None = None) -> PendingReviewPage:
        """``filters``: ``cycle``, ``section``, ``unit`` ids or None; ``number``: the page (default:
        the ``page`` query argument, else 1)."""
        from ..timeutil import to_local
        from ..web import bound_text
        from ..web.helpers import due_status
        from ..whole_numbers import optional_int

        load_viewer(user)
        queue, kept = review_queue(user)
        chosen = [
            ref for ref in queue.refs  # (id, cycle, section, unit)
            if filters["cycle"] in (None, ref[1]) and filters["section"] in (None, ref[2])
            and filters["unit"] in (None, ref[3])
        ]
        if number is None:
            from flask import has_request_context, request

            number = optional_int(request.args.get("page"), low=1) if has_request_context() else None
        pages = max(1, -(-len(chosen) // PAGE_SIZE))
        number = min(number or 1, pages)
        page = chosen[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
        ids = [ref[0] for ref in page]
        # Due dates and countersigns read the outline (parents, reviewers): load it once when the
        # queue was kept, not section by section.
        kept = kept or preload_sections({ref[1] for ref in page})
        loaded = {c.id: c for c in db.session.scalars(
            select(Contribution).where(Contribution.id.in_(ids))
            .options(joinedload(Contribution.cycle), joinedload(Contribution.assignment),
                     joinedload(Contribution.unit), selectinload(Contribution.revisions)))} if ids else {}
        shown = [loaded[i] for i in ids if i in loaded]
        prepare_figures(shown)
        renderer = bound_text.current()
        rows = []
        signed = countersign_states(user, shown)
        for c in shown:
            due = due_status(c, done=True)
            submitted = to_local(c.submitted_at)
            rows.append(QueueRow(
                c.id, c.unit.name, c.assignment.role, c.assignment.role_label,
                queue.labels.get(c.section_id) or c.section.path_label,
                renderer.preview(c), due,
                bool(due.due and submitted and submitted.strftime("%Y-%m-%d") > due.due.isoformat()),
                c.submitted_at, len(c.revisions), signed.get(c.id)))
        return cls(rows=rows, total=len(queue.refs), filters=filters, cycles=list(queue.cycles),
                   sections=[(sid, label) for sid, label, cycle_id in queue.sections
                             if filters["cycle"] in (None, cycle_id)],
                   units=list(queue.units), now=utcnow(),
                   number=number, pages=pages, matching=len(chosen),
                   on_behalf=tuple(v.name for v in reviewing_as(user)[1:]))


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


def _countersign_facts(c) -> dict:
    """Who approved the material under review and who still has to, in a section set to 'all'."""
    from .. import policy

    required = policy.countersign_required(c)
    if not required:
        return {}
    approvals = policy.countersign_approvals(c)
    pending = policy.pending_approvers(c, {a.reviewer_id for a in approvals})
    return {"countersign": True, "approvals": tuple(approvals), "pending": tuple(pending)}


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
    can_approve: bool = False  # can_decide, and not approved by the viewer already (会签)
    approvals: tuple = ()  # 会签: the approvals (ContributionApproval) of the revision under review
    pending: tuple = ()  # 会签: the required reviewers who have not approved it
    countersign: bool = False  # the section is approved by all its named reviewers

    @classmethod
    def build(cls, user, contribution: Contribution, *, figures: bool = True) -> ReviewPage:
        from ..services.diffs import has_changes, paragraph_diff
        from ..web import bound_text
        from ..web.loading import transition_logs
        from .. import policy

        load_viewer(user)
        c = load_contribution(contribution)
        # One batch for the text's figures and, when the figures panel is shown, its rules' figures.
        prepare_figures([c], rules=figures_shown(user, c, figures))
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
        # Deciding is returning or approving; one who approved already (会签) may still return it.
        return cls(c=c, logs=logs, revisions=revisions, diff=diff, base=base,
                   changed=diff is not None and has_changes(diff),
                   can_decide=policy.can(user, "contribution.return", c),
                   can_approve=policy.can(user, "contribution.approve", c), **_countersign_facts(c),
                   due=due_of(c), paragraphs=renderer.paragraphs(c), fig=fig, show_figures=shown)

    def context(self) -> dict:
        return {"page": self, "c": self.c, "logs": self.logs, "revisions": self.revisions, "diff": self.diff,
                "base": self.base, "changed": self.changed, "can_decide": self.can_decide, "due": self.due,
                "paragraphs": self.paragraphs, "fig": self.fig}
