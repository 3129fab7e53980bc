"""Figures from Excel: a unit's (or, for the admin, a section's) indicator sheet to download, fill in
and upload.

The workbook has a visible sheet of indicators (codes locked, only the 填报值 column editable, each
value cell validated by the indicator's type and bounds) and a hidden sheet naming the contributions
it was made for with the fingerprint of their values when downloaded (``services.figures.values_stamp``):
an upload after someone else changed the values is refused with the editor's conflict message.

Reading checks everything before anything is written: a bad cell is reported by its address
("C5：…") and refuses the whole upload. Values are parsed by ``figures.numbers.parse_value`` (the
values form's rules) and saved by ``services.figures`` (the form's service, audit included).
"""
from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

from .. import policy
from ..database import lock_row
from ..errors import Conflict, DomainError
from ..figures import yoy as Y
from ..figures.evaluate import FigureBook
from ..figures.numbers import PERCENT_MAX, format_number, parse_value
from ..timeutil import utcnow
from ..xlsx import keep_text, number, sheet_header, to_bytes
from . import figures as F
from .audit import record
from .users import MAX_XLSX_UNPACKED_BYTES

DATA_SHEET = "统计数据"
META_SHEET = "系统信息"
META_KIND_UNIT, META_KIND_SECTION = "unit", "section"
MAX_SHEET_ROWS = 5000  # far above any real section (units × indicators); a bigger sheet is not ours
MAX_SHEET_COLUMNS = 30
# Column titles: the unit sheet, and the section sheet with the material and unit in front.
UNIT_COLUMNS = ["指标代码", "指标名称", "填报值", "计量单位", "数值类型", "必填", "最小值", "最大值", "上年数值", "当前数值"]
UNIT_WIDTHS = [18, 34, 14, 10, 10, 6, 10, 10, 12, 12]
SECTION_COLUMNS = ["材料编号", "单位"] + UNIT_COLUMNS
SECTION_WIDTHS = [10, 24] + UNIT_WIDTHS
CONFLICT = "统计数据已被他人修改，您填写的内容尚未保存。请重新下载统计表，核对最新数值后再填写。"


@dataclass
class Change:
    contribution: object
    indicator: object
    cell: str
    old: Decimal | None
    new: Decimal | None

    @property
    def old_text(self) -> str:
        return "未填" if self.old is None else format_number(self.old)

    @property
    def new_text(self) -> str:
        return "（清空）" if self.new is None else format_number(self.new)

    @property
    def posted(self) -> str:
        """The value as the confirmation form carries it ('' clears)."""
        return "" if self.new is None else format_number(self.new)


@dataclass
class Skipped:
    contribution: object
    reason: str
    changes: list = field(default_factory=list)


@dataclass
class SheetPreview:
    """What an upload would change: per contribution, the stamp it was checked against."""

    changes: list = field(default_factory=list)
    stamps: dict = field(default_factory=dict)  # contribution id -> stamp of the sheet
    skipped: list = field(default_factory=list)
    contributions: dict = field(default_factory=dict)  # contribution id -> contribution

    def by_contribution(self) -> list[tuple[object, list]]:
        out: dict[int, list] = {}
        for ch in self.changes:
            out.setdefault(ch.contribution.id, []).append(ch)
        return [(self.contributions[cid], found) for cid, found in out.items()]


class SheetError(DomainError):
    """The upload was refused; ``errors`` lists each problem, most naming its cell ("C5：…")."""

    status = 422

    def __init__(self, errors: list[str]):
        super().__init__(f"统计表有{len(errors)}处错误，均未保存：\n" + "\n".join(errors))
        self.errors = errors


# ---------------------------------------------------------------- writing the workbook


def editable(contribution) -> str | None:
    """Why the contribution's figures cannot be written now (None: they can)."""
    if contribution.cycle.state != "collecting":
        return f"年度报告当前为“{contribution.cycle.state_label}”，统计数据只能在征集中填报"
    if contribution.state not in ("draft", "returned"):
        return f"材料当前为“{contribution.state_label}”，不能修改统计数据"
    return None


def unit_sheet(contribution) -> bytes:
    """The indicator sheet of one contribution (the liaison's)."""
    book = FigureBook(contribution.cycle)
    return _workbook(book, [contribution], META_KIND_UNIT, contribution.section_id)


def section_sheet(cycle, section) -> bytes:
    """The indicator sheet of every unit of ``section`` (the admin's): one row per unit × indicator."""
    book = FigureBook(cycle)
    found = [c for c in book.contributions.values() if c.section_id == section.id and book.indicators_for(c)]
    return _workbook(book, found, META_KIND_SECTION, section.id)


def _workbook(book, contributions, kind: str, section_id: int) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Protection

    wb = Workbook()
    sheet = wb.active
    sheet.title = DATA_SHEET
    section = kind == META_KIND_SECTION
    sheet_header(sheet, SECTION_COLUMNS if section else UNIT_COLUMNS, SECTION_WIDTHS if section else UNIT_WIDTHS)
    value_col = _value_column(kind)
    validations: dict[tuple, list[str]] = {}
    last_year = _last_year_values(book.cycle, section_id)
    for contribution in contributions:
        previous = last_year.get(contribution.unit_id, {})
        for ind in book.indicators_for(contribution):
            current = book.value(contribution, ind)
            row = [ind.code, ind.name, number(current), ind.measure, ind.type_label, "是" if ind.required else "否",
                   number(ind.minimum), number(ind.maximum), number(previous.get(ind.code)), number(current)]
            sheet.append([contribution.id, contribution.unit.name] + row if section else row)
            cell = sheet.cell(row=sheet.max_row, column=value_col)
            cell.protection = Protection(locked=False)
            validations.setdefault(_bounds(ind), []).append(cell.coordinate)
    for bounds, cells in validations.items():
        sheet.add_data_validation(_validation(bounds, cells))
    # Codes (and the material number) are what rows are matched by: locked, and the sheet protected
    # without a password (a guard against slips, not a secret).
    sheet.protection.sheet = True
    sheet.protection.formatColumns = False
    _meta_sheet(wb, book, contributions, kind, section_id)
    keep_text(wb)
    return to_bytes(wb)


def _last_year_values(cycle, section_id: int) -> dict[int, dict]:
    """unit id → {code: value} approved last year in the same section (by code), as ``yoy.previous_values``
    gives one unit's, read for every unit of the section in one statement."""
    from sqlalchemy import select

    from ..extensions import db
    from ..models import Contribution, Section
    from ..models.indicator import Indicator, IndicatorValue

    prev = Y.previous_cycle(cycle)
    section = db.session.get(Section, section_id)
    if prev is None or section is None:
        return {}
    rows = db.session.execute(
        select(Contribution.unit_id, Indicator.code, IndicatorValue.value)
        .join(IndicatorValue, IndicatorValue.contribution_id == Contribution.id)
        .join(Indicator, Indicator.id == IndicatorValue.indicator_id)
        .join(Section, Section.id == Contribution.section_id)
        .where(Contribution.cycle_id == prev.id, Section.code == section.code, Contribution.state == "approved",
               IndicatorValue.value.is_not(None)))
    found: dict[int, dict] = {}
    for unit_id, code, value in rows:
        found.setdefault(unit_id, {})[code] = Decimal(value)
    return found


def _meta_sheet(wb, book, contributions, kind: str, section_id: int) -> None:
    meta = wb.create_sheet(META_SHEET)
    meta.append(["类型", kind, "章节", section_id, "年度报告", book.cycle.id])
    meta.append(["材料编号", "版本", "数值指纹"])
    for contribution in contributions:
        meta.append([contribution.id, contribution.version, F.values_stamp(contribution, book)])
    meta.sheet_state = "hidden"
    meta.protection.sheet = True


def _value_column(kind: str) -> int:
    return 5 if kind == META_KIND_SECTION else 3


def _bounds(ind) -> tuple:
    """(whole?, minimum, maximum) as ``parse_value`` enforces them."""
    low = Decimal(ind.minimum) if ind.minimum is not None else Decimal(0)
    if ind.maximum is not None:
        high = Decimal(ind.maximum)
    elif ind.type == "percent":
        high = Decimal(PERCENT_MAX)
    else:
        high = Decimal("999999999999999")
    return (ind.type == "integer", low, high)


def _validation(bounds: tuple, cells: list[str]):
    from openpyxl.worksheet.datavalidation import DataValidation

    whole, low, high = bounds
    dv = DataValidation(type="whole" if whole else "decimal", operator="between",
                        formula1=format_number(low), formula2=format_number(high), allow_blank=True,
                        showErrorMessage=True, errorTitle="数值有误",
                        error=f"请填写{format_number(low)}至{format_number(high)}之间的{'整数' if whole else '数字'}。")
    for cell in cells:
        dv.add(cell)
    return dv


# ---------------------------------------------------------------- reading an upload


@dataclass
class _Read:
    kind: str
    section_id: int | None
    stamps: dict  # contribution id -> stamp
    rows: list  # (row number, contribution id | None, code, raw value, value cell address, formula?)
    errors: list


def _open(data: bytes):
    """The workbook, read-only; refused when damaged, too big unpacked or not a workbook at all."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
            entries = len(archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DomainError("无法读取该Excel文件，请上传从本系统下载、填写后保存的 .xlsx 文件。") from None
    if unpacked > MAX_XLSX_UNPACKED_BYTES or entries > 1000:
        raise DomainError(f"该Excel文件解压后超过{MAX_XLSX_UNPACKED_BYTES // 1024 // 1024}MB，不是本系统的统计表，"
                          "请重新下载统计表填写。")
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise DomainError("无法读取该Excel文件，文件可能已损坏。") from None


def _read(data: bytes) -> _Read:
    wb = _open(data)
    try:
        if DATA_SHEET not in wb.sheetnames or META_SHEET not in wb.sheetnames:
            raise DomainError("这不是本系统下载的统计表（缺少“统计数据”或系统信息工作表），请重新下载统计表填写。")
        kind, section_id, stamps, errors = _read_meta(wb[META_SHEET])
        rows = []
        value_col = _value_column(kind)
        for n, line in enumerate(wb[DATA_SHEET].iter_rows(min_row=2, max_row=MAX_SHEET_ROWS + 2,
                                                            max_col=MAX_SHEET_COLUMNS), start=2):
            if n > MAX_SHEET_ROWS + 1:
                raise DomainError(f"统计表超过{MAX_SHEET_ROWS}行，不是本系统的统计表，请重新下载统计表填写。")
            cells = list(line) + [None] * MAX_SHEET_COLUMNS
            rows.append(_row(n, cells, kind, value_col))
        return _Read(kind, section_id, stamps, [r for r in rows if r is not None], errors)
    except DomainError:
        raise
    except Exception:  # noqa: BLE001 - read-only openpyxl parses each sheet while iterating it
        raise DomainError("无法读取该Excel文件，文件可能已损坏。") from None
    finally:
        wb.close()


def _row(n: int, cells: list, kind: str, value_col: int):
    """(row, contribution id, code, raw value, value cell, formula?) of one data row; None when empty."""
    from openpyxl.utils import get_column_letter

    section = kind == META_KIND_SECTION
    code_cell = cells[2] if section else cells[0]
    value_cell = cells[value_col - 1]
    code = _text(getattr(code_cell, "value", None))
    raw = getattr(value_cell, "value", None)
    formula = getattr(value_cell, "data_type", None) == "f" or (isinstance(raw, str) and raw.startswith("="))
    cid = getattr(cells[0], "value", None) if section else None
    if not code and raw in (None, "") and not formula:
        return None
    percent = "%" in (getattr(value_cell, "number_format", None) or "")
    return (n, cid, code, raw, f"{get_column_letter(value_col)}{n}", formula,
            f"{get_column_letter(3 if section else 1)}{n}", percent)


def _read_meta(meta) -> tuple[str, int | None, dict, list]:
    lines = [[getattr(c, "value", None) for c in line] for line in meta.iter_rows(max_row=MAX_SHEET_ROWS, max_col=6)]
    if not lines or len(lines[0]) < 4 or lines[0][1] not in (META_KIND_UNIT, META_KIND_SECTION):
        raise DomainError("统计表的系统信息已损坏，请重新下载统计表填写。")
    stamps, errors = {}, []
    for n, line in enumerate(lines[2:], start=3):
        cid, stamp = (line + [None] * 3)[0], (line + [None] * 3)[2]
        if cid is None and stamp is None:
            continue
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(stamp, str):
            errors.append(f"{META_SHEET}!A{n}：系统信息已损坏，请重新下载统计表填写。")
            continue
        stamps[cid] = stamp
    section_id = lines[0][3] if isinstance(lines[0][3], int) else None
    return lines[0][1], section_id, stamps, errors


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _raw_text(value) -> str | None:
    """A value cell as the text ``parse_value`` reads; None for what is no number at all (a date, a flag)."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (datetime, date, time)):
        return None
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)


# ---------------------------------------------------------------- checking an upload


def preview_unit(contribution, actor, data: bytes) -> SheetPreview:
    """What a liaison's upload changes in ``contribution``.

    :raise SheetError: per-cell errors (nothing will be written).
    :raise Conflict: the values changed since the sheet was downloaded.
    :raise DomainError: not a sheet of this system, or not editable.
    """
    policy.require(actor, "figures.edit", contribution, "只有本单位联络员可以在材料可编辑时填报统计数据。")
    read = _read(data)
    errors = list(read.errors)
    if read.kind != META_KIND_UNIT or set(read.stamps) != {contribution.id}:
        other = ", ".join(str(c) for c in read.stamps) or "无"
        raise SheetError([f"{META_SHEET}!A3：这份统计表属于另一份材料（材料编号{other}），"
                          f"请在本材料（编号{contribution.id}）的统计数据页下载统计表后再填写。"])
    book = FigureBook(contribution.cycle)
    if read.stamps[contribution.id] != F.values_stamp(contribution, book):
        raise Conflict(CONFLICT)
    preview = SheetPreview(stamps=dict(read.stamps), contributions={contribution.id: contribution})
    seen: set = set()
    for row in read.rows:
        change = _check_row(book, contribution, row, seen, errors)
        if change is not None:
            preview.changes.append(change)
    if errors:
        raise SheetError(errors)
    return preview


def preview_section(cycle, section, actor, data: bytes) -> SheetPreview:
    """What an admin's upload of ``section``'s sheet changes, unit by unit; contributions that may not
    be written now are listed as skipped (with their changes and the reason), the rest written.

    :raise SheetError / Conflict / DomainError: as ``preview_unit``; nothing will be written.
    """
    policy.require(actor, "admin.manage", None, "只有管理员可以为全部单位上传统计表。")
    read = _read(data)
    errors = list(read.errors)
    if read.kind != META_KIND_SECTION or read.section_id != section.id:
        raise SheetError([f"{META_SHEET}!B1：这份统计表不是本章节（{section.path_label}）的全部单位统计表，"
                          "请在本章节下载后再填写。"])
    book = FigureBook(cycle)
    mine = {c.id: c for c in book.contributions.values() if c.section_id == section.id}
    preview = SheetPreview(contributions=mine)
    for cid in read.stamps:
        if cid not in mine:
            errors.append(f"{META_SHEET}：材料编号{cid}不属于本章节，请重新下载统计表填写。")
    seen: set = set()
    for row in read.rows:
        cid = row[1]
        contribution = mine.get(cid) if isinstance(cid, int) and cid in read.stamps else None
        if contribution is None:
            errors.append(f"A{row[0]}：材料编号“{_text(cid)[:20]}”不属于这份统计表，请不要修改材料编号列。")
            continue
        change = _check_row(book, contribution, row, seen, errors)
        if change is not None:
            preview.changes.append(change)
    if errors:
        raise SheetError(errors)
    preview.stamps = dict(read.stamps)
    _split_skipped(preview)
    # Checked for what will be written: a unit skipped or left unchanged is not held against the sheet.
    for c in {ch.contribution.id: ch.contribution for ch in preview.changes}.values():
        if read.stamps[c.id] != F.values_stamp(c, book):
            raise Conflict(f"{c.unit.name}的{CONFLICT}")
    return preview


def _split_skipped(preview: SheetPreview) -> None:
    kept, skipped = [], {}
    for ch in preview.changes:
        reason = editable(ch.contribution)
        if reason is None:
            kept.append(ch)
        else:
            skipped.setdefault(ch.contribution.id, Skipped(ch.contribution, reason)).changes.append(ch)
    preview.changes, preview.skipped = kept, list(skipped.values())


def _check_row(book, contribution, row, seen: set, errors: list) -> Change | None:
    """The change one row makes (None: none); problems appended to ``errors`` by cell."""
    n, _cid, code, raw, cell, formula, code_cell, percent = row
    ind = book.indicators.get(code)
    if not code:
        errors.append(f"{code_cell}：第{n}行没有指标代码，请不要修改或删除指标代码列。")
        return None
    if ind is not None and ind.rollup:
        errors.append(f"{cell}：“{ind.name}”（{code}）是汇总指标，数值由下级地区审核通过的数值自动汇总，不能填报。")
        return None
    if ind is None or ind not in book.indicators_for(contribution):
        errors.append(f"{code_cell}：指标代码“{code[:60]}”不属于{contribution.unit.name}的这份材料，"
                      "请不要修改指标代码列。")
        return None
    if (contribution.id, code) in seen:
        errors.append(f"{code_cell}：指标“{ind.name}”（{code}）出现了不止一次，请删除重复的行。")
        return None
    seen.add((contribution.id, code))
    if formula:
        errors.append(f"{cell}：“{ind.name}”填写的是公式，请直接填写数字（可复制后“选择性粘贴→数值”）。")
        return None
    if isinstance(raw, float) and not math.isfinite(raw):
        errors.append(f"{cell}：“{ind.name}”应填写数字，该单元格的数值无法读取，请改为数字。")
        return None
    if percent and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        # "95.5%" typed in Excel is stored as 0.955 in a cell formatted as a percentage.
        raw = format_number(Decimal(repr(raw)) * 100) if ind.type == "percent" else raw
    text = _raw_text(raw)
    if text is None:
        errors.append(f"{cell}：“{ind.name}”应填写数字，该单元格是日期或是非值，请改为数字。")
        return None
    try:
        new = parse_value(text, ind)
    except ValueError as exc:
        errors.append(f"{cell}：{exc}")
        return None
    old = book.value(contribution, ind)
    if old == new:
        return None
    return Change(contribution, ind, cell, old, new)


# ---------------------------------------------------------------- writing (after the preview)


def save_unit(contribution, actor, values: dict, stamp: str | None):
    """Save a liaison's confirmed values through the values form's service (same checks, same audit)."""
    return F.save_figures(contribution, actor, values, {}, stamp=stamp)


def save_section(cycle, section, actor, posted: dict[int, tuple[str, dict]]) -> tuple[int, list]:
    """Save an admin's confirmed values: ``posted`` maps contribution id → (stamp, code → text).

    All or nothing: any refusal rolls back every unit. Contributions that may not be written now are
    left as they are and returned as skipped. Returns (number of values written, skipped contributions).

    :raise Conflict: a unit's values changed since the sheet was checked.
    :raise FigureFormError: a value is malformed.
    """
    from sqlalchemy import select

    from ..extensions import db
    from ..models import Contribution

    policy.require(actor, "admin.manage", None, "只有管理员可以为全部单位上传统计表。")
    # Every unit's row is locked before the values are read, so a liaison's save committed between
    # the read and the write cannot go unseen by the fingerprint check (as in save_figures).
    for contribution in db.session.scalars(select(Contribution).where(
            Contribution.id.in_(sorted(posted)), Contribution.section_id == section.id).order_by(Contribution.id)):
        lock_row(contribution)
    book = FigureBook(cycle)
    mine = {c.id: c for c in book.contributions.values() if c.section_id == section.id}
    written, skipped = 0, []
    for cid, (stamp, values) in sorted(posted.items()):
        contribution = mine.get(cid)
        if contribution is None:
            raise DomainError("统计表中的材料不属于本章节，请重新下载统计表填写。")
        reason = editable(contribution)
        if reason is not None:
            skipped.append(Skipped(contribution, reason))
            continue
        if stamp != F._values_stamp(book, contribution):
            raise Conflict(f"{contribution.unit.name}的{CONFLICT}")
        written += _write_for_unit(book, contribution, actor, values)
    return written, skipped


def _write_for_unit(book, contribution, actor, values: dict) -> int:
    """The values form's checks and writing, done by the admin on the unit's behalf (audited as such)."""
    # An admin of the contribution's own region (checked by ``can`` with the object); the state was
    # checked by the caller (``editable``) under the row lock.
    policy.require(actor, "admin.manage", contribution, "只有本地区的管理员可以代单位填报统计数据。")
    indicators = book.indicators_for(contribution)
    try:
        parsed, _ = F._checked_form(book, indicators, values, {})
    except F.FigureFormError as exc:
        raise F.FigureFormError({k: f"{contribution.unit.name}：{v}" for k, v in exc.errors.items()}) from None
    changed = F._write_values(book, contribution, actor, indicators, parsed, utcnow())
    if changed:
        record(actor, "figures.save", f"contribution:{contribution.id}", changed=changed,
               source="统计表", on_behalf_of_unit=contribution.unit_id)
    return len(changed)
