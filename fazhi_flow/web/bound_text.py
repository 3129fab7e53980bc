"""Contribution text as it is displayed: every ``{{code}}`` printed from its value.

Only the editor's textarea keeps the raw citations; everywhere else (review, history, previews) the
reader sees the number, so text and figures never disagree. Text without a citation is shown as is
and loads nothing; a cycle's figures are loaded once per page (``FigureBook``).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from markupsafe import Markup, escape

from ..figures import bound as B
from ..figures.visibility import Visibility


def has_citations(text: str | None) -> bool:
    return bool(text) and B.CITATION.search(text) is not None


class BoundText:
    """Renders texts of one page for one reader; keeps one figure book per cycle.

    ``viewer`` None renders every value (no reader to protect); otherwise a value the reader may not
    see prints as a placeholder (``figures.visibility``).
    """

    def __init__(self, viewer=None):
        self.viewer = viewer
        self._seen: dict[int, Visibility] = {}

    def book(self, cycle):
        """The cycle's figure book for this page, loaded once."""
        return self._visibility(cycle).book

    def _visibility(self, cycle) -> Visibility:
        from ..figures.scoped import ScopedFigureBook

        if cycle.id not in self._seen:  # loads only what the page asks for (``prepare``)
            self._seen[cycle.id] = Visibility(ScopedFigureBook(cycle), self.viewer)
        return self._seen[cycle.id]

    def _values(self, contribution, body: str, snapshot: dict | None = None) -> tuple[dict, dict]:
        seen = self._visibility(contribution.cycle)
        if contribution.id not in seen.book.contributions:
            seen.book.contributions[contribution.id] = contribution
        values = seen.values_for_text(contribution, body)
        if snapshot and not seen.sees_approved(contribution):
            snapshot = None  # another unit's figures at submission: not this reader's to see
        # A revision shows the figures as they were when it was submitted.
        for code, raw in (snapshot or {}).items():
            try:
                values[code] = None if raw in (None, "") else Decimal(str(raw))
            except InvalidOperation:
                continue
        return values, seen.names()

    def text(self, contribution, body: str | None = None, snapshot: dict | None = None) -> str:
        """Plain text with the numbers filled in (``body`` defaults to the current text)."""
        body = contribution.body if body is None else body
        if not has_citations(body):
            return body or ""
        values, names = self._values(contribution, body, snapshot)
        return B.render_bound(body, values, names)

    def paragraphs(self, contribution, body: str | None = None) -> list[Markup]:
        """Escaped paragraphs (as ``Contribution.paragraphs`` splits them), numbers in a span."""
        body = contribution.body if body is None else body
        lines = [p.strip() for p in (body or "").splitlines() if p.strip()]
        if not has_citations(body):
            return [escape(p) for p in lines]
        values, names = self._values(contribution, body)
        return [B.render_bound_html(p, values, names) for p in lines]

    def revision(self, revision) -> str:
        data = revision.data or {}
        return self.text(revision.contribution, revision.body, data.get("figures"))

    def preview(self, contribution, length: int = 60) -> str:
        """The first ``length`` characters of the displayed text, on one line. A long text is displayed
        from its beginning only (its other citations are not resolved): a list shows 60 characters of
        each of dozens of texts of thousands."""
        body = contribution.body or ""
        head = preview_source(body, length)
        text = _one_line(self.text(contribution, head))
        if len(text) <= length and len(head) < len(body):  # the beginning displays too short: all of it
            text = _one_line(self.text(contribution, body))
        return text if len(text) <= length else text[:length] + "…"

    def many(self, contributions) -> dict[int, str]:
        """Contribution id → displayed text, for a list (books only for cycles that need one)."""
        return {c.id: self.text(c) for c in contributions}


def _one_line(text: str) -> str:
    return " ".join(p.strip() for p in text.splitlines() if p.strip())


def preview_source(body: str, length: int) -> str:
    """The beginning of ``body`` whose displayed text begins the whole text's displayed text (one
    line, as ``preview`` shows it) and usually holds more than ``length`` characters of it: four
    times as many characters, extended to the end of a citation the cut would split. A citation
    prints its number in place and nothing else depends on what follows, so the prefix's display is
    a prefix of the whole's."""
    cut = length * 4
    if len(body) <= cut:
        return body
    for m in B.CITATION.finditer(body):
        if m.start() >= cut:
            break
        if m.end() > cut:
            cut = m.end()
            break
    return body[:cut]


def current() -> BoundText:
    """The renderer of the current request (one figure book per cycle per request)."""
    from flask import has_request_context, request

    if not has_request_context():
        return BoundText()
    # Kept on the request itself: ``g`` can outlive a request (an app context shared by tests).
    from flask_login import current_user

    req = request._get_current_object()
    renderer = getattr(req, "_fazhi_bound_text", None)
    if renderer is None:
        renderer = req._fazhi_bound_text = BoundText(current_user._get_current_object())
    return renderer


def bound_paragraphs(contribution) -> list[Markup]:
    return current().paragraphs(contribution)


def bound_text(contribution) -> str:
    return current().text(contribution)


def revision_text(revision) -> str:
    return current().revision(revision)


def preview(contribution, length: int = 60) -> str:
    """The first ``length`` characters of the displayed text, on one line."""
    return current().preview(contribution, length)
