"""Which figures one reader may see, so a citation or a rule message never prints a number the reader
may not read.

The office (admins, reviewers) and leaders see every unit's values, as before. Anybody else (a liaison,
a unit head) sees its own unit's values; another unit's value only once approved, and only when the
cycle shares approved figures with liaisons (``ReportCycle.share_approved_figures``, off by default).
The lead unit (牵头) of a section, which holds the section's totals, also sees its support units' values
for that section once they are submitted or approved (never their drafts).
A total (``sum(code)``) is shown only when every unit's part of it may be seen. Once a report is
published its approved figures are public, so its cycle shares them whatever the setting.

A liaison's citations are checked only against the indicators of its own unit's sections (all of the
cycle's when approved figures are shared). A code outside that set prints as the placeholder and gets
the same (non-blocking) note whether it exists or not, so nobody learns which codes another section
defines; citing another section's figure still works, printed from the approved value when compiled.
A mistyped code is caught at review (the reviewer sees 【未知指标】) and before signing.
"""
from __future__ import annotations

from decimal import Decimal

from .. import policy

PLACEHOLDER = "〔待汇总〕"
LEFT_THE_UNIT = ("submitted", "approved")  # unit_review is still inside the unit


def _restricted(viewer) -> bool:
    if viewer is None:
        return False
    if not getattr(viewer, "is_authenticated", True):
        return True  # an anonymous visitor sees no unit's figures
    return not policy.can(viewer, "figures.all_units")


class Visibility:
    """What ``viewer`` may see of the figures in ``book`` (None: no restriction, e.g. the system)."""

    def __init__(self, book, viewer=None):
        self.book = book
        self.restricted = _restricted(viewer)
        self.unit_id = getattr(viewer, "unit_id", None)
        # A published report has made its approved figures public.
        self.share = bool(getattr(book.cycle, "share_approved_figures", False)) or book.cycle.state == "published"
        self._known: set | None = None
        self._led: set | None = None
        self._names: dict | None = None
        self._totals: dict = {}  # indicator id -> (visible, total), once per reader
        book.note_reader(self.unit_id if self.restricted else None)

    def sees_approved(self, contribution) -> bool:
        """Whether the figures ``contribution`` was approved with may be shown."""
        return self.sees(contribution) or (self.share and contribution.state == "approved")

    def sees(self, contribution) -> bool:
        """Whether the current (possibly unapproved) values of ``contribution`` may be shown."""
        return not self.restricted or (contribution is not None and contribution.unit_id == self.unit_id)

    def checks_with(self, contribution) -> bool:
        """Whether rule checks shown to this reader may use ``contribution``'s current values.

        Another unit's values count only once they have left that unit's hands (submitted or
        approved): a verdict on a draft would let a liaison probe a number it may not read.
        """
        return self.sees(contribution) or contribution.state in LEFT_THE_UNIT

    def leads(self, section_id) -> bool:
        """Whether the reader's unit is the lead unit (牵头) of the section: it holds its totals."""
        if self._led is None:
            self._led = {section for section, role in self.book.unit_roles(self.unit_id) if role == "lead"}
        return section_id in self._led

    def lead_sees(self, contribution) -> bool:
        """The lead unit of a section sees a support unit's figures for it once submitted or approved,
        so it can tell whose number breaks a total; never a draft (the unit may still change it)."""
        return contribution is not None and contribution.state in LEFT_THE_UNIT and self.leads(contribution.section_id)

    def value(self, contribution, indicator) -> tuple[bool, Decimal | None]:
        """(visible, value) of one unit's figure as this reader may see it."""
        if self.sees(contribution) or self.lead_sees(contribution):
            return True, self.book.value(contribution, indicator)
        row = self.book.row(contribution, indicator)
        if self.share and row is not None and row.approved_value is not None:
            return True, Decimal(row.approved_value)
        return False, None

    def total(self, indicator) -> tuple[bool, Decimal | None]:
        if indicator.id not in self._totals:
            self._totals[indicator.id] = self.book.visible_total(self, indicator)
        return self._totals[indicator.id]

    @property
    def known_codes(self) -> set:
        """The codes this reader may cite."""
        if self._known is None:
            book = self.book
            if not self.restricted or self.share:
                self._known = set(book.indicators)
            else:
                sections = {section for section, _ in book.unit_roles(self.unit_id)}
                self._known = {code for code, ind in book.indicators.items() if ind.section_id in sections}
        return self._known

    def names(self) -> dict:
        """code → name of the indicators this reader may cite (others render as unknown)."""
        if self._names is None:
            self._names = {code: ind.name for code, ind in self.book.indicators.items() if code in self.known_codes}
        return dict(self._names)

    def values_for(self, contribution, codes=None) -> dict:
        """Like ``FigureBook.values_for`` but a value hidden from this reader becomes ``PLACEHOLDER``."""
        values = self.book.values_for(contribution, codes)
        if not self.restricted:
            return values
        wanted = self.book.indicators if codes is None else \
            {c: self.book.indicators[c] for c in codes if c in self.book.indicators}
        for code, ind in wanted.items():
            if code not in self.known_codes:
                values.pop(code, None)
                values.pop(f"sum({code})", None)
                continue
            source = self.source(code, contribution)
            if source is not None:
                visible, value = self.value(source, ind)
                values[code] = value if visible else PLACEHOLDER
            visible, total = self.total(ind)
            values[f"sum({code})"] = total if visible else PLACEHOLDER
        return values

    def values_for_text(self, contribution, text: str) -> dict:
        """The values ``text`` cites (``values_for`` of its codes), with the placeholder for every cited
        code this reader may not check."""
        from .bound import citations

        cited = citations(text or "")
        values = self.values_for(contribution, dict.fromkeys(c.code for c in cited))
        if self.restricted:
            for citation in cited:
                values.setdefault(citation.key, PLACEHOLDER)
        return values

    def foreign(self, text: str) -> list[str]:
        """Codes cited in ``text`` that this reader cannot check (empty for the office)."""
        from .bound import citations

        if not self.restricted:
            return []
        return list(dict.fromkeys(c.code for c in citations(text or "") if c.code not in self.known_codes))

    def source(self, code, contribution):
        from .evaluate import _Ambiguous, _Invalid

        try:
            return self.book.resolve(code, contribution)[1]
        except (_Ambiguous, _Invalid):
            return None


class ShareApprovedFiguresKey:
    """``cycle.share_approved_figures`` in a cycle file (a services.importer cycle extension)."""

    @staticmethod
    def validate(value, errors: list[str], path: str) -> None:
        if not isinstance(value, bool):
            errors.append(f"{path}：应为 true 或 false（是否允许联络员看到其他单位已审核通过的数值）")

    @staticmethod
    def apply(cycle, value: bool) -> None:
        cycle.share_approved_figures = bool(value)
