"""Page model of 汇总编辑 (the compile page): everything the template prints, built before rendering
in a fixed number of queries, with the cycle's approved figures loaded once and shared by the merged
text and the rule checks."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from ..extensions import db
from ..figures.evaluate import FigureBook, evaluate_cycle
from ..models import Publication, ReportCycle, ReportDraftVersion, TransitionLog
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
        cycle=cycle, views=views, editable=svc.can_edit_draft(viewer, cycle), logs=logs,
        latest=svc.latest_version(cycle), publications=svc.publications(cycle),
        changes=figure_changes(cycle, book), checked=signature_checks(book),
        missing=[v for v in views if v.missing], stale=[v for v in views if v.stale],
    )
