"""The PDFs of publications, rendered after the publish request.

Publishing stores text, HTML and Word at once (with their hashes) and marks the PDF ``pending``:
rendering it takes seconds, which a publish request should not wait for. This job (the scheduler runs
it every minute; ``fazhi-flow render-pdfs`` by hand) renders each pending PDF from the publication's
own snapshot — the signed draft version it froze, never the live draft — and stores the file, its
hash, ``done`` and the completion time in one conditional UPDATE: of two runs at once exactly one
writes, and a finished row is never touched again (models/publication.py refuses every other change).
A failure marks the row ``failed`` (logged); later runs retry it for ``PDF_RETRY_HOURS`` after
publication, then only ``render-pdfs --all`` does.

No transaction is open while a PDF renders, so an embedded SQLite database is not locked meanwhile.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from ..extensions import db
from ..models import Publication, ReportDraftVersion
from ..models.publication import PDF_COMPLETION, sha256_hex
from .document import ReportDocument
from .html import font_stacks, render_html
from .pdf import PdfUnavailable, render_pdf
from ..timeutil import utcnow

logger = logging.getLogger(__name__)

RETRY_HOURS = 24
# Publications rendered per run: a backlog (many corrections at once) is worked off over a few runs
# instead of one run holding the job for minutes.
BATCH = 10
OPEN = ("pending", "failed")


@dataclass
class PdfRun:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # Completed by another run between our read and our write (our rendering was discarded).
    taken: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"done": len(self.done), "failed": len(self.failed), "taken": len(self.taken)}


def _naive_utc(moment: datetime | None) -> datetime:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def open_publications(now: datetime | None = None, everything: bool = False, limit: int = BATCH) -> list[int]:
    """Ids of publications whose PDF is to be rendered: every pending one, and the failed ones
    published less than ``PDF_RETRY_HOURS`` ago (all failed ones with ``everything``), oldest first."""
    now = _naive_utc(now)
    hours = int(current_app.config.get("PDF_RETRY_HOURS", RETRY_HOURS))
    query = select(Publication.id).where(Publication.pdf_status.in_(OPEN)).order_by(Publication.id).limit(limit)
    if not everything:
        query = query.where(or_(Publication.pdf_status == "pending",
                                Publication.published_at >= now - timedelta(hours=hours)))
    return list(db.session.scalars(query))


def snapshot_pdf(publication_id: int) -> bytes:
    """Render the PDF of the draft version publication ``publication_id`` froze.

    :raise PdfUnavailable: WeasyPrint or pango is missing.
    """
    document = db.session.scalar(
        select(ReportDraftVersion.document).join(Publication, Publication.draft_version_id == ReportDraftVersion.id)
        .where(Publication.id == publication_id))
    # The read is over before the seconds of rendering: nothing stays locked meanwhile.
    db.session.commit()
    html = render_html(ReportDocument.from_dict(document), font_stacks(current_app.config["PDF_FONTS"]))
    return render_pdf(html)


def _conditional(publication_id: int, **values) -> bool:
    """The one permitted change of a publication row; True when this call made it."""
    result = db.session.execute(
        update(Publication)
        .where(Publication.id == publication_id, Publication.pdf_status.in_(OPEN))
        .values(**values)
        .execution_options(synchronize_session=False, **{PDF_COMPLETION: True}))
    db.session.commit()
    return result.rowcount == 1


def complete(publication_id: int, pdf: bytes) -> bool:
    """Store the PDF, its hash, ``done`` and the completion time at once; False when the row is not
    pending or failed (another run completed it first)."""
    return _conditional(publication_id, pdf=pdf, pdf_sha256=sha256_hex(pdf), pdf_status="done",
                        pdf_completed_at=utcnow())


def mark_failed(publication_id: int) -> bool:
    return _conditional(publication_id, pdf_status="failed")


def render_pending_pdfs(now: datetime | None = None, everything: bool = False, limit: int = BATCH) -> PdfRun:
    """Render and store the PDFs of the open publications (see the module's description)."""
    run = PdfRun()
    ids = open_publications(now, everything, limit)
    db.session.commit()
    for publication_id in ids:
        try:
            pdf = snapshot_pdf(publication_id)
        except Exception as exc:  # noqa: BLE001 - one broken document must not stop the others
            db.session.rollback()
            detail = exc.detail if isinstance(exc, PdfUnavailable) else f"{type(exc).__name__}: {exc}"
            logger.warning("PDF of publication %d not rendered: %s", publication_id, detail)
            run.errors.append(f"#{publication_id} {detail}"[:500])
            if mark_failed(publication_id):
                run.failed.append(publication_id)
            continue
        (run.done if complete(publication_id, pdf) else run.taken).append(publication_id)
    return run
