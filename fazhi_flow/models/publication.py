"""The merged report: the edited text of each section, every version of the merged draft, and the
immutable published snapshots (发布版本), corrections (更正) included."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..extensions import db
from ..limits import fitted
from ..timeutil import utcnow


def sha256_hex(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class SectionDraft(db.Model):
    """The merged, edited text of one section (汇总稿). Without a row the text is pre-filled from the
    section's approved contributions; a row exists once an admin saves an edit."""

    __tablename__ = "section_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), unique=True)
    body: Mapped[str] = mapped_column(Text, default="")
    # The approved material the edit started from: [{"contribution", "unit", "revision"}, ...]. When it
    # no longer matches what is approved now, the edited text is stale and must be rebuilt.
    sources: Mapped[list | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    section = relationship("Section")
    updated_by = relationship("User")

    __mapper_args__ = {"version_id_col": version}


class ReportDraftVersion(db.Model):
    """One version of the whole merged draft (稿件版本), kept for ever and compared with others."""

    __tablename__ = "report_draft_version"
    __table_args__ = (UniqueConstraint("cycle_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    # Why the version was taken, e.g. 编辑“（一）…”, 提请签发, 更正.
    reason: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    # The structured report (ReportDocument.to_dict()), so a version renders exactly as it was read.
    document: Mapped[dict] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by = relationship("User")

    # Reasons name the section edited (titles up to 300 characters): fitted, never refused.
    _fit = fitted("reason")


class Publication(db.Model):
    """A published report (发布版本): an immutable snapshot of text, HTML, DOCX and PDF with hashes.

    Version 1 is the publication; later versions are corrections (更正) carrying a note. Earlier
    versions stay visible. No foreign key cascade: a cycle with publications cannot be deleted.
    """

    __tablename__ = "publication"
    __table_args__ = (UniqueConstraint("cycle_id", "version"),
                      CheckConstraint("pdf_status IN ('pending', 'done', 'failed', 'none')", name="pdf_status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id"), index=True)
    version: Mapped[int]
    draft_version_id: Mapped[int] = mapped_column(ForeignKey("report_draft_version.id"))
    year: Mapped[int]
    region: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    correction_note: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    docx: Mapped[bytes] = mapped_column(LargeBinary)
    # None when the server could not render PDFs at publication time (WeasyPrint missing).
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    text_sha256: Mapped[str] = mapped_column(String(64))
    html_sha256: Mapped[str] = mapped_column(String(64))
    docx_sha256: Mapped[str] = mapped_column(String(64))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    # The PDF is rendered after the publish request by a job: "pending" until it is stored (with its
    # hash, at completion), "done", "failed" (retried by the job), or "none" (no PDF renderer here).
    pdf_status: Mapped[str] = mapped_column(String(10), default="done")
    pdf_completed_at: Mapped[datetime | None]
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)

    cycle = relationship("ReportCycle")
    draft_version = relationship("ReportDraftVersion")
    published_by = relationship("User")

    FORMATS = ("txt", "html", "docx", "pdf")

    @property
    def sha256(self) -> str:
        """The hash of the published text, the report's reference checksum."""
        return self.text_sha256

    @property
    def is_correction(self) -> bool:
        return self.version > 1

    def content(self, fmt: str) -> bytes | None:
        return {
            "txt": self.text.encode("utf-8"),
            "html": self.html.encode("utf-8"),
            "docx": self.docx,
            "pdf": self.pdf,
        }[fmt]

    def digest(self, fmt: str) -> str | None:
        return {"txt": self.text_sha256, "html": self.html_sha256, "docx": self.docx_sha256,
                "pdf": self.pdf_sha256}[fmt]

    @property
    def pdf_ready(self) -> bool:
        return self.pdf_status == "done" and self.pdf is not None

    def verify(self) -> bool:
        """True when every stored file still matches its recorded hash. A PDF not rendered yet
        (pending, failed, none) is not there: neither bytes nor a hash may be stored for it."""
        if self.pdf_status != "done":
            return (self.pdf is None and self.pdf_sha256 is None
                    and all(sha256_hex(self.content(f)) == self.digest(f) for f in self.FORMATS if f != "pdf"))
        return all(sha256_hex(self.content(f)) == self.digest(f) for f in self.FORMATS)


@event.listens_for(ReportDraftVersion, "before_update")
def _draft_version_is_immutable(mapper, connection, target):
    raise RuntimeError("a draft version is immutable")


@event.listens_for(Publication, "before_update")
def _publication_is_immutable(mapper, connection, target):
    raise RuntimeError("a published report is immutable")


@event.listens_for(Publication, "before_delete")
def _publication_is_permanent(mapper, connection, target):
    raise RuntimeError("a published report cannot be deleted")


# The one change a publication ever sees: the PDF job's completion (or its failure mark), a single
# conditional UPDATE carrying this execution option and setting only these columns; its WHERE keeps a
# finished row ("done") out of reach. Any other UPDATE or DELETE of the table through a session fails.
PDF_COMPLETION = "publication_pdf_completion"
PDF_COMPLETION_COLUMNS = frozenset({"pdf", "pdf_sha256", "pdf_status", "pdf_completed_at"})


@event.listens_for(Session, "do_orm_execute")
def _publication_statements_are_refused(state):
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) != Publication.__tablename__:
        return
    if state.is_delete:
        raise RuntimeError("a published report cannot be deleted")
    columns = {getattr(key, "key", key) for key in (state.statement._values or {})}
    if not state.execution_options.get(PDF_COMPLETION) or not columns <= PDF_COMPLETION_COLUMNS:
        raise RuntimeError("a published report is immutable")
