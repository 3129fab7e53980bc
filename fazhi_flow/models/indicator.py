"""Indicator (统计指标) and rule (校验规则) definitions of a section."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow

INDICATOR_TYPES = {"integer": "整数", "decimal": "小数", "percent": "百分比", "money": "金额"}
REPORTED_BY = {"all": "章节的每个承办单位", "lead": "仅牵头单位"}
ROLLUPS = {"sum": "合计", "avg": "平均", "count": "填报地区数", "min": "最小值", "max": "最大值"}
MEASURE_UNITS = ("件", "人", "次", "名", "个", "家", "项", "场", "份", "期", "条", "万元", "亿元", "%")


class Indicator(db.Model):
    __tablename__ = "indicator"
    __table_args__ = (
        UniqueConstraint("cycle_id", "code"),
        CheckConstraint(f"type IN {tuple(INDICATOR_TYPES)}", name="type"),
        CheckConstraint("reported_by IN ('all', 'lead')", name="reported_by"),
        CheckConstraint(f"rollup IS NULL OR rollup IN {tuple(ROLLUPS)}", name="rollup"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    measure: Mapped[str] = mapped_column(String(10), default="件")
    type: Mapped[str] = mapped_column(String(10), default="integer")
    required: Mapped[bool] = mapped_column(default=False)
    minimum = mapped_column(Numeric(20, 4), nullable=True)
    maximum = mapped_column(Numeric(20, 4), nullable=True)
    guidance: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=0)
    # Who enters the value: every unit assigned to the section ("all") or only the lead unit ("lead").
    reported_by: Mapped[str] = mapped_column(String(10), default="all", server_default="all")
    # A roll-up figure (city or province cycles): the value is taken from the regions below, from their
    # same-year cycles' indicator with the same code (sum, avg, count, min, max); nobody enters it.
    rollup: Mapped[str | None] = mapped_column(String(10))

    section = relationship("Section", backref="indicators")

    @property
    def type_label(self) -> str:
        return INDICATOR_TYPES.get(self.type, self.type)

    @property
    def reporters_label(self) -> str:
        return REPORTED_BY.get(self.reported_by or "all", self.reported_by)

    def reports(self, assignment) -> bool:
        """True when the unit of ``assignment`` (in this indicator's section) enters this value."""
        if assignment is None or assignment.section_id != self.section_id:
            return False
        return (self.reported_by or "all") == "all" or assignment.role == "lead"

    def __repr__(self) -> str:
        return f"<Indicator {self.code}>"


class Rule(db.Model):
    __tablename__ = "rule"
    __table_args__ = (CheckConstraint("severity IN ('error', 'warning')", name="severity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True)
    section_id: Mapped[int | None] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"), index=True)
    expression: Mapped[str] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(10), default="error")
    message: Mapped[str | None] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(default=0)

    section = relationship("Section", backref="rules")


class IndicatorValue(db.Model):
    """One unit's value of one indicator: at most one per (contribution, indicator)."""

    __tablename__ = "indicator_value"
    __table_args__ = (UniqueConstraint("contribution_id", "indicator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    indicator_id: Mapped[int] = mapped_column(ForeignKey("indicator.id", ondelete="CASCADE"), index=True)
    value = mapped_column(Numeric(20, 4), nullable=True)
    # The value when the contribution was last approved, so a later change can show what it affects.
    approved_value = mapped_column(Numeric(20, 4), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    indicator = relationship("Indicator")
    contribution = relationship("Contribution")


class FigureExplanation(db.Model):
    """A liaison's written explanation of a flagged figure.

    ``key`` names what is explained: ``rule:<rule id>`` (a warning rule that does not hold) or
    ``yoy:<indicator code>`` (a change from last year beyond the threshold).
    """

    __tablename__ = "figure_explanation"
    __table_args__ = (UniqueConstraint("contribution_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    author = relationship("User")
