"""Contribution text as it is displayed: every ``{{code}}`` printed from its value.

Only the editor's textarea keeps the raw citations; everywhere else (review, history, previews) the
reader sees the number, so text and figures never disagree. Text without a citation is shown as is
and loads nothing; a cycle's figures are loaded once per page (``FigureBook``).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from markupsafe import Markup, escape

from ..figures import bound as B


def has_citations(text: str | None) -> bool:
    return bool(text) and B.CITATION.search(text) is not None


class BoundText:
    """Renders texts of one page; keeps one figure book per cycle."""

    def __init__(self):
        self._books: dict[int, object] = {}

    def _book(self, cycle):
        from ..figures.evaluate import FigureBook

        if cycle.id not in self._books:
            self._books[cycle.id] = FigureBook(cycle)
        return self._books[cycle.id]

    def _names(self, book) -> dict:
        return {code: ind.name for code, ind in book.indicators.items()}

    def _values(self, contribution, snapshot: dict | None = None) -> tuple[dict, dict]:
        book = self._book(contribution.cycle)
        if contribution.id not in book.contributions:
            book.contributions[contribution.id] = contribution
        values = dict(book.values_for(contribution))
        # A revision shows the figures as they were when it was submitted.
        for code, raw in (snapshot or {}).items():
            try:
                values[code] = None if raw in (None, "") else Decimal(str(raw))
            except InvalidOperation:
                continue
        return values, self._names(book)

    def text(self, contribution, body: str | None = None, snapshot: dict | None = None) -> str:
        """Plain text with the numbers filled in (``body`` defaults to the current text)."""
        body = contribution.body if body is None else body
        if not has_citations(body):
            return body or ""
        values, names = self._values(contribution, snapshot)
        return B.render_bound(body, values, names)

    def paragraphs(self, contribution, body: str | None = None) -> list[Markup]:
        """Escaped paragraphs (as ``Contribution.paragraphs`` splits them), numbers in a span."""
        body = contribution.body if body is None else body
        lines = [p.strip() for p in (body or "").splitlines() if p.strip()]
        if not has_citations(body):
            return [escape(p) for p in lines]
        values, names = self._values(contribution)
        return [B.render_bound_html(p, values, names) for p in lines]

    def revision(self, revision) -> str:
        data = revision.data or {}
        return self.text(revision.contribution, revision.body, data.get("figures"))

    def many(self, contributions) -> dict[int, str]:
        """Contribution id → displayed text, for a list (books only for cycles that need one)."""
        return {c.id: self.text(c) for c in contributions}


def current() -> BoundText:
    """The renderer of the current request (one figure book per cycle per request)."""
    from flask import has_request_context, request

    if not has_request_context():
        return BoundText()
    # Kept on the request itself: ``g`` can outlive a request (an app context shared by tests).
    req = request._get_current_object()
    renderer = getattr(req, "_fazhi_bound_text", None)
    if renderer is None:
        renderer = req._fazhi_bound_text = BoundText()
    return renderer


def bound_paragraphs(contribution) -> list[Markup]:
    return current().paragraphs(contribution)


def bound_text(contribution) -> str:
    return current().text(contribution)


def revision_text(revision) -> str:
    return current().revision(revision)


def preview(contribution, length: int = 60) -> str:
    """The first ``length`` characters of the displayed text, on one line."""
    text = " ".join(p.strip() for p in bound_text(contribution).splitlines() if p.strip())
    return text if len(text) <= length else text[:length] + "…"
