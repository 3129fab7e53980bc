"""督导: what an oversight user reads about the regions below its own, and the reminder (督办) it sends.

Every figure of every region comes from a fixed number of aggregate statements (grouped by cycle, so
by region), never one per region: a province's office looks at 100+ districts at once.

The figures mean what the region's own dashboard means (services/dashboard.py): completion is
approved cells over all cells (assignments), on time is "first submitted by its due date" over the
cells that were submitted or are past due, a cell's due date being its own, else its section's
(inherited), else the cycle's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Date, case, cast, func, literal_column, or_, select

from .. import policy, xlsx
from ..errors import DomainError
from ..extensions import db
from ..models import (Assignment, AuditEvent, Contribution, Indicator, Publication, Region, ReportCycle, Revision,
                      Section, TransitionLog, User, UserRole)
from ..models.indicator import IndicatorValue
from ..timeutil import cn_date_text, local_today, local_zone, to_local
from . import audit

# Contribution events that send material back to the unit (退回修改 by a reviewer or a unit head).
RETURN_EVENTS = ("return", "unit_return")
REMIND_ACTION = "oversight.remind"
REMIND_MAX = 500  # characters of a 督办 text
REMIND_KIND = "other"  # in-app notice kind (shown as 通知)


# ------------------------------------------------------------------ who may see what


def may_oversee(user, region) -> bool:
    """An oversight user (督导) over ``region``, a region strictly below its own."""
    return policy.can(user, "oversight.view") and region is not None and policy.oversees(user, region)


@dataclass(slots=True)
class Node:
    region: Region
    depth: int  # 0 for the regions right below the overseer's own


def regions_below(own: Region | None) -> list[Node]:
    """The active regions strictly below ``own`` (the overseer's region), in tree order (parents before
    their children, siblings by sort order and code), in one statement."""
    from .regions import region_tree

    if own is None or not own.path:
        return []
    return [Node(n.region, n.depth - 1) for n in region_tree(own, active_only=True) if n.region.id != own.id]


def years_of(own: Region) -> list[int]:
    """The years for which a region below ``own`` has a cycle, newest first."""
    below = select(Region.id).where(Region.path.startswith(own.path, autoescape=True), Region.id != own.id,
                                    Region.active.is_(True))
    return list(db.session.scalars(
        select(ReportCycle.year).where(ReportCycle.region_id.in_(below))
        .distinct().order_by(ReportCycle.year.desc())))


def _cycles_by_region(region_ids, years) -> dict[tuple[int, int], ReportCycle]:
    """(region id, year) -> the region's cycle of that year (the newest when there were several)."""
    if not region_ids:
        return {}
    found: dict[tuple[int, int], ReportCycle] = {}
    for cycle in db.session.scalars(select(ReportCycle).where(
            ReportCycle.region_id.in_(region_ids), ReportCycle.year.in_(years)).order_by(ReportCycle.id)):
        # One report per region and year; were there two, the published one, else the latest (as the
        # roll-up figures choose, figures/rollup.py).
        key = (cycle.region_id, cycle.year)
        if key not in found or cycle.state == "published" or found[key].state != "published":
            found[key] = cycle
    return found


# ------------------------------------------------------------------ the list of regions


@dataclass(slots=True)
class PublicationRef:
    id: int
    version: int
    published_at: datetime
    has_pdf: bool


@dataclass
class RegionRow:
    region: Region
    depth: int
    cycle: ReportCycle | None
    today: date
    total: int = 0
    approved: int = 0
    on_time: int = 0
    on_time_base: int = 0
    returns: int = 0
    publications: list[PublicationRef] = field(default_factory=list)  # by version
    last_reminder: datetime | None = None

    @property
    def state_label(self) -> str:
        return self.cycle.state_label if self.cycle is not None else "未创建"

    @property
    def completion(self) -> float | None:
        return self.approved / self.total if self.total else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.on_time_base if self.on_time_base else None

    @property
    def first_publication(self) -> PublicationRef | None:
        return self.publications[0] if self.publications else None

    @property
    def latest_publication(self) -> PublicationRef | None:
        return self.publications[-1] if self.publications else None

    @property
    def deadline(self) -> date | None:
        return self.cycle.publish_deadline_effective if self.cycle is not None else None

    @property
    def days_left(self) -> int | None:
        """Days from today to the publication deadline (negative: past it)."""
        return (self.deadline - self.today).days if self.deadline is not None else None

    @property
    def deadline_text(self) -> str:
        """'还有12天', '今天截止', '已逾期3天'; for a published report, whether it was in time."""
        if self.cycle is None:
            return ""
        first = self.first_publication
        if first is not None:
            late = (_local_day(first.published_at) - self.deadline).days
            return f"逾期{late}天发布" if late > 0 else "按期发布"
        days = self.days_left
        if days > 0:
            return f"还有{days}天"
        return "今天截止" if days == 0 else f"已逾期{-days}天"

    @property
    def overdue(self) -> bool:
        return self.cycle is not None and self.first_publication is None and self.days_left < 0


@dataclass
class Overview:
    own: Region | None  # the overseer's region
    year: int | None
    years: list[int]
    rows: list[RegionRow]
    today: date


def overview(user, year: int | None = None, today: date | None = None) -> Overview:
    """Every region below ``user``'s with its cycle of ``year`` (default: the latest year any has)."""
    today = today or local_today()
    own = db.session.get(Region, user.region_id)
    nodes = regions_below(own)
    years = years_of(own) if nodes else []
    if year is None:
        year = years[0] if years else None
    rows = {}
    cycles = _cycles_by_region([n.region.id for n in nodes], [year]) if year is not None else {}
    for node in nodes:
        rows[node.region.id] = RegionRow(node.region, node.depth, cycles.get((node.region.id, year)), today)
    by_cycle = {row.cycle.id: row for row in rows.values() if row.cycle is not None}
    if by_cycle:
        _fill_cells(by_cycle, today)
        _fill_returns(by_cycle)
        _fill_publications(by_cycle)
    if rows:
        _fill_reminders(rows)
    return Overview(own, year, years, list(rows.values()), today)


def _local_day(at: datetime) -> date:
    return to_local(at).date()


def _local_day_sql(column):
    """The local calendar day of a naive UTC timestamp, in SQL. The zone's offset now is used: Beijing
    time (the default zone) has had no daylight saving since 1991. Rendered inline (an int we
    computed), so the same expression may be grouped by on PostgreSQL."""
    minutes = int(datetime.now(local_zone()).utcoffset() / timedelta(minutes=1))
    if db.engine.dialect.name == "sqlite":
        return func.date(column, literal_column(f"'{minutes:+d} minutes'"))
    return cast(column + literal_column(f"INTERVAL '{minutes} minutes'"), Date)


def _section_dues(cycles: dict[int, RegionRow]) -> dict[int, date | None]:
    """Section id -> its effective due date (own, else inherited, else the cycle's), in one statement."""
    rows = db.session.execute(select(Section.id, Section.parent_id, Section.due, Section.cycle_id)
                              .where(Section.cycle_id.in_(list(cycles)))).all()
    own = {sid: (parent, due, cid) for sid, parent, due, cid in rows}
    found: dict[int, date | None] = {}

    def effective(sid: int) -> date | None:
        if sid not in found:
            parent, due, cid = own[sid]
            found[sid] = due if due is not None else (
                effective(parent) if parent in own else cycles[cid].cycle.due)
        return found[sid]

    return {sid: effective(sid) for sid in own}


def _fill_cells(cycles: dict[int, RegionRow], today: date) -> None:
    """Completion and on-time counts of every cycle: cells grouped by cycle, section, own due date,
    state and day of first submission (a few rows per section however many units)."""
    dues = _section_dues(cycles)
    first = (select(Revision.contribution_id.label("cid"),
                    _local_day_sql(func.min(Revision.created_at)).label("day"))
             .join(Contribution, Contribution.id == Revision.contribution_id)
             .where(Contribution.cycle_id.in_(list(cycles))).group_by(Revision.contribution_id).subquery())
    query = (select(Section.cycle_id, Assignment.section_id, Assignment.due, Contribution.state, first.c.day,
                    func.count())
             .select_from(Assignment).join(Section, Section.id == Assignment.section_id)
             .outerjoin(Contribution, Contribution.assignment_id == Assignment.id)
             .outerjoin(first, first.c.cid == Contribution.id)
             .where(Section.cycle_id.in_(list(cycles)))
             .group_by(Section.cycle_id, Assignment.section_id, Assignment.due, Contribution.state, first.c.day))
    for cycle_id, section_id, own_due, state, day, number in db.session.execute(query):
        row = cycles[cycle_id]
        if isinstance(day, str):  # SQLite's date() is text
            day = date.fromisoformat(day)
        row.total += number
        row.approved += number if state == "approved" else 0
        due = own_due or dues.get(section_id)
        if due is not None and (day is not None or due < today):
            row.on_time_base += number
            row.on_time += number if day is not None and day <= due else 0


def _fill_returns(cycles: dict[int, RegionRow]) -> None:
    query = (select(Contribution.cycle_id, func.count())
             .join(TransitionLog, TransitionLog.contribution_id == Contribution.id)
             .where(Contribution.cycle_id.in_(list(cycles)), TransitionLog.event.in_(RETURN_EVENTS))
             .group_by(Contribution.cycle_id))
    for cycle_id, number in db.session.execute(query):
        cycles[cycle_id].returns = number


def _fill_publications(cycles: dict[int, RegionRow]) -> None:
    # Columns only: the stored files stay in the database.
    query = (select(Publication.id, Publication.cycle_id, Publication.version, Publication.published_at,
                    Publication.pdf_sha256.is_not(None))
             .where(Publication.cycle_id.in_(list(cycles))).order_by(Publication.cycle_id, Publication.version))
    for pid, cycle_id, version, at, has_pdf in db.session.execute(query):
        cycles[cycle_id].publications.append(PublicationRef(pid, version, at, bool(has_pdf)))


def _target(region_id: int) -> str:
    return f"region:{region_id}"


def _fill_reminders(rows: dict[int, RegionRow]) -> None:
    targets = {_target(rid): row for rid, row in rows.items()}
    query = (select(AuditEvent.target, func.max(AuditEvent.created_at))
             .where(AuditEvent.action == REMIND_ACTION, AuditEvent.target.in_(list(targets)))
             .group_by(AuditEvent.target))
    for target, at in db.session.execute(query):
        targets[target].last_reminder = at


# ------------------------------------------------------------------ 督办


def region_admins(region: Region) -> list[User]:
    """The active admins of ``region`` (its 依法治区办), who receive a 督办."""
    return list(db.session.scalars(
        select(User).join(UserRole).where(UserRole.role == "admin", User.region_id == region.id,
                                          User.active.is_(True)).order_by(User.id)).unique())


def check_reminder_text(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise DomainError("请填写督办内容。")
    if len(text) > REMIND_MAX:
        raise DomainError(f"督办内容不能超过{REMIND_MAX}个字（现在是{len(text)}个字）。")
    return text


def remind(actor, region: Region, text: str | None, year: int | None = None) -> int:
    """Send a 督办 to ``region``'s admins (in-app and e-mail, as each chose), audited; returns how
    many were told. Refused (nothing written) for a region the actor does not oversee."""
    from ..notify.messages import Message, absolute, cycle_link
    from ..notify.outbox import send_to_users

    if not may_oversee(actor, region):
        raise DomainError("您不能对这个地区督办。")
    text = check_reminder_text(text)
    admins = region_admins(region)
    if not admins:
        raise DomainError(f"{region.name}还没有启用的管理员账号，督办无法送达。")
    cycle = None
    if year is not None:
        cycle = db.session.scalar(select(ReportCycle).where(
            ReportCycle.region_id == region.id, ReportCycle.year == year).order_by(ReportCycle.id.desc()).limit(1))
    link = cycle_link(cycle) if cycle is not None else absolute("/")
    sender = db.session.get(Region, actor.region_id)
    subject = f"督办：{sender.name}的提醒"
    about = f"（{cycle.year}年度报告，当前状态：{cycle.state_label}）" if cycle is not None else ""
    body = f"{sender.name}{actor.name}向{region.name}发出督办{about}：\n\n{text}\n\n查看：{link}"
    told = send_to_users(admins, Message(subject=subject, body=body, short=f"{subject}\n{text}\n{link}",
                                         link=link), cause="oversight:remind", inapp_kind=REMIND_KIND)
    audit.record(actor, REMIND_ACTION, target=_target(region.id), name=region.name, note=text,
                 year=year, count=told)
    return told


# ------------------------------------------------------------------ indicator comparison


@dataclass(slots=True)
class IndicatorColumn:
    code: str
    name: str
    measure: str
    type: str


@dataclass
class ComparisonRow:
    region: Region
    depth: int
    cycle: ReportCycle | None
    values: dict[str, Decimal | None] = field(default_factory=dict)
    previous: dict[str, Decimal | None] = field(default_factory=dict)

    def value(self, code: str) -> Decimal | None:
        return self.values.get(code)

    def ratio(self, code: str, per: str | None) -> Decimal | None:
        """The value over the region's value of the denominator indicator ``per``."""
        if per is None:
            return None
        top, bottom = self.values.get(code), self.values.get(per)
        if top is None or not bottom:
            return None
        return top / bottom

    def change(self, code: str) -> Decimal | None:
        """Year-over-year change against the region's previous-year value of the same code."""
        now, before = self.values.get(code), self.previous.get(code)
        if now is None or not before:
            return None
        return (now - before) / before


@dataclass
class Comparison:
    own: Region | None  # the overseer's region
    year: int | None
    years: list[int]
    columns: list[IndicatorColumn]
    rows: list[ComparisonRow]
    per: IndicatorColumn | None
    error: str | None = None
    generated: date | None = None

    def has_ratio(self, column: IndicatorColumn) -> bool:
        """Whether ``column`` gets a ratio to ``per``: not the denominator itself, nor a percentage."""
        return self.per is not None and column.code != self.per.code and column.type != "percent"

    def ratio_label(self, column: IndicatorColumn) -> str:
        """'占比', or per capita as '每万人' (the denominator's measure)."""
        return "占比" if self.is_share(column) else f"每{self.per.measure}"

    def is_share(self, column: IndicatorColumn) -> bool:
        """A share (same measure over same measure: shown as a percentage), else a per-capita ratio."""
        return self.per is not None and column.measure == self.per.measure


NOTE = ("各地区的数值为该地区当年年度报告中审核通过的材料所填数值之和（已发布的报告按审核通过时的数值），"
        "百分比类指标取各单位的平均值；汇总指标（由下级地区汇总）按其汇总方式计算。代码相同的指标视为同一指标。"
        "同比与该地区上一年度年度报告中同一代码的指标相比。")


def comparison(user, year: int | None = None, per: str | None = None) -> Comparison:
    """Regions below × indicator codes of their cycles of ``year``: values (approved), the ratio to
    the ``per`` indicator when given, and the change from the previous year. Four statements besides
    the tree and the years, whatever the number of regions."""
    own = db.session.get(Region, user.region_id)
    nodes = regions_below(own)
    years = years_of(own) if nodes else []
    if year is None:
        year = years[0] if years else None
    result = Comparison(own, year, years, [], [], None, generated=local_today())
    if year is None:
        return result
    cycles = _cycles_by_region([n.region.id for n in nodes], [year, year - 1])
    result.rows = [ComparisonRow(n.region, n.depth, cycles.get((n.region.id, year))) for n in nodes]
    if cycles:
        defined = _definitions(cycles.values(), year)
        result.columns = defined.columns
        _fill_values(result.rows, cycles, defined, year)
    if per:
        result.per = next((c for c in result.columns if c.code == per), None)
        if result.per is None:
            result.error = f"参数 per：{year}年各地区的年度报告中没有代码为“{per[:60]}”的统计指标，未计算人均或占比。"
    return result


@dataclass
class _Definitions:
    columns: list[IndicatorColumn]
    types: dict[tuple[int, str], str]  # (cycle id, code) -> type
    rollups: dict[tuple[int, str], str]  # (cycle id, code) -> how, for roll-up indicators


def _definitions(cycles, year: int) -> _Definitions:
    """The indicators of the cycles; the columns are the codes of ``year``'s, in outline order (the
    first definition names a code)."""
    by_id = {c.id: c for c in cycles}
    query = (select(Indicator.cycle_id, Indicator.code, Indicator.name, Indicator.measure, Indicator.type,
                    Indicator.rollup)
             .join(Section, Section.id == Indicator.section_id)
             .where(Indicator.cycle_id.in_(list(by_id)))
             .order_by(Section.position, Indicator.position, Indicator.code, Indicator.cycle_id))
    columns: dict[str, IndicatorColumn] = {}
    defined = _Definitions([], {}, {})
    for cycle_id, code, name, measure, kind, how in db.session.execute(query):
        defined.types[(cycle_id, code)] = kind
        if how:
            defined.rollups[(cycle_id, code)] = how
        if by_id[cycle_id].year == year:
            columns.setdefault(code, IndicatorColumn(code, name, measure, kind))
    defined.columns = list(columns.values())
    return defined


def _fill_values(rows: list[ComparisonRow], cycles: dict, defined: _Definitions, year: int) -> None:
    """Each region's value per code and year: its approved values (one aggregate), or for a roll-up
    indicator the roll-up of the regions right below it, computed here from the same figures."""
    from ..figures.rollup import combine

    approved = Contribution.state == "approved"
    # The same figures as the roll-ups count (figures/rollup.py): approved material, or a published report.
    counted = case((approved, func.coalesce(IndicatorValue.approved_value, IndicatorValue.value)),
                   else_=IndicatorValue.approved_value)
    ids = [c.id for c in cycles.values()]
    query = (select(Indicator.cycle_id, Indicator.code, func.sum(counted), func.count(counted))
             .join(IndicatorValue, IndicatorValue.indicator_id == Indicator.id)
             .join(Contribution, Contribution.id == IndicatorValue.contribution_id)
             .join(ReportCycle, ReportCycle.id == Indicator.cycle_id)
             .where(Indicator.cycle_id.in_(ids), Indicator.rollup.is_(None),
                    or_(approved, ReportCycle.state == "published"))
             .group_by(Indicator.cycle_id, Indicator.code))
    sums: dict[tuple[int, str], Decimal] = {}
    for cycle_id, code, total, number in db.session.execute(query):
        if total is not None and number:
            total = Decimal(total)
            sums[(cycle_id, code)] = total / number if defined.types.get((cycle_id, code)) == "percent" else total
    children: dict[int, list[int]] = {}
    for row in rows:
        children.setdefault(row.region.parent_id, []).append(row.region.id)
    memo: dict[tuple[int, int, str], Decimal | None] = {}

    def value(region_id: int, y: int, code: str) -> Decimal | None:
        key = (region_id, y, code)
        if key not in memo:
            memo[key] = None  # a guard; paths make the tree loop-free
            cycle = cycles.get((region_id, y))
            how = defined.rollups.get((cycle.id, code)) if cycle is not None else None
            if how:
                memo[key] = combine(how, [value(child, y, code) for child in children.get(region_id, [])])
            elif cycle is not None:
                memo[key] = sums.get((cycle.id, code))
        return memo[key]

    codes = [c.code for c in defined.columns]
    for row in rows:
        for code in codes:
            row.values[code] = value(row.region.id, year, code)
            row.previous[code] = value(row.region.id, year - 1, code)


# ------------------------------------------------------------------ words and numbers


def percent(value: float | Decimal | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:+.1f}%" if signed else f"{float(value) * 100:.0f}%"


def number_text(value: Decimal | None) -> str:
    """A figure as written in the report: whole numbers without decimals, others to 2 places at most."""
    if value is None:
        return "—"
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.quantize(Decimal('0.01')).normalize():,f}"


def ratio_text(value: Decimal | None, share: bool) -> str:
    if value is None:
        return "—"
    if share:
        return f"{float(value) * 100:.1f}%"
    return f"{Decimal(value).quantize(Decimal('0.0001')).normalize():f}"


# ------------------------------------------------------------------ XLSX


def export_xlsx(table: Comparison) -> bytes:
    """The comparison table as a workbook: one row per region, per indicator its value (and ratio) and
    the year-over-year change; a second sheet says what the figures are."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "指标对比"
    titles, widths = ["地区", "级别", "年度报告状态"], [24, 8, 12]
    for column in table.columns:
        titles.append(f"{column.name}（{column.code}，{column.measure}）")
        widths.append(16)
        if table.has_ratio(column):
            titles.append(f"{column.name}÷{table.per.name}（{table.ratio_label(column)}）")
            widths.append(14)
        titles.append(f"{column.name}同比")
        widths.append(10)
    xlsx.sheet_header(sheet, titles, widths)
    for row in table.rows:
        line = ["　" * row.depth + row.region.name, row.region.level_label,
                row.cycle.state_label if row.cycle is not None else "未创建"]
        formats = {}
        for column in table.columns:
            line.append(xlsx.number(row.value(column.code)))
            if table.has_ratio(column):
                ratio = row.ratio(column.code, table.per.code)
                formats[len(line) + 1] = "0.0%" if table.is_share(column) else "0.0000"
                line.append(None if ratio is None else float(ratio))
            change = row.change(column.code)
            formats[len(line) + 1] = "+0.0%;-0.0%;0.0%"
            line.append(None if change is None else float(change))
        sheet.append(line)
        for index, fmt in formats.items():
            sheet.cell(row=sheet.max_row, column=index).number_format = fmt
    notes = book.create_sheet("说明")
    notes.column_dimensions["A"].width = 100
    for text in (f"{table.own.name}督导：{table.year}年各地区统计指标对比（导出日期：{cn_date_text(table.generated)}）",
                 NOTE,
                 f"人均或占比：各指标（百分比类除外）的数值除以“{table.per.name}”（{table.per.code}）的数值。" if table.per else ""):
        if text:
            notes.append([text])
    xlsx.keep_text(book)
    return xlsx.to_bytes(book)


def export_name(table: Comparison) -> str:
    return f"{table.year}年各地区统计指标对比.xlsx"
