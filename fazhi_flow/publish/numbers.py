"""Bound numbers in the merged report: every ``{{code}}`` / ``{{sum(code)}}`` of approved material is
printed from the values *as approved*.

Only approved content can reach a published report. A unit's text is merged from the revision the
reviewer approved, so its numbers must be the ones that revision carried (``Revision.data["figures"]``,
kept at submission) — never a value edited later and not yet approved again. For a contribution that is
not approved now (for example reopened after approval) the value last approved
(``IndicatorValue.approved_value``) is used, and a value that was never approved is not used at all.
Sums (``sum(code)``) add up the approved values only.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from markupsafe import Markup, escape
from sqlalchemy import select

from ..extensions import db
from ..figures import bound as B
from ..figures.evaluate import FigureBook
from ..figures.numbers import format_number


def _decimal(raw) -> Decimal | None:
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class ApprovedFigureBook(FigureBook):
    """A ``FigureBook`` whose ``value`` is the approved value, so ``values_for``, ``total`` and the
    indicator summary all read approved figures."""

    def __init__(self, cycle, readonly: bool = False):
        super().__init__(cycle, readonly)
        self.revision_figures = self._load_revision_figures(cycle)

    def _load_revision_figures(self, cycle) -> dict[int, dict]:
        """The figures of the latest revision of each approved contribution: what the reviewer approved."""
        from ..models import Contribution, Revision

        found: dict[int, dict] = {}
        if any(c.state == "approved" for c in self.contributions.values()):
            rows = db.session.execute(
                select(Revision.contribution_id, Revision.data)
                .join(Contribution, Contribution.id == Revision.contribution_id)
                .where(Contribution.cycle_id == cycle.id, Contribution.state == "approved")
                .order_by(Revision.contribution_id, Revision.number))
            for cid, data in rows:
                # Ordered by number: the last one seen is the latest revision.
                found[cid] = (data or {}).get("figures")
        return found

    def value(self, contribution, indicator) -> Decimal | None:
        figures = self.revision_figures.get(contribution.id) if contribution.state == "approved" else None
        if figures is not None and indicator.code in figures:
            return _decimal(figures[indicator.code])
        row = self.values.get((contribution.id, indicator.id))
        return None if row is None else _decimal(row.approved_value)


class ApprovedTexts:
    """The approved text of each contribution with its numbers filled in; one figure load per cycle,
    made only when some text cites a figure."""

    def __init__(self, cycle):
        self.cycle = cycle
        self._book: ApprovedFigureBook | None = None
        self._names: dict | None = None
        self._values_cache: dict[int, dict] = {}

    @property
    def book(self) -> ApprovedFigureBook:
        if self._book is None:
            self._book = ApprovedFigureBook(self.cycle)
            self._names = {code: ind.name for code, ind in self._book.indicators.items()}
        return self._book

    def _values(self, contribution) -> dict:
        if contribution.id not in self._values_cache:
            book = self.book
            if contribution.id not in book.contributions:
                book.contributions[contribution.id] = contribution
            self._values_cache[contribution.id] = book.values_for(contribution)
        return self._values_cache[contribution.id]

    def raw(self, contribution) -> str:
        from .merge import approved_text

        return approved_text(contribution)

    def text(self, contribution) -> str:
        """The approved text as printed: plain text, every citation replaced by its number."""
        raw = self.raw(contribution)
        if not B.citations(raw):
            return raw
        return B.render_bound(raw, self._values(contribution), self._names)

    def paragraphs_html(self, contribution) -> list[Markup]:
        """Escaped paragraphs, each bound number in a ``<span class="bound-number">`` (compile page)."""
        lines = [line.strip() for line in self.raw(contribution).splitlines() if line.strip()]
        if not any(B.citations(line) for line in lines):
            return [escape(line) for line in lines]
        values = self._values(contribution)
        return [B.render_bound_html(line, values, self._names) for line in lines]

    def cited(self, contribution) -> dict[str, str]:
        """The numbers the text cites, as printed (``{"sum(code)": "265"}``); empty without citations.

        Kept with an edited section, so a later change of an approved number marks the edit stale.
        """
        found = B.citations(self.raw(contribution))
        if not found:
            return {}
        values = self._values(contribution)
        return {c.key: format_number(values.get(c.key)) if values.get(c.key) is not None else ""
                for c in found}
