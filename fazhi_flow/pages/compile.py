"""Page models of 汇总编辑 (the compile page) and 审阅签发 (the sign-off page): everything the template
prints, built before rendering in a fixed number of queries; on the compile page the cycle's approved
figures are loaded once and shared by the merged text and the rule checks."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..figures.evaluate import FigureBook, evaluate_cycle
from ..models import Publication, ReportCycle, ReportDraftVersion, TransitionLog
from ..publish.document import ReportDocument
from ..publish.merge import CitedTexts
from ..services import compile as svc


@dataclass
class CompilePage:
    cycle: ReportCycle
    views: list
    editable: bool
    logs: list  # the cycle's transitions, newest first
    latest: ReportDraftVersion | None
    publications: list[Publication]
    changes: list
    checked: dict  # failing rules on the approved figures: {"errors": [...], "warnings": [...]}
    missing: list = field(default_factory=list)
    stale: list = field(default_factory=list)

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
    failed = [r for r in evaluate_cycle(book, detail=True) if r.failed]
    return {"errors": [r for r in failed if r.blocking], "warnings": [r for r in failed if not r.blocking]}


def build_edit_page(cycle: ReportCycle, viewer) -> CompilePage:
    numbers = CitedTexts(cycle)
    views = svc.section_views(cycle, numbers)
    book = numbers.book
    logs = list(db.session.scalars(
        select(TransitionLog).where(TransitionLog.cycle_id == cycle.id).order_by(TransitionLog.id.desc())))
    return CompilePage(
        cycle=cycle, views=views, editable=policy.can(viewer, "cycle.edit_draft", cycle), logs=logs,
        latest=svc.latest_version(cycle), publications=svc.publications(cycle),
        changes=figure_changes(cycle, book), checked=signature_checks(book),
        missing=[v for v in views if v.missing], stale=[v for v in views if v.stale],
    )


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
    logs = list(db.session.scalars(
        select(TransitionLog).where(TransitionLog.cycle_id == cycle.id).order_by(TransitionLog.id.desc())))
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
