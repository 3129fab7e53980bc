"""Progress of a cycle: a matrix of units × sections with states, deadlines and per-unit figures.

Everything is loaded with a fixed number of queries, so the cost in queries does not grow with the
number of units or sections. The figures of the whole cycle (counts by state, overdue, per section)
come from one aggregate query; the units the filters keep are counted and listed in SQL, and the cells
(assignments, contributions, first submission times) are loaded for the units shown only: the page
shows a city's hundreds of units UNITS_PER_PAGE at a time, the export all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import case, exists, func, literal, select

from .. import policy, xlsx
from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle, Revision, Section, Unit
from ..models.org import UNIT_KINDS
from ..workdays import current_calendar
from ..timeutil import cn_date_text, local_today, local_zone
from ..workflow.states import CONTRIBUTION_STATE_LABELS
from .outline import OutlineNode, load_outline

# "pending": assigned, but the cycle is not open yet so there is no contribution.
CELL_LABELS = {"pending": "未开始", **CONTRIBUTION_STATE_LABELS}
CELL_MARKS = {"pending": "·", "draft": "草", "unit_review": "单", "submitted": "审", "returned": "退",
              "approved": "✓"}
CELL_CLASSES = {"pending": "state-pending", "draft": "state-draft", "unit_review": "state-unit-review",
                "submitted": "state-submitted", "returned": "state-returned", "approved": "state-approved"}
OPEN_STATES = ("pending", "draft", "returned", "unit_review")  # still with the unit
# States of a contribution that is late once its due date has passed (a pending cell has no contribution).
LATE_STATES = tuple(s for s in OPEN_STATES if s != "pending")
UNITS_PER_PAGE = 50  # rows of the matrix on one page
SEE_ALL_ROLES = policy.SEE_ALL_ROLES


@dataclass(slots=True)
class Cell:
    section_id: int
    state: str
    role: str
    due: date | None
    overdue_days: int
    first_submit: date | None
    contribution_id: int | None
    # Working days overdue, as 我的任务 and the reminders count them (0 when due on a Friday and
    # today is Saturday: late, but no working day lost yet).
    overdue_workdays: int = 0

    @property
    def overdue(self) -> bool:
        return self.overdue_days > 0

    @property
    def overdue_label(self) -> str:
        """'已逾期2个工作日' (the same words as due_status), '' when not overdue."""
        if not self.overdue:
            return ""
        return f"已逾期{self.overdue_workdays}个工作日" if self.overdue_workdays else "已逾期"

    @property
    def label(self) -> str:
        return CELL_LABELS[self.state]

    @property
    def css(self) -> str:
        cls = CELL_CLASSES[self.state]
        return f"{cls} overdue" if self.overdue_days > 0 else cls

    @property
    def mark(self) -> str:
        return CELL_MARKS[self.state]


@dataclass
class UnitRow:
    unit: Unit
    cells: dict[int, Cell] = field(default_factory=dict)
    line: list[Cell | None] = field(default_factory=list)  # aligned with Dashboard.columns
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CELL_LABELS, 0))
    total: int = 0
    overdue: int = 0
    on_time: int = 0
    on_time_base: int = 0

    @property
    def approved(self) -> int:
        return self.counts["approved"]

    @property
    def completion(self) -> float | None:
        return self.approved / self.total if self.total else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.on_time_base if self.on_time_base else None


@dataclass
class ColumnTotal:
    """One section's cells over every unit counted (not only the page's): how many, how many approved."""

    total: int = 0
    approved: int = 0
    overdue: int = 0


@dataclass
class Dashboard:
    cycle: ReportCycle
    today: date
    columns: list[OutlineNode]
    rows: list[UnitRow]
    counts: dict[str, int]
    total: int
    overdue: int
    restricted_to_unit: bool
    filters: dict
    column_totals: list[ColumnTotal] = field(default_factory=list)  # aligned with columns
    unit_count: int = 0  # units the filters keep (rows over every page)
    page: int = 1
    pages: int = 1
    per_page: int | None = None  # None: every row at once (the export)

    @property
    def completion(self) -> float | None:
        return self.counts["approved"] / self.total if self.total else None

    @property
    def first_row(self) -> int:
        """The number of the page's first row among all rows (1-based)."""
        return (self.page - 1) * self.per_page + 1 if self.per_page else 1


def can_view_dashboard(user) -> bool:
    return policy.can(user, "dashboard.view")


def sees_all_units(user) -> bool:
    return policy.can(user, "dashboard.all_units")


def restricted_units(viewer) -> tuple[int, ...]:
    """The units whose rows a viewer who may not see every unit sees: their own unit's and those of
    the people they now stand in for (委托); none for a viewer with neither."""
    units = {p.unit_id for p in policy.acting_for(viewer) if p.unit_id is not None}
    if viewer.unit_id is not None:
        units.add(viewer.unit_id)
    return tuple(sorted(units))


def build_dashboard(cycle: ReportCycle, viewer, state: str | None = None, unit_kind: str | None = None,
                    overdue_only: bool = False, today: date | None = None, page: int | None = None,
                    per_page: int | None = None, all_units: bool = False) -> Dashboard:
    """Compute the progress matrix of ``cycle`` as ``viewer`` may see it, with the filters applied
    (``all_units``: every unit whatever the viewer's roles — an overseer's read of the whole cycle).

    Counts and totals are over the units the viewer may see (after the unit-kind filter); the state
    and overdue filters then narrow the rows shown. With ``per_page``, only page ``page`` of those
    rows is built (the figures still count every unit).
    """
    today = today or local_today()
    restricted = not all_units and not sees_all_units(viewer)
    nodes = load_outline(cycle)
    # The same rule as Assignment.effective_due(): the unit's own date, else the section's (inherited).
    section_due = {n.section.id: n.section.effective_due() for n in nodes}
    unit_ids = restricted_units(viewer) if restricted else None
    tally = _tally(cycle, unit_ids, unit_kind, section_due, today)
    scope = _Scope(cycle, unit_ids, unit_kind, state, overdue_only, section_due, today)
    unit_count = db.session.scalar(select(func.count()).select_from(scope.unit_ids().subquery())) or 0
    pages = max(1, -(-unit_count // per_page)) if per_page else 1
    page = min(max(page or 1, 1), pages)
    loaded = _load(cycle, scope, page, per_page)
    rows = {u.id: UnitRow(u) for u in loaded.units}
    _fill_rows(rows, loaded, section_due, today)
    columns = [n for n in nodes if n.section.id in tally.used_sections]
    for row in rows.values():
        row.line = [row.cells.get(n.section.id) for n in columns]
    return Dashboard(cycle=cycle, today=today, columns=columns, rows=list(rows.values()), counts=tally.counts,
                     total=tally.total, overdue=tally.overdue, restricted_to_unit=restricted,
                     filters={"state": state, "unit_kind": unit_kind, "overdue_only": overdue_only},
                     column_totals=[tally.columns.get(n.section.id, ColumnTotal()) for n in columns],
                     unit_count=unit_count, page=page, pages=pages, per_page=per_page)


@dataclass(slots=True)
class _Loaded:
    assignments: list
    units: list[Unit]
    contributions: dict[int, tuple[int, str]]   # assignment id -> (contribution id, state)
    first_submit: dict[int, date]               # contribution id -> local date of its first revision


@dataclass(slots=True)
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CELL_LABELS, 0))
    total: int = 0
    overdue: int = 0
    used_sections: set[int] = field(default_factory=set)
    columns: dict[int, ColumnTotal] = field(default_factory=dict)  # section id -> its cells' figures


def _tally(cycle: ReportCycle, unit_ids: tuple | None, unit_kind: str | None, section_due: dict,
           today: date) -> _Tally:
    """The figures of every cell the viewer may see, from one aggregate query: cells grouped by section,
    own due date, unit kind and state (a few hundred groups however many units there are)."""
    cell_state = func.coalesce(Contribution.state, "pending")
    query = (select(Assignment.section_id, Assignment.due, Unit.kind, cell_state, func.count())
             .join(Section, Section.id == Assignment.section_id).join(Unit, Unit.id == Assignment.unit_id)
             .outerjoin(Contribution, Contribution.assignment_id == Assignment.id)
             .where(Section.cycle_id == cycle.id)
             .group_by(Assignment.section_id, Assignment.due, Unit.kind, cell_state))
    if unit_ids is not None:
        query = query.where(Assignment.unit_id.in_(unit_ids))
    tally = _Tally()
    for section_id, own_due, kind, st, number in db.session.execute(query):
        tally.used_sections.add(section_id)
        if unit_kind and kind != unit_kind:
            continue
        due = own_due or section_due.get(section_id)
        late = number if due is not None and due < today and st in LATE_STATES else 0
        column = tally.columns.setdefault(section_id, ColumnTotal())
        column.total += number
        column.approved += number if st == "approved" else 0
        column.overdue += late
        tally.counts[st] += number
        tally.total += number
        tally.overdue += late
    return tally


@dataclass(slots=True)
class _Scope:
    """The units whose rows the filters keep, as SQL."""

    cycle: ReportCycle
    units: tuple | None  # the restricted viewer's units; None: every unit
    unit_kind: str | None
    state: str | None
    overdue_only: bool
    section_due: dict
    today: date

    def unit_ids(self):
        """Ids of the kept units (a subquery: the matrix orders them by sort_order, id)."""
        query = select(Unit.id).where(Unit.id.in_(
            select(Assignment.unit_id).join(Section, Section.id == Assignment.section_id)
            .where(Section.cycle_id == self.cycle.id)))
        if self.units is not None:
            query = query.where(Unit.id.in_(self.units))
        if self.unit_kind:
            query = query.where(Unit.kind == self.unit_kind)
        if self.state == "pending":
            query = query.where(exists(self._cells().where(Contribution.id.is_(None))))
        elif self.state:
            query = query.where(exists(self._cells().where(Contribution.state == self.state)))
        if self.overdue_only:
            query = query.where(exists(self._cells().where(
                Contribution.state.in_(LATE_STATES), self._due() < self.today)))
        return query

    def _cells(self):
        """The unit's cells in the cycle (correlated with the outer Unit)."""
        return (select(Assignment.id).join(Section, Section.id == Assignment.section_id)
                .outerjoin(Contribution, Contribution.assignment_id == Assignment.id)
                .where(Section.cycle_id == self.cycle.id, Assignment.unit_id == Unit.id))

    def _due(self):
        """A cell's due date: its own, else its section's (inherited; computed from the outline)."""
        dues = {sid: due for sid, due in self.section_due.items() if due is not None}
        inherited = case(dues, value=Assignment.section_id) if dues else literal(None)
        return func.coalesce(Assignment.due, inherited)


def _load(cycle: ReportCycle, scope: _Scope, page: int, per_page: int | None) -> _Loaded:
    """The kept units of page ``page`` (all of them without ``per_page``) with their assignments,
    contributions and first submissions, each in one query."""
    u_query = select(Unit).where(Unit.id.in_(scope.unit_ids())).order_by(Unit.sort_order, Unit.id)
    if per_page:
        u_query = u_query.limit(per_page).offset((page - 1) * per_page)
    units = list(db.session.scalars(u_query))
    shown = [u.id for u in units]

    a_query = (select(Assignment.id, Assignment.section_id, Assignment.unit_id, Assignment.role,
                      Assignment.due)
               .join(Section, Section.id == Assignment.section_id)
               .where(Section.cycle_id == cycle.id, Assignment.unit_id.in_(shown)))
    # Plain rows through the connection: a page's thousands of cells need no ORM row processing.
    conn = db.session.connection()
    assignments = conn.execute(a_query).all()
    c_query = select(Contribution.id, Contribution.assignment_id, Contribution.state) \
        .where(Contribution.cycle_id == cycle.id, Contribution.unit_id.in_(shown))
    first_query = (select(Revision.contribution_id, func.min(Revision.created_at))
                   .join(Contribution, Contribution.id == Revision.contribution_id)
                   .where(Contribution.cycle_id == cycle.id, Contribution.unit_id.in_(shown))
                   .group_by(Revision.contribution_id))
    contributions = {a_id: (c_id, st) for c_id, a_id, st in conn.execute(c_query)}
    local_date = _local_dates(local_zone())
    first_submit = {c_id: local_date(at) for c_id, at in conn.execute(first_query) if at is not None}
    return _Loaded(assignments, units, contributions, first_submit)


def _fill_rows(rows: dict[int, UnitRow], loaded: _Loaded, section_due: dict, today: date) -> None:
    """Put a cell for each assignment into its unit's row."""
    calendar = current_calendar()
    workdays_late: dict[date, int] = {}  # per due date: the count is the same for every cell sharing it
    for a_id, section_id, unit_id, role, own_due in loaded.assignments:
        row = rows.get(unit_id)
        if row is None:
            continue
        c_id, st = loaded.contributions.get(a_id, (None, "pending"))
        due = own_due or section_due.get(section_id)
        submitted_on = loaded.first_submit.get(c_id) if c_id else None
        late_days = (today - due).days if due and st in LATE_STATES else 0
        late_work = 0
        if late_days > 0:
            if due not in workdays_late:
                workdays_late[due] = calendar.working_days_between(due, today)
            late_work = workdays_late[due]
        _add_cell(row, Cell(section_id, st, role, due, max(late_days, 0), submitted_on, c_id, late_work), today)


def _add_cell(row: UnitRow, cell: Cell, today: date) -> None:
    row.cells[cell.section_id] = cell
    row.total += 1
    row.counts[cell.state] += 1
    if cell.overdue:
        row.overdue += 1
    due, submitted_on = cell.due, cell.first_submit
    if due is not None and (submitted_on is not None or due < today):
        row.on_time_base += 1
        if submitted_on is not None and submitted_on <= due:
            row.on_time += 1


def _local_dates(zone):
    """A function giving the local date of a naive UTC datetime, the zone's offset looked up once per
    quarter hour of UTC time (offsets change only on quarter hours), not once per row."""
    offsets: dict = {}

    def local_date(at):
        if isinstance(at, str):  # SQLite returns the aggregate as text
            at = datetime.fromisoformat(at)
        key = (at.year, at.month, at.day, at.hour, at.minute // 15)
        offset = offsets.get(key)
        if offset is None:
            offset = offsets[key] = at.replace(tzinfo=UTC).astimezone(zone).utcoffset()
        return (at + offset).date()

    return local_date


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def export_xlsx(dash: Dashboard) -> bytes:
    """The dashboard as an XLSX workbook: the matrix, the per-unit figures and the state counts.

    Written in openpyxl's write-only mode with shared styles, so 18 000 cells take little time.
    """
    from openpyxl import Workbook

    styles = _XlsxStyles()
    book = Workbook(write_only=True)
    _matrix_sheet(book.create_sheet("进度矩阵"), dash, styles)
    _stats_sheet(book.create_sheet("单位统计"), dash, styles)
    summary = book.create_sheet("状态汇总")
    summary.append(xlsx.header_row(summary, ["状态", "数量"], styles.bold))
    for state, label in CELL_LABELS.items():
        summary.append([label, dash.counts[state]])
    summary.append(["合计", dash.total])
    summary.append(["其中逾期", dash.overdue])
    return xlsx.to_bytes(book)


class _XlsxStyles:
    """Styles made once and shared by every cell (write-only mode copies no style per cell)."""

    COLOURS = {"pending": "EEEEEE", "draft": "FFF2CC", "unit_review": "FCE4D6", "submitted": "DDEBF7",
               "returned": "F8CBAD", "approved": "C6EFCE"}

    def __init__(self):
        from openpyxl.styles import Alignment, Font, PatternFill

        self.fills = {k: PatternFill("solid", start_color=v, end_color=v) for k, v in self.COLOURS.items()}
        self.bold = Font(bold=True)
        self.red = Font(color="C00000", bold=True)
        self.wrap = Alignment(wrap_text=True, vertical="top")


def _matrix_sheet(sheet, dash: Dashboard, styles: _XlsxStyles) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    sheet.freeze_panes = "C3"
    sheet.column_dimensions["A"].width = 24
    for index in range(len(dash.columns)):
        sheet.column_dimensions[get_column_letter(3 + index)].width = 16
    sheet.append(xlsx.text_row(sheet, [f"{dash.cycle.title} 报送进度（统计日期：{cn_date_text(dash.today)}）"]))
    sheet.append(xlsx.header_row(sheet, ["单位", "单位类型"] + [n.path_label for n in dash.columns],
                                 styles.bold, styles.wrap))
    for row in dash.rows:
        values = [row.unit.name, row.unit.kind_label]
        for c in row.line:
            if c is None:
                values.append(None)
                continue
            cell = WriteOnlyCell(sheet, value=c.label + (f"（{c.overdue_label}）" if c.overdue else ""))
            cell.fill = styles.fills[c.state]
            if c.overdue:
                cell.font = styles.red
            values.append(cell)
        sheet.append(xlsx.text_row(sheet, values))


def _stats_sheet(stats, dash: Dashboard, styles: _XlsxStyles) -> None:
    from openpyxl.cell import WriteOnlyCell

    stats.column_dimensions["A"].width = 24
    stats.append(xlsx.header_row(stats, ["单位", "单位类型", "任务数", "已通过", "完成率", "按时率", "逾期数"]
                                 + [CELL_LABELS[s] for s in CELL_LABELS], styles.bold))
    for row in dash.rows:
        ratios = []
        for value in (row.completion, row.on_time_rate):
            cell = WriteOnlyCell(stats, value=_ratio(value))
            cell.number_format = "0%"
            ratios.append(cell)
        stats.append(xlsx.text_row(stats, [row.unit.name, row.unit.kind_label, row.total, row.approved, *ratios,
                                           row.overdue] + [row.counts[s] for s in CELL_LABELS]))


def _ratio(value: float | None):
    return "" if value is None else round(value, 4)


UNIT_KIND_CHOICES = list(UNIT_KINDS.items())
