"""Year over year (与上年比较): last year's approved text and values, jumps that need an explanation,
and drafts that are mostly last year's text unchanged."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from ..extensions import db
from .numbers import format_number

JUMP_FACTOR = Decimal(3)  # more than three times (or less than a third of) last year's value
SIMILARITY_THRESHOLD = 0.8


@dataclass(frozen=True)
class Jump:
    indicator: object
    previous: Decimal
    current: Decimal

    @property
    def key(self) -> str:
        return f"yoy:{self.indicator.code}"

    @property
    def message(self) -> str:
        m = self.indicator.measure or ""
        name = self.indicator.name
        old, new = format_number(self.previous), format_number(self.current)
        if self.current == 0:
            return f"“{name}”由上年的{old}{m}变为0，请说明原因（如统计口径变化、职能调整）。"
        if self.previous == 0:
            return f"“{name}”上年为0，今年为{new}{m}，请说明原因。"
        ratio = self.current / self.previous
        if ratio > 1:
            return (f"“{name}”由上年的{old}{m}增至{new}{m}，约为上年的{format_number(ratio.quantize(Decimal('0.1')))}倍，"
                    "请说明原因。")
        return (f"“{name}”由上年的{old}{m}降至{new}{m}，不足上年的三分之一，请说明原因。")


def is_jump(previous: Decimal | None, current: Decimal | None, factor: Decimal = JUMP_FACTOR) -> bool:
    """True when the change needs an explanation: beyond ×factor either way, or down to zero."""
    if previous is None or current is None:
        return False
    previous, current = Decimal(previous), Decimal(current)
    if previous == current:
        return False
    if current == 0:
        return previous != 0
    if previous == 0:
        return False  # a new activity; nothing to compare a ratio with
    ratio = abs(current / previous)
    return ratio > factor or ratio < 1 / factor


def jumps(pairs, factor: Decimal = JUMP_FACTOR) -> list[Jump]:
    """``pairs``: (indicator, previous, current) triples; return those that jumped."""
    return [Jump(ind, Decimal(prev), Decimal(cur)) for ind, prev, cur in pairs if is_jump(prev, cur, factor)]


def similarity(current: str, previous: str) -> float:
    """How much of the text is the same, 0..1 (difflib's ratio over the texts without blank space)."""
    a = "".join((current or "").split())
    b = "".join((previous or "").split())
    if not a or not b:
        return 0.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    # quick_ratio() is a cheap upper bound: far-apart texts never pay for the full comparison.
    upper = matcher.quick_ratio()
    return upper if upper <= SIMILARITY_THRESHOLD else matcher.ratio()


def mostly_unchanged(current: str, previous: str, threshold: float = SIMILARITY_THRESHOLD) -> bool:
    return similarity(current, previous) > threshold


# ---------------------------------------------------------------- last year's material


def previous_cycle(cycle):
    """The cycle this one was cloned from, else the same region's cycle of the year before."""
    from ..models import ReportCycle

    if cycle.cloned_from_id:
        found = db.session.get(ReportCycle, cycle.cloned_from_id)
        if found is not None and found.region_id == cycle.region_id:
            return found
    # By the owning region, not the printed name: two regions may print the same name.
    # A database from before regions may hold several districts' reports in its one region: the same
    # printed name first.
    return db.session.scalar(select(ReportCycle).where(
        ReportCycle.region_id == cycle.region_id, ReportCycle.year == cycle.year - 1)
        .order_by((ReportCycle.region == cycle.region).desc(), ReportCycle.id.desc()).limit(1))


def previous_contribution(contribution):
    """The same unit's contribution to the same section (matched by section code) last year."""
    from ..models import Contribution, Section

    prev = previous_cycle(contribution.cycle)
    if prev is None:
        return None
    return db.session.scalar(
        select(Contribution).join(Section, Contribution.section_id == Section.id).where(
            Contribution.cycle_id == prev.id, Section.code == contribution.section.code,
            Contribution.unit_id == contribution.unit_id))


def approved_text(contribution) -> str | None:
    """Last year's text as approved: the body once approved, else None (never an unapproved draft)."""
    if contribution is None or contribution.state != "approved":
        return None
    return contribution.body or ""


def previous_values(contribution) -> dict:
    """Last year's approved values of the same unit, by indicator code (Decimal)."""
    from ..models.indicator import Indicator, IndicatorValue

    prev = previous_contribution(contribution)
    if prev is None or prev.state != "approved":
        return {}
    rows = db.session.execute(
        select(Indicator.code, IndicatorValue.value).join(IndicatorValue, IndicatorValue.indicator_id == Indicator.id)
        .where(IndicatorValue.contribution_id == prev.id))
    return {code: Decimal(value) for code, value in rows if value is not None}


def previous_section_material(contribution) -> list:
    """Last year's approved contributions of the same section (matched by section code), every unit on
    it, lead units first. Only this section: a liaison reads last year's material of the sections its
    unit works on this year, nothing else."""
    from ..models import Assignment, Contribution, Section, Unit

    prev = previous_cycle(contribution.cycle)
    if prev is None:
        return []
    return list(db.session.scalars(
        select(Contribution).join(Section, Contribution.section_id == Section.id)
        .join(Assignment, Assignment.id == Contribution.assignment_id)
        .join(Unit, Unit.id == Contribution.unit_id)
        .where(Contribution.cycle_id == prev.id, Section.code == contribution.section.code,
               Contribution.state == "approved")
        # The editor shows each unit, its role and the figures of its last revision: load them here.
        .options(contains_eager(Contribution.assignment), contains_eager(Contribution.unit),
                 selectinload(Contribution.revisions))
        # 'lead' sorts before 'support'
        .order_by(Assignment.role, Unit.sort_order, Unit.id)))


def approved_snapshot(contribution) -> dict:
    """The values as approved (the last revision's snapshot), by indicator code, as submitted text."""
    revisions = contribution.revisions
    data = (revisions[-1].data or {}) if revisions else {}
    return dict(data.get("figures") or {})
