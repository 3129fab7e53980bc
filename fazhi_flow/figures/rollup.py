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
    from ..models import Region

    wanted = [i for i in indicators if i.rollup]
    if not wanted:
        return {}
    owner = cycle.owner if cycle.owner is not None else db.session.get(Region, cycle.region_id)
    if owner is None or not owner.path:
        return {i.id: Rollup(i, i.rollup, [], combine(i.rollup, [])) for i in wanted}
    tree = _Tree(owner, cycle.year, sorted({i.code for i in wanted}))
    result = {}
    for ind in wanted:
        parts = tree.parts_of(owner.id, ind.code)
        result[ind.id] = Rollup(ind, ind.rollup, parts, combine(ind.rollup, [p.value for p in parts]))
    return result


class _Tree:
    """The regions below ``owner``, their cycles of ``year`` and the approved sums of ``codes``."""

    def __init__(self, owner, year: int, codes: list[str]):
        from ..models import Region

        self.year, self.codes = year, codes
        self.below = (Region.path.startswith(owner.path, autoescape=True) & (Region.id != owner.id)
                      & Region.active.is_(True))
        self.children: dict[int, list] = {}
        for row in db.session.execute(
                select(Region.id, Region.parent_id, Region.name, Region.code)
                .where(self.below).order_by(Region.sort_order, Region.code, Region.id)):
            self.children.setdefault(row.parent_id, []).append(row)
        self.cycles: dict[int, tuple] = self._cycles() if self.children else {}  # region id -> (cycle id, state)
        # (cycle id, code) -> the child indicator's own rollup (None: its units enter it)
        self.found: dict[tuple[int, str], str | None] = {}
        self.sums: dict[tuple[int, str], Decimal] = {}
        if self.cycles:
            self._read_indicators()
        self.memo: dict[tuple[int, str], list[RollupPart]] = {}

    def _cycles(self) -> dict[int, tuple]:
        from ..models import Region, ReportCycle

        cycles = {}
        for cid, region_id, state in db.session.execute(
                select(ReportCycle.id, ReportCycle.region_id, ReportCycle.state)
                .join(Region, Region.id == ReportCycle.region_id)
                .where(self.below, ReportCycle.year == self.year).order_by(ReportCycle.id)):
            # One report per region and year; were there two, the published one, else the latest.
            current = cycles.get(region_id)
            if current is None or state == "published" or current[1] != "published":
                cycles[region_id] = (cid, state)
        return cycles

    def _read_indicators(self) -> None:
        from ..models import Contribution, Region, ReportCycle
        from ..models.indicator import Indicator, IndicatorValue

        in_tree = and_(self.below, ReportCycle.year == self.year, Indicator.code.in_(self.codes))
        for cid, code, how in db.session.execute(
                select(Indicator.cycle_id, Indicator.code, Indicator.rollup)
                .join(ReportCycle, ReportCycle.id == Indicator.cycle_id)
                .join(Region, Region.id == ReportCycle.region_id).where(in_tree)):
            self.found[(cid, code)] = how
        approved = Contribution.state == "approved"
        # The value the reviewer approved (an approved contribution's value cannot have changed since);
        # in a published report, the value last approved of material reopened after.
        counted = case((approved, func.coalesce(IndicatorValue.approved_value, IndicatorValue.value)),
                       else_=IndicatorValue.approved_value)
        for cid, code, total in db.session.execute(
                select(Indicator.cycle_id, Indicator.code, func.sum(counted))
                .join(IndicatorValue, IndicatorValue.indicator_id == Indicator.id)
                .join(Contribution, Contribution.id == IndicatorValue.contribution_id)
                .join(ReportCycle, ReportCycle.id == Indicator.cycle_id)
                .join(Region, Region.id == ReportCycle.region_id)
                .where(in_tree, Indicator.rollup.is_(None), or_(approved, ReportCycle.state == "published"))
                .group_by(Indicator.cycle_id, Indicator.code)):
            if total is not None:
                self.sums[(cid, code)] = Decimal(total)

    def parts_of(self, region_id: int, code: str, depth: int = 0) -> list[RollupPart]:
        """Each child region of ``region_id`` with its value of ``code``."""
        key = (region_id, code)
        if key not in self.memo:
            self.memo[key] = [self._part(child, code, depth) for child in self.children.get(region_id, [])]
        return self.memo[key]

    def _part(self, child, code: str, depth: int) -> RollupPart:
        cid, state = self.cycles.get(child.id, (None, None))
        defined = cid is None or (cid, code) in self.found
        value, how = None, self.found.get((cid, code)) if cid is not None else None
        # Paths are prefixes, so the tree has no loops; the depth bound is for safety only.
        if how and depth < 16:
            value = combine(how, [p.value for p in self.parts_of(child.id, code, depth + 1)])
        elif cid is not None and defined and not how:
            value = self.sums.get((cid, code))
        return RollupPart(child.id, child.name, child.code, cid, state, value, bool(how), defined)
