"""A unit's material for one section (报送材料), its immutable revisions and evidence attachments."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS, CONTRIBUTION_STATES


class Contribution(db.Model):
    __tablename__ = "contribution"
    __table_args__ = (CheckConstraint(f"state IN {tuple(CONTRIBUTION_STATES)}", name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), unique=True
    )
    # Denormalised from the assignment so that queues and the dashboard need no joins to filter.
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    body: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    # Bumped by every UPDATE; the ORM adds "WHERE version = :loaded" so a stale write fails.
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]

    assignment = relationship("Assignment", back_populates="contribution")
    section = relationship("Section")
    unit = relationship("Unit")
    cycle = relationship("ReportCycle")
    updated_by = relationship("User")
    revisions: Mapped[list[Revision]] = relationship(
        back_populates="contribution", order_by="Revision.number", cascade="all, delete-orphan"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="contribution", order_by="Attachment.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def state_label(self) -> str:
        return CONTRIBUTION_STATE_LABELS[self.state]

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in (self.body or "").splitlines() if p.strip()]

    def __repr__(self) -> str:
        return f"<Contribution {self.id} {self.state}>"


class ContributionApproval(db.Model):
    """One reviewer's approval of one submitted revision, for sections approved by all their named
    reviewers (会签). The material is approved when the last required approval arrives; approvals of
    an earlier revision do not count after a return (the next submission is a new revision)."""

    __tablename__ = "contribution_approval"
    __table_args__ = (UniqueConstraint("contribution_id", "revision_number", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int] = mapped_column(ForeignKey("contribution.id", ondelete="CASCADE"), index=True)
    revision_number: Mapped[int]
    # Whose approval this counts as (a named reviewer); ``actor`` is who gave it (a substitute, 委托).
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contribution = relationship("Contribution")
    reviewer = relationship("User", foreign_keys=[reviewer_id])
    actor = relationship("User", foreign_keys=[actor_id])


class Revision(db.Model):
    """An immutable snapshot of a contribution, taken at each submit."""

    __tablename__ = "revision"
    __table_args__ = (UniqueConstraint("contribution_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    # Figures and other structured content at the time of submission (filled by later features).
    data: Mapped[dict | None] = mapped_column(db.JSON)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contribution: Mapped[Contribution] = relationship(back_populates="revisions")
    author = relationship("User")


@event.listens_for(Revision, "before_update")
def _revision_is_immutable(mapper, connection, target):
    raise RuntimeError("a revision is immutable")


class Attachment(db.Model):
    """Metadata of an evidence file; the bytes live outside static files under ``stored_name``."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contribution: Mapped[Contribution] = relationship(back_populates="attachments")
    uploaded_by = relationship("User")
