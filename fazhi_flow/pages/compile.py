"""Page models of 汇总编辑 (the compile page), of one section's compile page and of 审阅签发 (the sign-off
page): everything the template prints, built before rendering in a fixed number of queries; on the
compile page the cycle's approved figures are loaded once and shared by the merged text, the stale
checks and the rule checks.

The compile page opens with an overview of the sections (counts, lengths, problems) worked out in SQL
without reading any text. A cycle with little approved material also shows every section's material
and merged text on the same page; a larger one (a city's hundreds of units) shows the overview only,
and each section's material and text are read when that section's own page is opened."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..figures.evaluate import FigureBook, evaluate_cycle
from ..models import Publication, ReportCycle, ReportDraftVersion, TransitionLog
from ..publish.document import ReportDocument
from ..services import compile as svc


# Up to how much approved material the compile page shows every section's texts itself (characters
# of the approved texts, and contributions); beyond, each section is opened on its own page. Settable
# as COMPILE_INLINE_MAX_CHARS / COMPILE_INLINE_MAX_ITEMS.
INLINE_MAX_CHARS = 200_000
INLINE_MAX_ITEMS = 400


def shows_inline(tallies: tuple[dict, dict]) -> bool:
    """Whether the compile page shows every section's material and text (a small enough cycle), from
    ``services.compile.section_tallies``."""
    counts, lengths = tallies
    config = current_app.config
    chars = sum(lengths.values())
    items = sum(by_state.get("approved", 0) for by_state in counts.values())
    return chars <= config.get("COMPILE_INLINE_MAX_CHARS", INLINE_MAX_CHARS) \
        and items <= config.get("COMPILE_INLINE_MAX_ITEMS", INLINE_MAX_ITEMS)


@dataclass
class CompilePage:
    cycle: ReportCycle
    views: list  # every section's material and text; empty when the sections open on their own pages
    editable: bool
    logs: list  # the cycle's transitions, newest first
    latest: ReportDraftVersion | None
    publications: list[Publication]
    changes: list
    checked: dict  # failing rules on the approved figures: {"errors": [...], "warnings": [...]}
    summaries: list = field(default_factory=list)  # services.compile.SectionSummary, reading order
    inline: bool = True
    missing: list = field(default_factory=list)  # summaries
    stale: list = field(default_factory=list)  # summaries

    @property
    def last_return(self) -> TransitionLog | None:
        return next((log for log in self.logs if log.event == "return"), None)

    @property
    def correction_return(self) -> TransitionLog | None:
        """The leader's return of a correction, when it is the latest thing that happened."""
        log = next(iter(self.logs), None)
        return log if log is not None and log.event == "return" and log.from_state == "correcting" else None

    @property
    def appendix(self) -> bool:
        return self.latest is not None and (self.latest.document or {}).get("appendix") is not None


def figure_changes(cycle: ReportCycle, book: FigureBook) -> list:
    """Values changed after approval (``services.figures.changes_after_approval``). That list reads
    the figures as entered, not as approved, so it needs a book of its own: loaded only when one of
    the already loaded values differs from its approved value (rarely, once compiling)."""
    from decimal import Decimal

    from ..services.figures import changes_after_approval

    def changed(row) -> bool:
        new = None if row.value is None else Decimal(row.value)
        return Decimal(row.approved_value) != new

    if not any(row.approved_value is not None and changed(row) for row in book.values.values()):
        return []
    return changes_after_approval(cycle, FigureBook(cycle))


def signature_checks(book: FigureBook) -> dict:
    """Failing rules on the approved figures, by level (what the ``signature_rules`` global gives)."""
    if isinstance(book, svc.PlainApprovedFigureBook):
        failed = book.failed_rules()
    else:
        failed = [r for r in evaluate_cycle(book, detail=True) if r.failed]
    return {"errors": [r for r in failed if r.blocking], "warnings": [r for r in failed if not r.blocking]}


def _logs(cycle: ReportCycle) -> list:
    return list(db.session.scalars(
        select(TransitionLog).where(TransitionLog.cycle_id == cycle.id).order_by(TransitionLog.id.desc())))


def build_edit_page(cycle: ReportCycle, viewer) -> CompilePage:
    tallies = svc.section_tallies(cycle)
    inline = shows_inline(tallies)
    # The figure book holds plain rows (much faster than ORM objects for a city's contributions).
    numbers = svc.PlainBookTexts(cycle)
    summaries = svc.section_summaries(cycle, numbers, tallies)
    views = svc.section_views(cycle, numbers) if inline else []
    book = numbers.book
    return CompilePage(
        cycle=cycle, views=views, editable=policy.can(viewer, "cycle.edit_draft", cycle), logs=_logs(cycle),
        latest=svc.latest_version(cycle), publications=svc.publications(cycle),
        changes=figure_changes(cycle, book), checked=signature_checks(book),
        summaries=summaries, inline=inline,
        missing=[s for s in summaries if s.missing], stale=[s for s in summaries if s.stale],
    )


@dataclass
class SectionPage:
    """One section's compile page: its material side by side and its merged text (form or text)."""

    cycle: ReportCycle
    view: svc.SectionView
    editable: bool
    previous: object = None  # the sections before and after it in reading order (Section or None)
    following: object = None
    latest: ReportDraftVersion | None = None


def build_section_page(cycle: ReportCycle, section, viewer) -> SectionPage:
    view = svc.section_view(cycle, section, svc.PlainBookTexts(cycle))
    order = [s for top in cycle.top_sections() for s in top.walk()]  # the outline is loaded by now
    at = order.index(section)
    return SectionPage(
        cycle=cycle, view=view, editable=policy.can(viewer, "cycle.edit_draft", cycle),
        previous=order[at - 1] if at > 0 else None, following=order[at + 1] if at + 1 < len(order) else None,
        latest=svc.latest_version(cycle))


# States in which the sign-off page shows the latest version as it was asked to be signed.
SIGNOFF_SHOWN_STATES = ("signoff", "signed", "published", "correcting")


@dataclass
class SignoffPage:
    cycle: ReportCycle
    version: ReportDraftVersion | None  # the latest version
    document: ReportDocument  # what is read: the latest version once asked to sign, else the current draft
    previous: ReportDraftVersion | None
    published: Publication | None
    logs: list
    checked: dict  # failing rules on the approved figures, checked before rendering
    can_sign: bool
    correcting: bool = False
    rows: list = field(default_factory=list)  # a correction's changed paragraphs against the published text
    note: str | None = None
    text_sha256: str | None = None  # of the plain text the leader signs, shown before signing

    def context(self) -> dict:
        """The names the sign-off template reads (less the article, which the route renders)."""
        from ..services.diffs import diff_summary

        return {"cycle": self.cycle, "version": self.version, "published": self.published,
                "correcting": self.correcting, "note": self.note, "text_sha256": self.text_sha256,
                "rows": self.rows, "summary": diff_summary(self.rows), "formats": svc.FORMAT_LABELS,
                "can_sign": self.can_sign, "logs": self.logs, "previous": self.previous,
                "signature_checked": self.checked}


def build_signoff_page(cycle: ReportCycle, viewer) -> SignoffPage:
    from ..services.figures import signature_rule_results

    version = svc.latest_version(cycle)
    if version is not None and cycle.state in SIGNOFF_SHOWN_STATES:
        document = ReportDocument.from_dict(version.document)
    else:
        document = svc.current_document(cycle)
    published = svc.latest_publication(cycle)
    logs = _logs(cycle)
    failed = [r for r in signature_rule_results(cycle) if r.failed]
    page = SignoffPage(
        cycle=cycle, version=version, document=document, published=published, logs=logs,
        previous=svc.get_version(cycle, version.number - 1) if version and version.number > 1 else None,
        checked={"errors": [r for r in failed if r.blocking], "warnings": [r for r in failed if not r.blocking]},
        can_sign=policy.can(viewer, "cycle.sign", cycle))
    if cycle.state == "correcting":
        page.correcting = True
        page.rows = correction_diff(cycle, published, version)
        page.note = svc.correction_note(cycle)
        page.text_sha256 = svc.plain_text_sha256(document)
    return page


def correction_diff(cycle: ReportCycle, previous, version=None) -> list:
    """The paragraphs changed against the published version ``previous``: of draft ``version``, or of
    the current draft."""
    from ..services.diffs import diff_texts

    if previous is None:
        return []
    if version is not None:
        return diff_texts(previous.text, version.text)
    from ..publish.text import render_text

    return diff_texts(previous.text, render_text(svc.current_document(cycle)))
