"""Roll-up figures (汇总指标): a city's or province's indicator whose value comes from the regions below.

For an indicator with ``rollup`` set, each direct child region contributes its value: its cycle of the
same year, the indicator with the same code, the sum of its units' approved values (a contribution
approved, or the child's report published) — or, when the child's indicator is itself a roll-up, the
child's own roll-up value (a province rolls up cities that roll up their districts). The indicator's
value is then the sum, average, count, minimum or maximum over the children that have a value.

Everything is read in a fixed number of statements whatever the number of regions: the regions below,
their cycles of the year, their indicators with the roll-up codes, and one aggregate of the approved
values; the tree is then computed in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, case, func, or_, select

from ..extensions import db
from .numbers import format_number

# An average prints like a rate: two decimals.
AVERAGE_PLACES = Decimal("0.01")
NO_CYCLE = "尚无本年度报告"
NO_INDICATOR = "年度报告中没有该指标"
NO_VALUE = "尚无审核通过的数值"


@dataclass(frozen=True, slots=True)
class RollupPart:
    """One child region's share of a roll-up: its value (None: nothing counted) and its cycle's state."""

    region_id: int
    region_name: str
    region_code: str
    cycle_id: int | None
    cycle_state: str | None
    value: Decimal | None
    rolled_up: bool = False  # the child's own value is a roll-up of the regions below it
    defined: bool = True  # the child's report defines an indicator with this code

    @property
    def state_label(self) -> str:
        from ..workflow.states import CYCLE_STATE_LABELS

        return CYCLE_STATE_LABELS.get(self.cycle_state, self.cycle_state) if self.cycle_state else NO_CYCLE

    @property
    def note(self) -> str:
        """Why the part has no value, or how it was obtained."""
        if self.cycle_id is None:
            return NO_CYCLE
        if not self.defined:
            return NO_INDICATOR
        if self.value is None:
            return NO_VALUE
        return "下级地区汇总" if self.rolled_up else "审核通过的数值"

    @property
    def display(self) -> str:
        return format_number(self.value) if self.value is not None else "—"


@dataclass
class Rollup:
    indicator: object
    how: str
    parts: list[RollupPart] = field(default_factory=list)
    value: Decimal | None = None

    @property
    def counted(self) -> int:
        """Child regions with a value."""
        return sum(1 for p in self.parts if p.value is not None)

    @property
    def how_label(self) -> str:
        from ..models.indicator import ROLLUPS

        return ROLLUPS.get(self.how, self.how)

    @property
    def display(self) -> str:
        return format_number(self.value) if self.value is not None else "—"


def combine(how: str, values) -> Decimal | None:
    """``how`` (sum/avg/count/min/max) over the values that are not None; None when there are none
    (count: 0 regions is a count, so 0)."""
    present = [Decimal(v) for v in values if v is not None]
    if how == "count":
        return Decimal(len(present))
    if not present:
        return None
    if how == "sum":
        return sum(present, Decimal(0))
    if how == "avg":
        return (sum(present, Decimal(0)) / len(present)).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)
    if how == "min":
        return min(present)
    if how == "max":
        return max(present)
    raise ValueError(f"unknown roll-up {how!r}")


def load_rollups(cycle, indicators) -> dict[int, Rollup]:
    """Indicator id → its ``Rollup`` for the roll-up indicators among ``indicators`` of ``cycle``.

    Nothing is read when none of them is a roll-up; otherwise five statements at most, whatever the
    number of regions below.
    """
    from ..models import Contribution, Region, ReportCycle
    from ..models.indicator import Indicator, IndicatorValue

    wanted = [i for i in indicators if i.rollup]
    if not wanted:
        return {}
    owner = cycle.owner if cycle.owner is not None else db.session.get(Region, cycle.region_id)
    if owner is None or not owner.path:
        return {i.id: Rollup(i, i.rollup, [], combine(i.rollup, [])) for i in wanted}
    codes = sorted({i.code for i in wanted})
    below = Region.path.startswith(owner.path, autoescape=True) & (Region.id != owner.id) & Region.active.is_(True)
    regions = db.session.execute(
        select(Region.id, Region.parent_id, Region.name, Region.code, Region.path)
        .where(below).order_by(Region.sort_order, Region.code, Region.id)).all()
    children: dict[int, list] = {}
    for row in regions:
        children.setdefault(row.parent_id, []).append(row)
    cycles: dict[int, tuple] = {}  # region id -> (cycle id, state)
    if regions:
        for cid, region_id, state in db.session.execute(
                select(ReportCycle.id, ReportCycle.region_id, ReportCycle.state)
                .join(Region, Region.id == ReportCycle.region_id)
                .where(below, ReportCycle.year == cycle.year).order_by(ReportCycle.id)):
            # One report per region and year; were there two, the published one, else the latest.
            current = cycles.get(region_id)
            if current is None or state == "published" or current[1] != "published":
                cycles[region_id] = (cid, state)
    found: dict[tuple[int, str], str | None] = {}  # (cycle id, code) -> the child indicator's rollup
    sums: dict[tuple[int, str], Decimal] = {}
    if cycles:
        in_tree = and_(below, ReportCycle.year == cycle.year, Indicator.code.in_(codes))
        for cid, code, how in db.session.execute(
                select(Indicator.cycle_id, Indicator.code, Indicator.rollup)
                .join(ReportCycle, ReportCycle.id == Indicator.cycle_id)
                .join(Region, Region.id == ReportCycle.region_id).where(in_tree)):
            found[(cid, code)] = how
        approved = Contribution.state == "approved"
        # The value the reviewer approved; an approved contribution's value cannot have changed since.
        counted = case((approved, func.coalesce(IndicatorValue.approved_value, IndicatorValue.value)),
                       else_=IndicatorValue.approved_value)
        for cid, code, total in db.session.execute(
                select(Indicator.cycle_id, Indicator.code, func.sum(counted))
                .join(IndicatorValue, IndicatorValue.indicator_id == Indicator.id)
                .join(Contribution, Contribution.id == IndicatorValue.contribution_id)
                .join(ReportCycle, ReportCycle.id == Indicator.cycle_id)
                .join(Region, Region.id == ReportCycle.region_id)
                .where(in_tree, Indicator.rollup.is_(None),
                       or_(approved, ReportCycle.state == "published"))
                .group_by(Indicator.cycle_id, Indicator.code)):
            if total is not None:
                sums[(cid, code)] = Decimal(total)

    memo: dict[tuple[int, str], list[RollupPart]] = {}

    def parts_of(region_id: int, code: str, depth: int = 0) -> list[RollupPart]:
        key = (region_id, code)
        if key in memo:
            return memo[key]
        parts = []
        for child in children.get(region_id, []):
            cid, state = cycles.get(child.id, (None, None))
            value, rolled, defined = None, False, cid is None or (cid, code) in found
            if cid is not None and defined and found[(cid, code)]:
                rolled = True
                # Paths are prefixes, so the tree has no loops; the depth bound is for safety only.
                if depth < 16:
                    value = combine(found[(cid, code)], [p.value for p in parts_of(child.id, code, depth + 1)])
            elif cid is not None and defined:
                value = sums.get((cid, code))
            parts.append(RollupPart(child.id, child.name, child.code, cid, state, value, rolled, defined))
        memo[key] = parts
        return parts

    result = {}
    for ind in wanted:
        parts = parts_of(owner.id, ind.code)
        result[ind.id] = Rollup(ind, ind.rollup, parts, combine(ind.rollup, [p.value for p in parts]))
    return result
