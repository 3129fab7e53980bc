"""Compile (汇总编辑), sign-off (签发), publish (发布) and correct (更正) the merged report.

The merged text of a section is pre-filled from its approved contributions (lead unit first) until an
admin saves an edit. Every change of the whole draft is kept as a ReportDraftVersion; the leader signs
the latest version, and publishing freezes exactly that version as an immutable Publication. A
correction (更正) is signed too: the admin edits the published draft and asks for the signature with a
note (提请签发更正); the leader's 签发 publishes it as the next version, 退回 leaves it unpublished.

Bound numbers: a unit's text may cite an indicator as ``{{code}}``. The pre-filled text prints the
numbers as approved (``publish.numbers``), and an edited section (SectionDraft) stores that plain
prose, numbers included — not the citations. The admin edits the words the leader will read, the
signed version is exactly what is published, and a value edited after approval can never slip into
a signed text. When an approved number changes (re-approval), the section's sources no longer match
and the edit is flagged stale; a value changed but not yet approved again is listed on the compile
page with the sentences it affects (``figure_changes``) and stays out of the report.

The indicator appendix (附件：统计指标汇总表) is part of the draft: whether the current draft has it is
read from the latest draft version's document (``appendix`` is None without it), so switching it on or
off is itself a new version that the leader signs.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from .. import policy
from ..database import lock_row
from ..errors import Conflict, DomainError, NotFound
from ..extensions import db
from ..models import (
    Publication,
    Region,
    ReportCycle,
    ReportDraftVersion,
    Section,
    SectionDraft,
    TransitionLog,
)
from ..models.publication import sha256_hex
from ..publish.document import ReportDocument
from ..publish.docx import render_docx
from ..publish.html import font_stacks, render_html
from ..publish.naming import full_title
from ..publish.merge import (
    CitedTexts,
    approved_contributions,
    assemble,
    load_cycle_material,
    prefill,
    section_contributions,
    section_sources,
)
from ..publish.numbers import ApprovedFigureBook
from ..publish.pdf import PdfUnavailable, pdf_available, render_pdf
from ..publish.text import render_text
from ..timeutil import utcnow
from ..whole_numbers import optional_int
from ..workflow.machine import fire, transition_fired
from . import cycles as cycle_ops
from .attachments import clean_filename
from .audit import record

logger = logging.getLogger(__name__)

# While compiling the admin edits the draft; once published, edits prepare a correction (更正). Never
# while the leader reads a draft (signoff, correcting): what is signed is what was read.
EDITABLE_STATES = policy.DRAFT_EDITABLE_STATES
# States in which the leader has a draft to sign: the report, or a correction of it.
SIGNING_STATES = policy.SIGNING_STATES
MAX_SECTION_CHARS = 50_000
FORMATS = {
    "txt": ("text/plain; charset=utf-8", "txt"),
    "html": ("text/html; charset=utf-8", "html"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
    "pdf": ("application/pdf", "pdf"),
}
FORMAT_LABELS = {"txt": "纯文本", "html": "网页", "docx": "Word", "pdf": "PDF"}
# What figures.bound prints for a citation without a value: it must never be signed.
UNFILLED_MARK = re.compile(r"【[^】]*(?:未填报|未知指标)[^】]*】")


# ------------------------------------------------------------------ permissions


def can_compile(user, cycle: ReportCycle) -> bool:
    return policy.can(user, "cycle.compile", cycle)


def can_edit_draft(user, cycle: ReportCycle) -> bool:
    return policy.can(user, "cycle.edit_draft", cycle)


def can_read_draft(user, cycle: ReportCycle) -> bool:
    return policy.can(user, "cycle.read_draft", cycle)


def can_sign(user, cycle: ReportCycle) -> bool:
    return policy.can(user, "cycle.sign", cycle)


# ------------------------------------------------------------------ reading the draft


@dataclass
class SectionView:
    """What the compile page shows for one section."""

    section: Section
    contributions: list = field(default_factory=list)   # all, lead first
    approved: list = field(default_factory=list)
    draft: SectionDraft | None = None
    prefill: str = ""
    # Contribution id → escaped paragraphs of its approved text, numbers printed (side by side view).
    material: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)  # what the section would be built from now

    @property
    def text(self) -> str:
        return self.draft.body if self.draft is not None else self.prefill

    @property
    def edited(self) -> bool:
        return self.draft is not None

    @property
    def missing(self) -> bool:
        """Assigned to units, but none of their material is approved."""
        return bool(self.contributions) and not self.approved

    @property
    def pending(self) -> list:
        return [c for c in self.contributions if c.state != "approved"]

    @property
    def stale(self) -> bool:
        """Edited text built from material that is no longer what is approved."""
        if self.draft is None:
            return False
        return _source_keys(self.draft.sources) != _source_keys(self.sources)


def _source_keys(sources) -> list[tuple]:
    # The approved numbers the text cites count too: a re-approved figure makes the edit stale.
    return [(s["contribution"], s["revision"], sorted((s.get("figures") or {}).items()))
            for s in sources or []]


def section_drafts(cycle: ReportCycle) -> dict[int, SectionDraft]:
    rows = db.session.scalars(select(SectionDraft).where(SectionDraft.cycle_id == cycle.id))
    return {row.section_id: row for row in rows}


def section_views(cycle: ReportCycle, numbers: CitedTexts | None = None) -> list[SectionView]:
    """Every section as the compile page shows it, in reading order (a fixed number of queries)."""
    load_cycle_material(cycle)
    drafts = section_drafts(cycle)
    numbers = numbers or CitedTexts(cycle)
    views = []
    for top in cycle.top_sections():
        for section in top.walk():
            approved = approved_contributions(section)
            views.append(SectionView(
                section=section,
                contributions=section_contributions(section),
                approved=approved,
                draft=drafts.get(section.id),
                prefill=prefill(section, numbers),
                material={c.id: numbers.paragraphs_html(c) for c in approved},
                sources=section_sources(section, numbers),
            ))
    return views


# ------------------------------------------------------------------ the overview: figures, not texts


@dataclass
class DraftInfo:
    """A saved merged text of a section, less its body: its length, sources and who saved it."""

    section_id: int
    version: int
    chars: int
    sources: list
    updated_at: object
    updated_by: str | None


@dataclass
class SectionSummary:
    """What the compile page's overview shows of one section, from aggregate SQL (no text is read)."""

    section: Section
    counts: dict = field(default_factory=dict)  # contribution state -> how many of the section's
    material_chars: int = 0  # characters of the approved texts, as the units wrote them
    draft: DraftInfo | None = None
    stale: bool = False

    @property
    def assigned(self) -> int:
        return sum(self.counts.values())

    @property
    def approved(self) -> int:
        return self.counts.get("approved", 0)

    @property
    def pending(self) -> int:
        return self.assigned - self.approved

    @property
    def missing(self) -> bool:
        """Assigned to units, but none of their material is approved (as ``SectionView.missing``)."""
        return bool(self.assigned) and not self.approved

    @property
    def edited(self) -> bool:
        return self.draft is not None


class PlainApprovedFigureBook(ApprovedFigureBook):
    """An ``ApprovedFigureBook`` (read-only values) whose contributions are plain rows, not ORM objects:
    a city's 18,000 contributions load in a fraction of the time. For pages that ask the book only
    through its own contributions (rule checks, the overview's stale checks), never with ORM
    contributions loaded elsewhere (the book tells its reporters by identity)."""

    def __init__(self, cycle):
        super().__init__(cycle, readonly=True)

    def _load_entries(self, cycle, readonly: bool) -> tuple[list, dict[int, str], dict]:
        # The plain rows with their units' names, roles, values and approved revisions' figures are
        # kept per process under the cycle's figures token (a unit's rename changes it: migration
        # 0008). Shared by every request: nothing here changes them.
        from ..figures.cache import BOOKS, cached, figures_token

        # Read once: the failing rules are kept under the token this book's data was loaded under,
        # not under one read later in the request (a decision committed meanwhile).
        self._token = figures_token(cycle.id)
        contributions, self._units, roles, values, self._revision_figures = cached(
            "approved-book", cycle.id, lambda: self._plain_entries(cycle), BOOKS, token=self._token)
        return contributions, roles, values

    def _plain_entries(self, cycle):
        from ..models import Contribution, Unit

        from ..figures.scoped import ContributionRow, UnitRow

        rows, roles, values, revision_figures = self._entries(cycle)
        units = {uid: UnitRow(uid, name) for uid, name in db.session.execute(
            select(Unit.id, Unit.name).where(Unit.id.in_(
                select(Contribution.unit_id).where(Contribution.cycle_id == cycle.id))))}
        return [ContributionRow(cid, cycle.id, section_id, unit_id, assignment_id, state, units[unit_id])
                for cid, section_id, unit_id, assignment_id, state in rows], units, roles, values, revision_figures

    def _load_revision_figures(self, cycle) -> dict[int, dict]:
        return self._revision_figures

    def _index(self, contributions, indicators) -> tuple[dict, dict, dict, dict]:
        # Built from the kept rows and the indicators (both under the token): kept beside them rather
        # than rebuilt over a city's 18,000 contributions on every request. Read-only; the book copies
        # the contributions dict, which callers may add to.
        from ..figures.cache import BOOKS, cached

        return cached("approved-index", self.cycle.id, lambda: super(PlainApprovedFigureBook, self)._index(
            contributions, indicators), BOOKS, token=self._token)

    def failed_rules(self) -> list:
        """The rules failing on the approved figures, as (rule, full message, explanation, blocking),
        kept under the figures token with what else the messages read: the cycle's state and the units'
        names. Not kept when an indicator is taken from the regions below (their data has tokens of
        their own)."""
        from ..figures.cache import cached
        from ..figures.evaluate import evaluate_cycle

        def compute():
            return [(r.rule.id, r.full_message, r.explanation, r.blocking)
                    for r in evaluate_cycle(self, detail=True) if r.failed]

        if any(ind.rollup for ind in self.indicators.values()):
            found = compute()
        else:
            names = hash(tuple(sorted((u.id, u.name) for u in self._units.values())))
            found = cached(f"failed-rules:{self.cycle.state}:{names}", self.cycle.id, compute, token=self._token)
        rules = {rule.id: rule for rule in self.rules}
        return [_Failed(rules[rid], message, explanation, blocking)
                for rid, message, explanation, blocking in found if rid in rules]

    def _entries(self, cycle) -> tuple[list, dict[int, str], dict, dict]:
        from ..figures.evaluate import plain_values
        from ..models import Assignment, Contribution, Revision

        rows, roles = [], {}
        for cid, section_id, unit_id, assignment_id, state, role in db.session.execute(
                select(Contribution.id, Contribution.section_id, Contribution.unit_id, Contribution.assignment_id,
                       Contribution.state, Assignment.role)
                .join(Assignment, Contribution.assignment_id == Assignment.id)
                .join(Section, Assignment.section_id == Section.id)
                .where(Contribution.cycle_id == cycle.id).order_by(Section.position, Assignment.id)):
            rows.append((cid, section_id, unit_id, assignment_id, state))
            roles[cid] = role
        revision_figures: dict[int, dict] = {}
        for cid, data in db.session.execute(
                select(Revision.contribution_id, Revision.data)
                .join(Contribution, Contribution.id == Revision.contribution_id)
                .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved")
                .order_by(Revision.contribution_id, Revision.number)):
            revision_figures[cid] = (data or {}).get("figures")  # the last one seen is the latest
        return rows, roles, plain_values(cycle.id) if rows else {}, revision_figures


@dataclass(slots=True, eq=False)
class _Failed:
    """What the signature checks show of a failing rule."""

    rule: object
    full_message: str
    explanation: str | None
    blocking: bool


class StoredCitations(CitedTexts):
    """``CitedTexts`` that can also print the numbers an edited section's stored sources cite without
    reading the source texts: an unchanged revision cites the same figures, so only their values can
    have changed since (what makes ``SectionView.stale`` true without a new revision).

    ``plain``: the figure book holds plain rows (``PlainApprovedFigureBook``); then no text may be
    merged with it, only stored sources printed and rules checked."""

    def __init__(self, cycle, plain: bool = False):
        super().__init__(cycle)
        self._stored: dict[int, str] = {}
        self.plain = plain

    @property
    def book(self) -> ApprovedFigureBook:
        if self._book is None and self.plain:
            self._book = PlainApprovedFigureBook(self.cycle)
            self._names = {code: ind.name for code, ind in self._book.indicators.items()}
        return super().book

    def raw(self, contribution) -> str:
        stored = self._stored.get(contribution.id)
        return stored if stored is not None else super().raw(contribution)

    def printed(self, contribution_id: int, keys) -> dict[str, str] | None:
        """The numbers ``keys`` (``code`` / ``sum(code)``) print as for that contribution now."""
        contribution = self.book.contributions.get(contribution_id)
        if contribution is None:
            return None
        self._stored[contribution_id] = "".join("{{" + key + "}}" for key in keys)
        try:
            return self.cited(contribution)
        finally:
            # Forget the stand-in text, so that merging the real one later resolves what it cites.
            del self._stored[contribution_id]
            self._values_cache.pop(contribution_id, None)


class PlainBookTexts(StoredCitations):
    """Merges texts (a section's page, or every section of a small cycle's compile page) with the
    plain-rows figure book: each contribution is asked of the book as the book's own row (the book
    tells reporters by identity), its text read from the ORM contribution it stands for."""

    def __init__(self, cycle):
        super().__init__(cycle, plain=True)
        self._loaded: dict[int, object] = {}

    def raw(self, contribution) -> str:
        if contribution.id not in self._stored:
            contribution = self._loaded.get(contribution.id, contribution)
        return super().raw(contribution)

    def _values(self, contribution) -> dict:
        own = self.book.contributions.get(contribution.id)
        if own is None or own is contribution:
            return super()._values(contribution)
        self._loaded[contribution.id] = contribution
        return super()._values(own)


def _latest_revisions(cycle: ReportCycle):
    """(contribution id, latest revision number) of the cycle's approved contributions, as a subquery."""
    from ..models import Contribution, Revision

    return (select(Revision.contribution_id, func.max(Revision.number).label("number"))
            .join(Contribution, Contribution.id == Revision.contribution_id)
            .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved")
            .group_by(Revision.contribution_id).subquery())


def section_tallies(cycle: ReportCycle) -> tuple[dict, dict]:
    """Per section: contributions by state, and the characters of the approved texts (two queries),
    kept under the figures token: states, sections and revisions change it, and an approved
    contribution's body is never written (only drafts and returned material are edited).

    The approved text is that of the latest revision, else the body (``merge.approved_text``).
    Callers never change what is returned (it is shared)."""
    from ..figures.cache import cached

    return cached("section-tallies", cycle.id, lambda: _section_tallies(cycle))


def _section_tallies(cycle: ReportCycle) -> tuple[dict, dict]:
    from sqlalchemy import and_, case

    from ..models import Contribution, Revision

    counts: dict[int, dict] = {}
    for section_id, state, number in db.session.execute(
            select(Contribution.section_id, Contribution.state, func.count(Contribution.id))
            .where(Contribution.cycle_id == cycle.id).group_by(Contribution.section_id, Contribution.state)):
        counts.setdefault(section_id, {})[state] = number
    # The latest revision through the (contribution, number) index, per approved contribution.
    newest = select(func.max(Revision.number)).where(Revision.contribution_id == Contribution.id) \
        .correlate(Contribution).scalar_subquery()
    length = case((Revision.id.is_not(None), func.coalesce(func.length(Revision.body), 0)),
                  else_=func.coalesce(func.length(Contribution.body), 0))
    chars = {section_id: int(total or 0) for section_id, total in db.session.execute(
        select(Contribution.section_id, func.sum(length)).select_from(Contribution)
        .outerjoin(Revision, and_(Revision.contribution_id == Contribution.id, Revision.number == newest))
        .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved")
        .group_by(Contribution.section_id))}
    return counts, chars


def _draft_infos(cycle: ReportCycle) -> dict[int, DraftInfo]:
    """The cycle's saved section texts, their lengths counted in SQL (the bodies stay unread)."""
    from ..models import User

    rows = db.session.execute(
        select(SectionDraft.section_id, SectionDraft.version, func.length(SectionDraft.body),
               SectionDraft.sources, SectionDraft.updated_at, User.name)
        .outerjoin(User, User.id == SectionDraft.updated_by_id)
        .where(SectionDraft.cycle_id == cycle.id))
    return {row[0]: DraftInfo(row[0], row[1], int(row[2] or 0), row[3] or [], row[4], row[5]) for row in rows}


def _current_sources(cycle: ReportCycle, section_ids) -> dict[int, list[tuple[int, int]]]:
    """(contribution, revision) of each section's approved material, in merging order (lead unit
    first, then the units' order: ``merge.section_contributions``), for ``section_ids`` only."""
    from sqlalchemy import case

    from ..models import Assignment, Contribution, Unit

    if not section_ids:
        return {}
    latest = _latest_revisions(cycle)
    rows = db.session.execute(
        select(Assignment.section_id, Contribution.id, func.coalesce(latest.c.number, 0))
        .select_from(Contribution).join(Assignment, Assignment.id == Contribution.assignment_id)
        .join(Unit, Unit.id == Contribution.unit_id)
        .outerjoin(latest, latest.c.contribution_id == Contribution.id)
        .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved",
               Assignment.section_id.in_(list(section_ids)))
        .order_by(Assignment.section_id, case((Assignment.role == "lead", 0), else_=1), Unit.sort_order,
                  Assignment.id))
    found: dict[int, list] = {}
    for section_id, contribution_id, revision in rows:
        found.setdefault(section_id, []).append((contribution_id, int(revision)))
    return found


def _stale_source(stored: list, current: list[tuple[int, int]], numbers: StoredCitations) -> bool:
    """Whether an edit made from ``stored`` sources is stale against the approved ``current`` ones:
    the same test as ``SectionView.stale``, with the cited numbers printed from the stored keys."""
    if [(s.get("contribution"), s.get("revision")) for s in stored] != current:
        return True
    for source in stored:
        figures = source.get("figures") or {}
        if figures and numbers.printed(source["contribution"], list(figures)) != figures:
            return True
    return False


def section_summaries(cycle: ReportCycle, numbers: StoredCitations | None = None,
                      tallies: tuple[dict, dict] | None = None) -> list[SectionSummary]:
    """Every section in reading order with its counts, lengths and problems, in a fixed number of
    queries and without reading any text: what the admin decides from before opening a section.

    ``tallies``: what ``section_tallies`` gave, when the caller has it already."""
    from .outline import load_outline

    numbers = numbers or StoredCitations(cycle, plain=True)
    nodes = load_outline(cycle)
    counts, chars = tallies or section_tallies(cycle)
    drafts = _draft_infos(cycle)
    current = _current_sources(cycle, drafts)
    summaries = []
    for node in nodes:
        section = node.section
        draft = drafts.get(section.id)
        summaries.append(SectionSummary(
            section=section, counts=counts.get(section.id, {}), material_chars=chars.get(section.id, 0),
            draft=draft,
            stale=draft is not None and _stale_source(draft.sources, current.get(section.id, []), numbers)))
    return summaries


def load_section_material(cycle: ReportCycle, section: Section) -> None:
    """Load what merging one section reads — its assignments with their units and contributions, the
    revisions of the approved ones — in a fixed number of queries; the cycle's other texts stay unread
    (``merge.load_cycle_material`` for one section)."""
    from ..models import Assignment, Contribution, Revision, Unit
    from ..publish.merge import _wire
    from .outline import load_outline

    load_outline(cycle)
    assignments = list(db.session.scalars(
        select(Assignment).where(Assignment.section_id == section.id).order_by(Assignment.id)))
    units = {u.id: u for u in db.session.scalars(select(Unit).where(Unit.id.in_(
        select(Assignment.unit_id).where(Assignment.section_id == section.id))))}
    contributions = {c.assignment_id: c for c in db.session.scalars(
        select(Contribution).join(Assignment, Assignment.id == Contribution.assignment_id)
        .where(Assignment.section_id == section.id))}
    revisions: dict[int, list] = {}
    for row in db.session.scalars(
            select(Revision).join(Contribution, Contribution.id == Revision.contribution_id)
            .join(Assignment, Assignment.id == Contribution.assignment_id)
            .where(Assignment.section_id == section.id, Contribution.state == "approved")
            .order_by(Revision.contribution_id, Revision.number)):
        revisions.setdefault(row.contribution_id, []).append(row)
    for a in assignments:
        contribution = contributions.get(a.id)
        _wire(a, "unit", units.get(a.unit_id))
        _wire(a, "contribution", contribution)
        if contribution is not None and contribution.state == "approved":
            _wire(contribution, "revisions", revisions.get(contribution.id, []))
    _wire(section, "assignments", assignments)


def section_view(cycle: ReportCycle, section: Section, numbers: CitedTexts | None = None) -> SectionView:
    """One section as its own compile page shows it: its material, merged text and sources only."""
    load_section_material(cycle, section)
    numbers = numbers or CitedTexts(cycle)
    draft = db.session.scalars(select(SectionDraft).where(SectionDraft.cycle_id == cycle.id,
                                                          SectionDraft.section_id == section.id)).first()
    approved = approved_contributions(section)
    return SectionView(
        section=section, contributions=section_contributions(section), approved=approved, draft=draft,
        prefill=prefill(section, numbers), material={c.id: numbers.paragraphs_html(c) for c in approved},
        sources=section_sources(section, numbers))


def appendix_enabled(cycle: ReportCycle) -> bool:
    """Whether the current draft carries the indicator appendix (the latest version says)."""
    latest = latest_version(cycle)
    return latest is not None and (latest.document or {}).get("appendix") is not None


def appendix_rows(cycle: ReportCycle, numbers: CitedTexts | None = None) -> list[dict]:
    """The indicator summary with the approved values, the same numbers the text prints."""
    from ..figures.summary import appendix_rows as summary_rows

    numbers = numbers or CitedTexts(cycle)
    rows = summary_rows(cycle, numbers.book)
    sections = {s.id: s for s in cycle.sections}
    by_code = numbers.book.indicators
    return [{"no": r["no"], "section": _section_label(sections.get(by_code[r["code"]].section_id)),
             "name": r["name"], "measure": r["measure"], "value": r["value"], "code": r["code"]}
            for r in rows]


def _section_label(section) -> str:
    """The section as the printed table names it, e.g. 一、（三）规范公正文明执法."""
    if section is None:
        return ""
    if not section.title:
        return "开篇"
    return "".join(s.number for s in section.path) + section.title


def current_document(cycle: ReportCycle, appendix: bool | None = None) -> ReportDocument:
    """The merged draft as it stands: edited sections as saved, the others pre-filled.

    ``appendix`` overrides whether the indicator appendix is included (default: as the draft has it).
    """
    load_cycle_material(cycle)
    texts = {section_id: row.body for section_id, row in section_drafts(cycle).items()}
    numbers = CitedTexts(cycle)
    if appendix is None:
        appendix = appendix_enabled(cycle)
    rows = appendix_rows(cycle, numbers) if appendix else None
    return assemble(cycle, texts, numbers=numbers, appendix=rows)


def versions(cycle: ReportCycle) -> list[ReportDraftVersion]:
    return list(db.session.scalars(
        select(ReportDraftVersion).where(ReportDraftVersion.cycle_id == cycle.id)
        .order_by(ReportDraftVersion.number)
    ))


def latest_version(cycle: ReportCycle) -> ReportDraftVersion | None:
    return db.session.scalars(
        select(ReportDraftVersion).where(ReportDraftVersion.cycle_id == cycle.id)
        .order_by(ReportDraftVersion.number.desc()).limit(1)
    ).first()


def latest_versions(cycles: list[ReportCycle]) -> dict[int, ReportDraftVersion]:
    """The latest draft version of each of ``cycles`` that has one, by cycle id (one query)."""
    if not cycles:
        return {}
    newest = (select(ReportDraftVersion.cycle_id, func.max(ReportDraftVersion.number).label("number"))
              .where(ReportDraftVersion.cycle_id.in_([c.id for c in cycles]))
              .group_by(ReportDraftVersion.cycle_id).subquery())
    rows = db.session.scalars(select(ReportDraftVersion).join(
        newest, (newest.c.cycle_id == ReportDraftVersion.cycle_id) & (newest.c.number == ReportDraftVersion.number)))
    return {row.cycle_id: row for row in rows}


def get_version(cycle: ReportCycle, number: int) -> ReportDraftVersion:
    row = db.session.scalars(select(ReportDraftVersion).where(
        ReportDraftVersion.cycle_id == cycle.id, ReportDraftVersion.number == number)).first()
    if row is None:
        raise NotFound(f"没有第{number}稿。")
    return row


def record_version(cycle: ReportCycle, actor, reason: str, appendix: bool | None = None) -> ReportDraftVersion:
    """Keep the current merged draft as a new version, unless it equals the latest one."""
    with db.session.no_autoflush:
        document = current_document(cycle, appendix)
        text = render_text(document)
        latest = latest_version(cycle)
    if latest is not None and latest.text == text:
        return latest
    row = ReportDraftVersion(
        cycle_id=cycle.id, number=(latest.number + 1) if latest else 1, reason=reason,
        text=text, document=document.to_dict(), created_by_id=getattr(actor, "id", None),
        created_at=utcnow(),
    )
    db.session.add(row)
    return row


# ------------------------------------------------------------------ editing


def _check_edit(cycle: ReportCycle, section: Section, actor) -> None:
    policy.require(actor, "cycle.compile", cycle, "只有管理员可以汇总编辑年度报告。")
    if cycle.state not in EDITABLE_STATES:
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，只能在汇总编辑中（或发布后准备更正时）"
                          "修改合并稿。")
    if section.cycle_id != cycle.id:
        raise NotFound("该章节不属于这份年度报告。")


def _flush():
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict("该章节的合并稿刚被他人修改，请刷新页面后再试。") from None


def save_section_text(cycle: ReportCycle, section: Section, actor, body: str,
                      expected_version: int | None = None) -> SectionDraft:
    """Save the merged text of a section (保存合并稿) and keep the new draft version.

    ``expected_version`` is the version of the section's merged text the form was loaded at (0 when
    it was still the pre-filled text).

    :raise Conflict: somebody saved the section since the form was loaded; nothing is written.
    """
    _check_edit(cycle, section, actor)
    body = (body or "").replace("\r\n", "\n").strip()
    if len(body) > MAX_SECTION_CHARS:
        raise DomainError(f"合并稿过长（{len(body)}字），每个章节最多{MAX_SECTION_CHARS}字。")
    row = section_drafts(cycle).get(section.id)
    loaded = row.version if row is not None else 0
    if expected_version is not None and expected_version != loaded:
        raise Conflict("该章节的合并稿已被他人修改，您的内容尚未保存。请刷新页面核对后再保存。")
    load_cycle_material(cycle)
    numbers = CitedTexts(cycle)
    if row is None:
        if body == prefill(section, numbers):
            return None
        row = SectionDraft(cycle_id=cycle.id, section_id=section.id)
        db.session.add(row)
    elif body == row.body:
        return row
    row.body = body
    row.sources = section_sources(section, numbers)
    row.updated_at = utcnow()
    row.updated_by_id = actor.id
    _flush()
    record_version(cycle, actor, f"编辑“{section.numbered_title}”")
    record(actor, "compile.save", f"section:{section.id}", chars=len(body))
    _flush()
    return row


def reset_section_text(cycle: ReportCycle, section: Section, actor) -> None:
    """Drop the edits of a section: its text is pre-filled again from the approved material."""
    _check_edit(cycle, section, actor)
    row = section_drafts(cycle).get(section.id)
    if row is None:
        return
    db.session.delete(row)
    _flush()
    record_version(cycle, actor, f"“{section.numbered_title}”恢复为报送材料汇总")
    record(actor, "compile.reset", f"section:{section.id}")
    _flush()


def set_appendix(cycle: ReportCycle, actor, enabled: bool) -> ReportDraftVersion | None:
    """Include (or drop) the indicator appendix (附件：统计指标汇总表) in the draft, as a new version.

    :raise DomainError: the cycle has no indicators, or the draft cannot be edited now.
    """
    from ..models.indicator import Indicator

    policy.require(actor, "cycle.compile", cycle, "只有管理员可以设置是否附统计指标汇总表。")
    if cycle.state not in EDITABLE_STATES:
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，只能在汇总编辑中（或发布后准备更正时）"
                          "设置是否附统计指标汇总表。")
    enabled = bool(enabled)
    if enabled == appendix_enabled(cycle):
        return None
    if enabled and db.session.scalar(select(Indicator.id).where(Indicator.cycle_id == cycle.id).limit(1)) is None:
        raise DomainError("本年度报告没有定义统计指标，无法附统计指标汇总表。")
    version = record_version(cycle, actor, "附统计指标汇总表" if enabled else "取消附统计指标汇总表",
                             appendix=enabled)
    record(actor, "compile.appendix", f"cycle:{cycle.id}", enabled=enabled)
    _flush()
    return version


def figure_changes(cycle: ReportCycle) -> list:
    """Values changed after approval and not approved again, with the sentences citing them.

    They stay out of the report (it prints the approved numbers) until the unit's material is
    approved again; the compile page lists them so the admin knows which sections to rebuild then.
    """
    from .figures import changes_after_approval

    return changes_after_approval(cycle)


# ------------------------------------------------------------------ sign-off and publication


def request_signoff(cycle: ReportCycle, actor, comment: str | None = None):
    """Ask the leader to sign (提请签发) the latest version of the merged draft.

    :raise DomainError: see :func:`check_before_signoff` (run by the cycle operation itself).
    """
    # The version is recorded by the transition listener below, inside the same transaction.
    return cycle_ops.request_signoff(cycle, actor, comment=comment)


def check_before_signoff(cycle: ReportCycle, actor) -> None:
    """Refuse 提请签发 of a draft with stale sections, no text, or numbers without an approved value
    (registered in ``services.cycles.SIGNOFF_CHECKS``, so the CLI is held to it as well)."""
    stale = [v.section.numbered_title for v in section_views(cycle) if v.stale]
    if stale and cycle.state == "compiling":
        raise DomainError("以下章节的报送材料在编辑后发生了变化，请先按最新材料重新生成："
                          + "、".join(stale))
    if cycle.state == "compiling":
        document = current_document(cycle)
        if not document.opening and not any(block.paragraphs for block in document.blocks):
            raise DomainError("合并稿没有任何正文，不能提请签发。")
        unfilled = list(dict.fromkeys(m.group(0) for p in document.paragraphs()
                                      for m in UNFILLED_MARK.finditer(p)))
        if unfilled:
            raise DomainError("合并稿引用的以下数值尚无审核通过的数据，请补齐材料或修改合并稿后再提请签发："
                              + "、".join(unfilled))


def sign_report(cycle: ReportCycle, actor, version_number: int | None, comment: str | None = None):
    """Sign (签发) the version the leader read; refused when a newer version exists.

    Signing a correction publishes it (see ``_on_transition``). The cycle row is locked first, so a
    double submission signs once and the other gets the state message.
    """
    lock_row(cycle)
    latest = latest_version(cycle)
    if latest is not None and version_number is not None and version_number != latest.number:
        raise Conflict(f"您阅读的是第{version_number}稿，当前最新为第{latest.number}稿，请重新阅读后再签发。")
    return cycle_ops.sign_cycle(cycle, actor, comment=comment)


def return_report(cycle: ReportCycle, actor, comment: str | None):
    """Return the draft to compiling (退回修改) with the leader's comments."""
    return cycle_ops.return_signoff(cycle, actor, comment=comment)


def publish_report(cycle: ReportCycle, actor) -> Publication:
    """Publish (发布): fire ``publish``; the hook freezes the signed version in the same transaction."""
    cycle_ops.publish_cycle(cycle, actor)
    publication = latest_publication(cycle)
    if publication is None:  # pragma: no cover - the hook is registered at import
        raise DomainError("发布快照未能生成。")
    return publication


def render_outputs(document: ReportDocument, with_pdf: bool = True, published_at=None) -> dict:
    """Every published format of a document; ``pdf`` is None when PDFs cannot be rendered here.

    ``published_at`` is written into the DOCX's properties as its created and modified time.
    """
    config = current_app.config
    outputs = {
        "txt": render_text(document),
        "html": render_html(document, font_stacks(config["DOCX_FONTS"], config["PDF_FONTS"])),
        "docx": render_docx(document, config["DOCX_FONTS"], published_at),
        "pdf": None,
    }
    if with_pdf:
        try:
            outputs["pdf"] = render_pdf(render_html(document, font_stacks(config["PDF_FONTS"])))
        except PdfUnavailable as exc:
            logger.warning("PDF not rendered: %s", exc.detail)
    return outputs


def render_format(document: ReportDocument, fmt: str) -> bytes:
    """One format of a document as bytes.

    :raise PdfUnavailable: PDF asked for but WeasyPrint/pango is missing.
    """
    config = current_app.config
    if fmt == "txt":
        return render_text(document).encode("utf-8")
    if fmt == "html":
        return render_html(document, font_stacks(config["DOCX_FONTS"], config["PDF_FONTS"])).encode("utf-8")
    if fmt == "docx":
        return render_docx(document, config["DOCX_FONTS"])
    if fmt == "pdf":
        return render_pdf(render_html(document, font_stacks(config["PDF_FONTS"])))
    raise DomainError(f"不支持的格式“{fmt}”，可选：{'、'.join(FORMATS)}。")


def publications(cycle: ReportCycle) -> list[Publication]:
    return list(db.session.scalars(
        select(Publication).where(Publication.cycle_id == cycle.id).order_by(Publication.version)
    ))


def latest_publication(cycle: ReportCycle) -> Publication | None:
    return db.session.scalars(
        select(Publication).where(Publication.cycle_id == cycle.id)
        .order_by(Publication.version.desc()).limit(1)
    ).first()


def plain_text_sha256(document: ReportDocument) -> str:
    """The SHA-256 of ``document``'s plain-text version, as a publication records it (text_sha256).

    The leader sees it before signing a correction; Word and PDF carry the publication time, so their
    digests exist only after publishing."""
    return sha256_hex(render_text(document))


def _freeze(cycle: ReportCycle, actor, version: ReportDraftVersion, note: str | None) -> Publication:
    document = ReportDocument.from_dict(version.document)
    published_at = utcnow()
    # The PDF takes seconds: the job in publish/pdf_job.py renders it from this snapshot afterwards.
    outputs = render_outputs(document, with_pdf=False, published_at=published_at)
    number = (db.session.scalar(
        select(func.max(Publication.version)).where(Publication.cycle_id == cycle.id)) or 0) + 1
    publication = Publication(
        cycle_id=cycle.id, version=number, draft_version_id=version.id, year=cycle.year,
        region=cycle.region, title=document.title, correction_note=note,
        text=outputs["txt"], html=outputs["html"], docx=outputs["docx"], pdf=None,
        text_sha256=plain_text_sha256(document), html_sha256=sha256_hex(outputs["html"]),
        docx_sha256=sha256_hex(outputs["docx"]), pdf_sha256=None,
        pdf_status="pending" if pdf_available() else "none",
        published_by_id=getattr(actor, "id", None), published_at=published_at,
    )
    db.session.add(publication)
    db.session.flush()
    return publication


def freeze_publication(cycle: ReportCycle, actor) -> Publication:
    """PUBLISH_HOOKS entry: freeze the signed version as publication version 1 (or the next one).

    :raise DomainError: the merged draft changed after it was signed.
    """
    with db.session.no_autoflush:
        signed = latest_version(cycle)
        current = render_text(current_document(cycle))
    if signed is None:
        signed = record_version(cycle, actor, "发布")
        db.session.flush()
    elif signed.text != current:
        raise DomainError("合并稿在签发后发生了变化，不能发布。请重新提请签发。")
    publication = _freeze(cycle, actor, signed, None)
    record(actor, "publication.publish", f"cycle:{cycle.id}", version=publication.version,
           sha256=publication.text_sha256)
    return publication


def correction_note(cycle: ReportCycle) -> str | None:
    """The note (更正说明) of the latest correction request: the comment of its transition."""
    log = db.session.scalars(
        select(TransitionLog).where(TransitionLog.cycle_id == cycle.id,
                                    TransitionLog.event == "request_correction")
        .order_by(TransitionLog.id.desc()).limit(1)
    ).first()
    return log.comment if log is not None else None


def _check_seen(cycle: ReportCycle, seen_publication: int | None, seen_draft: int | None) -> None:
    """Refuse a form loaded before the latest publication or draft version (read under the lock)."""
    published = latest_publication(cycle)
    if seen_publication is not None and published is not None and published.version != seen_publication:
        raise Conflict(f"已有新版本（第{published.version}版）发布，您核对的是第{seen_publication}版。"
                       "请刷新页面，核对与最新版本的差异后再提请签发更正。")
    latest = latest_version(cycle)
    if seen_draft is not None and latest is not None and latest.number != seen_draft:
        raise Conflict(f"合并稿已有新的修改（第{latest.number}稿），您核对的是第{seen_draft}稿。"
                       "请刷新页面核对后再提请签发更正。")


def check_correction(cycle: ReportCycle) -> None:
    """Refuse a correction with stale sections or without any change against the published version."""
    stale = [v.section.numbered_title for v in section_views(cycle) if v.stale]
    if stale:
        raise DomainError("以下章节的报送材料在编辑后发生了变化，请先按最新材料重新生成："
                          + "、".join(stale))
    previous = latest_publication(cycle)
    with db.session.no_autoflush:
        current = render_text(current_document(cycle))
    if previous is not None and previous.text == current:
        raise DomainError("合并稿与当前发布版本相同，没有需要更正的内容。请先在汇总编辑中修改。")


def request_correction(cycle: ReportCycle, actor, note: str | None, seen_publication: int | None = None,
                       seen_draft: int | None = None) -> TransitionLog:
    """Ask the leader to sign a correction (提请签发更正) of the published report, with its note.

    ``seen_publication`` and ``seen_draft`` are the publication version and draft number the admin's
    form showed. The cycle row is locked first, so of admins submitting at once (or one submitting
    twice) exactly one request is made and the others get a message.

    :raise DomainError: not published, no note, nothing changed, stale sections, or a stale form.
    """
    policy.require(actor, "cycle.compile", cycle, "只有管理员可以提请签发更正。")
    lock_row(cycle)
    if cycle.state == "correcting":
        raise Conflict("更正已提请签发，正在等待签发领导审阅，请勿重复提交。")
    if cycle.state != "published":
        raise DomainError("只有已发布的年度报告才能更正。")
    _check_seen(cycle, seen_publication, seen_draft)
    note = (note or "").strip()
    if not note:
        raise DomainError("提请签发更正必须填写更正说明：更正了什么、为什么更正。")
    if len(note) > 2000:
        raise DomainError(f"更正说明过长（{len(note)}字），最多2000字。")
    check_correction(cycle)
    # The draft version the leader will read is recorded by the transition listener below.
    log = fire(cycle, "request_correction", actor, comment=note)
    record(actor, "cycle.request_correction", f"cycle:{cycle.id}", note=note)
    db.session.flush()
    return log


def _publish_correction(cycle: ReportCycle, actor) -> Publication:
    """Freeze the signed correction as the next publication version, with the requested note."""
    signed = latest_version(cycle) or record_version(cycle, actor, "签发更正")
    db.session.flush()
    publication = _freeze(cycle, actor, signed, correction_note(cycle))
    record(actor, "publication.correct", f"cycle:{cycle.id}", version=publication.version,
           sha256=publication.text_sha256, note=publication.correction_note)
    return publication


# ------------------------------------------------------------------ export and lookup


def resolve_cycle(ref) -> ReportCycle:
    """Find a cycle by its id, or by a four-digit year when only one cycle has that year."""
    value = str(ref or "").strip()
    number = optional_int(value)
    if number is None:
        raise DomainError(f"“{value[:40]}”不是有效的年度报告：请写报告编号（如 3）或年份（如 2024）。")
    if number >= 1900:
        found = list(db.session.scalars(select(ReportCycle).where(ReportCycle.year == number)
                                        .order_by(ReportCycle.id)))
        if not found:
            raise NotFound(f"没有{number}年的年度报告。")
        if len(found) > 1:
            listing = "、".join(f"{c.id}（{c.region}）" for c in found)
            raise DomainError(f"{number}年有多份年度报告，请改用编号：{listing}。")
        return found[0]
    cycle = db.session.get(ReportCycle, number)
    if cycle is None:
        raise NotFound(f"没有编号为{number}的年度报告。")
    return cycle


def get_publication(cycle: ReportCycle, version: int) -> Publication:
    row = db.session.scalars(select(Publication).where(
        Publication.cycle_id == cycle.id, Publication.version == version)).first()
    if row is None:
        existing = "、".join(str(p.version) for p in publications(cycle)) or "无"
        raise NotFound(f"该年度报告没有第{version}版发布版本（已发布版本：{existing}）。")
    return row


def download_name(cycle_or_pub, fmt: str, draft: bool = False) -> str:
    """The report's file name; typed titles lose control and bidi characters (U+202E would show
    "fdp.exe" as "exe.pdf") like every download name (attachments.clean_filename)."""
    if isinstance(cycle_or_pub, Publication):
        suffix = f"（第{cycle_or_pub.version}版）" if cycle_or_pub.version > 1 else ""
        return clean_filename(f"{full_title(cycle_or_pub.region, cycle_or_pub.title)}{suffix}.{FORMATS[fmt][1]}")
    tag = "（草稿）" if draft else ""
    return clean_filename(f"{full_title(cycle_or_pub.region, cycle_or_pub.title)}{tag}.{FORMATS[fmt][1]}")


def published_content(publication: Publication, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise DomainError(f"不支持的格式“{fmt}”，可选：{'、'.join(FORMATS)}。")
    if fmt == "pdf" and publication.pdf_status in ("pending", "failed"):
        raise Conflict("该版本的 PDF 正在生成，请稍后刷新再下载。Word、网页和纯文本已可下载。")
    content = publication.content(fmt)
    if content is None:
        raise NotFound("该版本没有 PDF：发布时服务器未安装 PDF 组件。请下载 Word、网页或纯文本版。")
    return content


def export_report(cycle: ReportCycle, fmt: str, version: int | None = None) -> tuple[bytes, str]:
    """The bytes and file name of the current draft, or of published version ``version``."""
    if fmt not in FORMATS:
        raise DomainError(f"不支持的格式“{fmt}”，可选：{'、'.join(FORMATS)}。")
    if version is not None:
        publication = get_publication(cycle, version)
        return published_content(publication, fmt), download_name(publication, fmt)
    return render_format(current_document(cycle), fmt), download_name(cycle, fmt, draft=True)


def published_by_year(region_id: int | None = None) -> list[tuple[int, list[tuple[ReportCycle, list[Publication]]]]]:
    """Every published report (of one region when ``region_id`` is given), newest year first, each
    with all its versions (newest first)."""
    query = select(Publication).order_by(Publication.year.desc(), Publication.region, Publication.version.desc())
    if region_id is not None:
        query = query.join(ReportCycle, ReportCycle.id == Publication.cycle_id).where(
            ReportCycle.region_id == region_id)
    return _by_year(list(db.session.scalars(query)))


def _by_year(rows: list[Publication]) -> list[tuple[int, list[tuple[ReportCycle, list[Publication]]]]]:
    years: dict[int, dict[int, list[Publication]]] = {}
    for row in rows:
        years.setdefault(row.year, {}).setdefault(row.cycle_id, []).append(row)
    return [
        (year, [(pubs[0].cycle, pubs) for pubs in by_cycle.values()])
        for year, by_cycle in years.items()
    ]


def published_by_region(region_id: int | None = None) -> list[tuple[Region, list]]:
    """Every published report under its region's name: [(region, [(year, [(cycle, versions)])])],
    regions from the top level down (then by their order and code), in two statements whatever
    the number of regions; ``region_id``: that region's only. The files themselves are not read."""
    from sqlalchemy.orm import contains_eager, defer

    from ..models.org import LEVEL_RANK

    query = (select(Publication).join(ReportCycle, ReportCycle.id == Publication.cycle_id)
             .options(contains_eager(Publication.cycle), *(defer(getattr(Publication, name))
                                                           for name in ("text", "html", "docx", "pdf")))
             .order_by(Publication.year.desc(), Publication.region, Publication.version.desc()))
    if region_id is not None:
        query = query.where(ReportCycle.region_id == region_id)
    rows = list(db.session.scalars(query))
    ids = {row.cycle.region_id for row in rows}
    regions = sorted(db.session.scalars(select(Region).where(Region.id.in_(ids))) if ids else [],
                     key=lambda r: (LEVEL_RANK.get(r.level, 9), r.sort_order, r.code))
    by_region: dict[int, list[Publication]] = {}
    for row in rows:
        by_region.setdefault(row.cycle.region_id, []).append(row)
    return [(region, _by_year(by_region[region.id])) for region in regions]


# ------------------------------------------------------------------ wiring


def _on_transition(sender, event=None, actor=None, from_state=None, comment=None, **_):
    """Keep a draft version when compiling starts and when sign-off (of a correction too) is
    requested; signing a correction publishes it, in the same transaction (web and CLI alike)."""
    if not isinstance(sender, ReportCycle):
        return
    if event == "compile":
        record_version(sender, actor, "进入汇总编辑，按已通过材料生成")
    elif event == "request_signoff":
        record_version(sender, actor, "提请签发")
    elif event == "request_correction":
        record_version(sender, actor, f"提请签发更正：{comment or ''}")
    elif event == "sign" and from_state == "correcting":
        _publish_correction(sender, actor)


def _request_correction_operation(cycle: ReportCycle, actor, comment: str | None = None):
    return request_correction(cycle, actor, comment)


def register() -> None:
    """Connect the publish hook and the transition listener (idempotent)."""
    if freeze_publication not in cycle_ops.PUBLISH_HOOKS:
        cycle_ops.PUBLISH_HOOKS.append(freeze_publication)
    if check_before_signoff not in cycle_ops.SIGNOFF_CHECKS:
        cycle_ops.SIGNOFF_CHECKS.append(check_before_signoff)
    # fazhi-flow transition … request_correction runs the same checks and lock as the web page.
    cycle_ops.OPERATIONS.setdefault("request_correction", _request_correction_operation)
    transition_fired.connect(_on_transition, weak=False)


register()
