"""Assemble a report document from a cycle's outline and its approved contributions.

Only approved material is merged: for each section the approved contributions are taken lead unit
first, then support units, each group in the units' order; their reviewed text (the revision that was
approved) is joined paragraph by paragraph. Numbers the text cites (``{{code}}``) are printed from
the values as approved (see ``numbers``), so the merged text is plain prose. An admin may replace a
section's merged text; such overrides are passed in by the caller.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..figures import bound as B
from .document import Block, ReportDocument, split_paragraphs
from .numbers import ApprovedFigureBook, ApprovedTexts


def _wire(obj, name: str, value) -> None:
    # A relationship already loaded in this session is kept: it may hold changes not yet flushed.
    if name not in obj.__dict__:
        set_committed_value(obj, name, value)


def load_cycle_material(cycle) -> None:
    """Load everything merging ``cycle`` reads, in a fixed number of queries, and wire it together.

    The outline (sections with their parents and children), every assignment with its unit and
    contribution, and the revisions of approved contributions are read in bulk; the collections the
    functions below follow (``section.assignments``, ``assignment.contribution``,
    ``contribution.revisions``, ``assignment.unit``) are filled from those rows. Other many-to-one
    links (``contribution.unit``, ``contribution.assignment`` …) need no wiring: their targets are
    held in the session, where a lazy load finds them without a query. Merging a city-sized cycle costs the same handful of
    queries as a small one.
    """
    from ..models import Assignment, Contribution, Revision, Section, Unit
    from ..services.outline import load_outline

    nodes = load_outline(cycle)
    sections = {n.section.id: n.section for n in nodes}
    in_cycle = select(Assignment.id).join(Section, Section.id == Assignment.section_id) \
        .where(Section.cycle_id == cycle.id)
    assignments = list(db.session.scalars(
        select(Assignment).where(Assignment.id.in_(in_cycle)).order_by(Assignment.id)))
    units = {u.id: u for u in db.session.scalars(select(Unit).where(Unit.id.in_(
        select(Assignment.unit_id).where(Assignment.id.in_(in_cycle)))))}
    contributions = {c.assignment_id: c for c in db.session.scalars(
        select(Contribution).where(Contribution.cycle_id == cycle.id))}
    revisions: dict[int, list] = {}
    for row in db.session.scalars(
            select(Revision).join(Contribution, Contribution.id == Revision.contribution_id)
            .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved")
            .order_by(Revision.contribution_id, Revision.number)):
        revisions.setdefault(row.contribution_id, []).append(row)

    by_section: dict[int, list] = {sid: [] for sid in sections}
    for a in assignments:
        by_section.setdefault(a.section_id, []).append(a)
        contribution = contributions.get(a.id)
        _wire(a, "unit", units.get(a.unit_id))  # also keeps the unit alive in the session's weak map
        _wire(a, "contribution", contribution)
        if contribution is not None and contribution.state == "approved":
            _wire(contribution, "revisions", revisions.get(contribution.id, []))
    for sid, section in sections.items():
        _wire(section, "assignments", by_section.get(sid, []))


class CitedTexts(ApprovedTexts):
    """``ApprovedTexts`` that works out only the figures a text cites, each section total once.

    The base class asks the figure book for every indicator of the cycle (and every total) for each
    contribution; at 120 indicators and 300 units per total that is most of the time of a merge.
    """

    def __init__(self, cycle):
        super().__init__(cycle)
        self._totals: dict[str, object] = {}

    @property
    def book(self) -> ApprovedFigureBook:
        # Merging only reads figures: plain value rows, not ORM objects (FigureBook readonly).
        if self._book is None:
            self._book = ApprovedFigureBook(self.cycle, readonly=True)
            self._names = {code: ind.name for code, ind in self._book.indicators.items()}
        return self._book

    def _values(self, contribution) -> dict:
        from ..figures.evaluate import _Ambiguous

        cached = self._values_cache.get(contribution.id)
        if cached is not None:
            return cached
        book = self.book
        if contribution.id not in book.contributions:
            book.contributions[contribution.id] = contribution
        values: dict = {}
        for citation in B.citations(self.raw(contribution)):
            indicator = book.indicators.get(citation.code)
            if indicator is None or citation.key in values:
                continue
            if citation.is_sum:
                if citation.key not in self._totals:
                    self._totals[citation.key] = book.total(indicator)
                values[citation.key] = self._totals[citation.key]
            else:
                try:
                    values[citation.key] = book.resolve(citation.code, contribution)[0]
                except _Ambiguous:
                    values[citation.key] = None
        self._values_cache[contribution.id] = values
        return values


def _order_key(contribution):
    assignment = contribution.assignment
    return (
        0 if assignment.role == "lead" else 1,
        contribution.unit.sort_order,
        assignment.id,
    )


def section_contributions(section) -> list:
    """All contributions of a section, lead unit first, then support units, in the units' order."""
    found = [a.contribution for a in section.assignments if a.contribution is not None]
    return sorted(found, key=_order_key)


def approved_contributions(section) -> list:
    return [c for c in section_contributions(section) if c.state == "approved"]


def approved_text(contribution) -> str:
    """The text that was approved: the latest revision (what the reviewer read), else the body."""
    if contribution.state != "approved":
        raise ValueError("only approved material can be merged")
    if contribution.revisions:
        return contribution.revisions[-1].body or ""
    return contribution.body or ""


# Half-width forms of the punctuation in headings, as text copied from a PDF or typed on a Latin
# keyboard has them; compared one character for one, so positions stay the same.
_FULL_WIDTH = str.maketrans({"(": "（", ")": "）", ",": "，", ":": "：", ";": "；"})
_HEADING_END = re.compile(r"^[\s。．.：:]*")


def strip_own_heading(section, paragraphs: list[str]) -> list[str]:
    """Drop the section's own heading where a unit pasted it above or before its text.

    The outline prints the heading (numbered) itself, so "（一）标题。正文" or "(一)标题" on its own line
    would print it twice. The heading is removed when it follows the section's own number, or when it
    stands alone or ends at a full stop; a paragraph that merely begins with the same words keeps them.
    """
    title = (section.title or "").strip()
    if not title or not paragraphs:
        return paragraphs
    first = paragraphs[0]
    norm = first.translate(_FULL_WIDTH)
    heading = title.translate(_FULL_WIDTH)
    number = (section.number or "").translate(_FULL_WIDTH)
    for prefix, numbered in ((number + heading, True), (heading, False)):
        if not prefix or not norm.startswith(prefix):
            continue
        rest = first[len(prefix):]
        if not numbered and rest and rest[0] not in "。．.：:":
            continue
        rest = rest[_HEADING_END.match(rest).end():].strip()
        return ([rest] if rest else []) + paragraphs[1:]
    return paragraphs


def source_of(contribution, numbers: ApprovedTexts | None = None) -> dict:
    """Identify the approved text a merged section was built from (to notice later changes).

    ``figures`` (only when the text cites some) holds the numbers as printed, so an approved number
    that changes later also marks the edited section stale.
    """
    revision = contribution.revisions[-1].number if contribution.revisions else 0
    source = {"contribution": contribution.id, "unit": contribution.unit.name, "revision": revision}
    cited = (numbers or ApprovedTexts(contribution.cycle)).cited(contribution)
    if cited:
        source["figures"] = cited
    return source


def section_sources(section, numbers: ApprovedTexts | None = None) -> list[dict]:
    numbers = numbers or ApprovedTexts(section.cycle)
    return [source_of(c, numbers) for c in approved_contributions(section)]


def prefill(section, numbers: ApprovedTexts | None = None) -> str:
    """The section's merged text pre-filled from its approved contributions, in order, with the
    approved numbers printed in place of their citations."""
    numbers = numbers or ApprovedTexts(section.cycle)
    paragraphs: list[str] = []
    for contribution in approved_contributions(section):
        paragraphs.extend(strip_own_heading(section, split_paragraphs(numbers.text(contribution))))
    return "\n".join(paragraphs)


def assemble(cycle, texts: Mapping[int, str] | None = None, issue_date=None,
             numbers: ApprovedTexts | None = None, appendix: list[dict] | None = None) -> ReportDocument:
    """Build the report of ``cycle``.

    ``texts`` maps section ids to edited merged text; other sections use :func:`prefill`. Top-level
    sections without a heading that come before the first heading form the opening paragraphs.
    ``appendix`` (rows of the indicator summary) adds the table after the closing block.
    """
    texts = texts or {}
    numbers = numbers or ApprovedTexts(cycle)
    document = ReportDocument(
        title=cycle.title,
        issuers=cycle.issuer_list,
        issue_date=issue_date or cycle.issue_date,
        appendix=appendix,
    )

    def text_of(section) -> list[str]:
        if section.id in texts:
            return split_paragraphs(texts[section.id])
        return split_paragraphs(prefill(section, numbers))

    in_opening = True
    for top in cycle.top_sections():
        for section in top.walk():
            paragraphs = text_of(section)
            if in_opening and section is top and not section.title:
                document.opening.extend(paragraphs)
                continue
            in_opening = False
            if not section.title and not paragraphs:
                continue
            document.blocks.append(Block(
                level=section.depth,
                number=section.number,
                heading=(section.title or "").strip(),
                paragraphs=paragraphs,
                run_in=bool(section.run_in and section.title),
                code=section.code,
            ))
    return document
