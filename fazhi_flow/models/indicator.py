"""Indicator (统计指标) and rule (校验规则) definitions of a section."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db

INDICATOR_TYPES = {"integer": "整数", "decimal": "小数", "percent": "百分比", "money": "金额"}
MEASURE_UNITS = ("件", "人", "次", "名", "个", "家", "项", "场", "份", "期", "条", "万元", "亿元", "%")


class Indicator(db.Model):
    __tablename__ = "indicator"
    __table_args__ = (
        UniqueConstraint("cycle_id", "code"),
        CheckConstraint(f"type IN {tuple(INDICATOR_TYPES)}", name="type"),
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

    section = relationship("Section", backref="indicators")


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
