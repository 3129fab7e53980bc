"""Progress of a cycle: a matrix of units × sections with states, deadlines and per-unit figures.

Everything is loaded with a fixed number of queries (the cycle's sections, assignments, units,
contributions and first submission times, each in bulk) and computed in Python, so the cost in
queries does not grow with the number of units or sections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import func, select

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

    @property
    def completion(self) -> float | None:
        return self.counts["approved"] / self.total if self.total else None


def can_view_dashboard(user) -> bool:
    return policy.can(user, "dashboard.view")


def sees_all_units(user) -> bool:
    return policy.can(user, "dashboard.all_units")


def build_dashboard(cycle: ReportCycle, viewer, state: str | None = None, unit_kind: str | None = None,
                    overdue_only: bool = False, today: date | None = None) -> Dashboard:
    """Compute the progress matrix of ``cycle`` as ``viewer`` may see it, with the filters applied.

    Counts and totals are over the units the viewer may see (after the unit-kind filter); the state
    and overdue filters then narrow the rows shown.
    """
    today = today or local_today()
    restricted = not sees_all_units(viewer)
    nodes = load_outline(cycle)
    # The same rule as Assignment.effective_due(): the unit's own date, else the section's (inherited).
    section_due = {n.section.id: n.section.effective_due() for n in nodes}
    unit_id = viewer.unit_id if restricted else None
    loaded = _load(cycle, unit_id, unit_kind)
    rows = {u.id: UnitRow(u) for u in loaded.units}
    tally = _fill_rows(rows, loaded, section_due, today)
    columns = [n for n in nodes if n.section.id in tally.used_sections]
    shown = []
    for row in rows.values():
        if state and not row.counts.get(state):
            continue
        if overdue_only and not row.overdue:
            continue
        row.line = [row.cells.get(n.section.id) for n in columns]
        shown.append(row)
    return Dashboard(cycle=cycle, today=today, columns=columns, rows=shown, counts=tally.counts,
                     total=tally.total, overdue=tally.overdue, restricted_to_unit=restricted,
                     filters={"state": state, "unit_kind": unit_kind, "overdue_only": overdue_only})


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


def _load(cycle: ReportCycle, unit_id: int | None, unit_kind: str | None) -> _Loaded:
    """The cycle's assignments, units, contributions and first submissions, each in one query
    (only ``unit_id``'s when given)."""
    a_query = (select(Assignment.id, Assignment.section_id, Assignment.unit_id, Assignment.role,
                      Assignment.due)
               .join(Section, Section.id == Assignment.section_id).where(Section.cycle_id == cycle.id))
    if unit_id is not None:
        a_query = a_query.where(Assignment.unit_id == unit_id)
    # Plain rows through the connection: 18,000 of them need no ORM row processing.
    conn = db.session.connection()
    assignments = conn.execute(a_query).all()

    unit_ids = select(Assignment.unit_id).join(Section, Section.id == Assignment.section_id) \
        .where(Section.cycle_id == cycle.id)
    u_query = select(Unit).where(Unit.id.in_(unit_ids))
    if unit_id is not None:
        u_query = u_query.where(Unit.id == unit_id)
    if unit_kind:
        u_query = u_query.where(Unit.kind == unit_kind)
    units = list(db.session.scalars(u_query.order_by(Unit.sort_order, Unit.id)))

    c_query = select(Contribution.id, Contribution.assignment_id, Contribution.state) \
        .where(Contribution.cycle_id == cycle.id)
    first_query = (select(Revision.contribution_id, func.min(Revision.created_at))
                   .join(Contribution, Contribution.id == Revision.contribution_id)
                   .where(Contribution.cycle_id == cycle.id).group_by(Revision.contribution_id))
    if unit_id is not None:
        c_query = c_query.where(Contribution.unit_id == unit_id)
        first_query = first_query.where(Contribution.unit_id == unit_id)
    contributions = {a_id: (c_id, st) for c_id, a_id, st in conn.execute(c_query)}
    local_date = _local_dates(local_zone())
    first_submit = {c_id: local_date(at) for c_id, at in conn.execute(first_query) if at is not None}
    return _Loaded(assignments, units, contributions, first_submit)


def _fill_rows(rows: dict[int, UnitRow], loaded: _Loaded, section_due: dict, today: date) -> _Tally:
    """Put a cell for each assignment into its unit's row; count states and lateness."""
    calendar = current_calendar()
    workdays_late: dict[date, int] = {}  # per due date: the count is the same for every cell sharing it
    tally = _Tally()
    for a_id, section_id, unit_id, role, own_due in loaded.assignments:
        row = rows.get(unit_id)
        tally.used_sections.add(section_id)
        if row is None:
            continue
        c_id, st = loaded.contributions.get(a_id, (None, "pending"))
        due = own_due or section_due.get(section_id)
        submitted_on = loaded.first_submit.get(c_id) if c_id else None
        late_days = (today - due).days if due and st in OPEN_STATES and st != "pending" else 0
        late_work = 0
        if late_days > 0:
            if due not in workdays_late:
                workdays_late[due] = calendar.working_days_between(due, today)
            late_work = workdays_late[due]
        cell = Cell(section_id, st, role, due, max(late_days, 0), submitted_on, c_id, late_work)
        _add_cell(row, cell, today)
        tally.counts[st] += 1
        tally.total += 1
        tally.overdue += cell.overdue
    return tally


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
