"""A report cycle (one report for one year), its outline of sections and the assignments to units."""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow
from ..workflow.states import CYCLE_STATES

if TYPE_CHECKING:
    from .org import Region, User

CN_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """Return the Chinese numeral for 1..99 as used in headings (一, 十, 十一, 二十三)."""
    if n < 1 or n > 99:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return CN_DIGITS[ones]
    head = "" if tens == 1 else CN_DIGITS[tens]
    return head + "十" + (CN_DIGITS[ones] if ones else "")


def heading_number(depth: int, index: int) -> str:
    """Number a heading by its depth (1-based) and position among headed siblings (1-based)."""
    if depth == 1:
        return f"{chinese_number(index)}、"
    if depth == 2:
        return f"（{chinese_number(index)}）"
    if depth == 3:
        return f"{index}."
    return f"（{index}）"


class ReportCycle(db.Model):
    __tablename__ = "report_cycle"
    __table_args__ = (
        UniqueConstraint("region", "year"),
        CheckConstraint(f"state IN {tuple(CYCLE_STATES)}", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int]
    # The tenant owning the cycle; ``region`` is the region's name as printed in the report's title.
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    region: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    due: Mapped[date | None]
    unit_head_review: Mapped[bool] = mapped_column(default=False)
    # Whether liaisons may see (and cite) other units' figures once those are approved.
    share_approved_figures: Mapped[bool] = mapped_column(default=False)
    # One issuing body per line, printed in the closing block of the report.
    issuers: Mapped[str] = mapped_column(Text, default="")
    issue_date: Mapped[date | None]
    state: Mapped[str] = mapped_column(String(20), default="setup")
    version: Mapped[int] = mapped_column(default=1)
    # Set when an admin forces compilation with material missing.
    forced_compile_reason: Mapped[str | None] = mapped_column(Text)
    forced_missing: Mapped[list | None] = mapped_column(JSON)
    cloned_from_id: Mapped[int | None] = mapped_column(ForeignKey("report_cycle.id"))
    # When the cycle was (last) opened: the reminder policy holds back escalations of stages that
    # had already passed at that moment (a late open sends one notice, not a flood).
    opened_at: Mapped[datetime | None]
    # The day by which the report is to be published (None: 1 April of the following year).
    publish_deadline: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Region] = relationship("Region")
    sections: Mapped[list[Section]] = relationship(
        back_populates="cycle", cascade="all, delete-orphan", order_by="Section.position"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def publish_deadline_effective(self) -> date:
        """The publication deadline: set per cycle, else 1 April of the following year (the 2019
        督察工作规定: a government publishes its report in the first quarter)."""
        return self.publish_deadline or date(self.year + 1, 4, 1)

    @property
    def issuer_list(self) -> list[str]:
        return [line.strip() for line in (self.issuers or "").splitlines() if line.strip()]

    @property
    def state_label(self) -> str:
        from ..workflow.states import CYCLE_STATE_LABELS

        return CYCLE_STATE_LABELS[self.state]

    def top_sections(self) -> list[Section]:
        return [s for s in self.sections if s.parent_id is None]

    def path_labels(self) -> dict[int, str]:
        """Section id → ``Section.path_label``, for every section in one walk of the outline (a list of
        many rows asks each section's label; each one alone would number its siblings again)."""
        labels: dict[int, str] = {}

        def walk(nodes, depth: int, prefix: str) -> None:
            headed = 0
            for node in nodes:
                if node.title:
                    headed += 1
                    own = f"{heading_number(depth, headed)}{node.title}"
                else:
                    own = "（开篇段落）"
                labels[node.id] = f"{prefix} › {own}" if prefix else own
                walk(node.children, depth + 1, labels[node.id])

        walk(self.top_sections(), 1, "")
        return labels

    def __repr__(self) -> str:
        return f"<ReportCycle {self.region} {self.year}>"


section_reviewer = Table(
    "section_reviewer",
    db.metadata,
    Column("section_id", ForeignKey("section.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
)


class Section(db.Model):
    """A node of the report outline. ``title`` may be empty (an opening paragraph has no heading)."""

    __tablename__ = "section"
    __table_args__ = (UniqueConstraint("cycle_id", "code"),
                      CheckConstraint("review_mode IN ('any', 'all')", name="review_mode"))

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), index=True)
    # Stable key inside a cycle, used by cycle files to update a section in place.
    code: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(default=0)
    title: Mapped[str | None] = mapped_column(String(300))
    guidance: Mapped[str | None] = mapped_column(Text)
    word_limit: Mapped[int | None]
    # A run-in heading: the heading and the text share one paragraph (as level-two parts often do).
    run_in: Mapped[bool] = mapped_column(default=False)
    due: Mapped[date | None]
    # Who must approve a unit's material: "any" one of the section's reviewers, or "all" of them (会签).
    review_mode: Mapped[str] = mapped_column(String(10), default="any")

    cycle: Mapped[ReportCycle] = relationship(back_populates="sections")
    parent: Mapped[Section | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Section]] = relationship(
        back_populates="parent", order_by="Section.position", cascade="all, delete-orphan"
    )
    reviewers: Mapped[list[User]] = relationship(secondary=section_reviewer, order_by="User.id")
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="section", cascade="all, delete-orphan", order_by="Assignment.id"
    )

    @property
    def depth(self) -> int:
        depth, node = 1, self
        while node.parent is not None:
            depth, node = depth + 1, node.parent
        return depth

    @property
    def siblings(self) -> list[Section]:
        if self.parent is not None:
            return self.parent.children
        return self.cycle.top_sections()

    @property
    def number(self) -> str:
        """The heading number derived from position; '' for a section without a heading."""
        if not self.title:
            return ""
        headed = [s for s in self.siblings if s.title]
        return heading_number(self.depth, headed.index(self) + 1)

    @property
    def path(self) -> list[Section]:
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    @property
    def numbered_title(self) -> str:
        return f"{self.number}{self.title}" if self.title else "（开篇段落）"

    @property
    def path_label(self) -> str:
        """The numbered path, e.g. '一、主要举措和成效 › （二）优化营商环境'."""
        return " › ".join(s.numbered_title for s in self.path)

    def effective_reviewers(self) -> list:
        """Reviewers named for this section, else for the nearest ancestor that names some."""
        node = self
        while node is not None:
            if node.reviewers:
                return node.reviewers
            node = node.parent
        return []

    def effective_due(self) -> date | None:
        node = self
        while node is not None:
            if node.due:
                return node.due
            node = node.parent
        return self.cycle.due

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def __repr__(self) -> str:
        return f"<Section {self.code}>"


ASSIGNMENT_ROLES = {"lead": "牵头", "support": "配合"}


class Assignment(db.Model):
    """A section given to a unit, as lead (牵头) or support (配合), with a due date."""

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("section_id", "unit_id"),
        CheckConstraint("role IN ('lead', 'support')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    role: Mapped[str] = mapped_column(String(10), default="lead")
    # A per-unit override of the section's due date.
    due: Mapped[date | None]

    section: Mapped[Section] = relationship(back_populates="assignments")
    unit = relationship("Unit")
    contribution = relationship("Contribution", back_populates="assignment", uselist=False,
                                cascade="all, delete-orphan")

    @property
    def role_label(self) -> str:
        return ASSIGNMENT_ROLES[self.role]

    def effective_due(self) -> date | None:
        return self.due or self.section.effective_due()
