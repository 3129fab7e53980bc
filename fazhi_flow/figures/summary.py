"""The indicator summary of a cycle: the appendix table of the compiled report and the XLSX export.

Both read the same values as bound numbers (``FigureBook``), so a number in the text, the appendix and
the spreadsheet is always the same number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .. import xlsx
from ..workflow.states import CONTRIBUTION_STATE_LABELS
from .evaluate import FigureBook, evaluate_cycle
from .numbers import format_number


@dataclass
class SummaryRow:
    number: int
    indicator: object
    section: object
    entries: list = field(default_factory=list)  # (contribution, value or None)
    rollup: object = None  # figures.rollup.Rollup of a figure taken from the regions below

    @property
    def total(self) -> Decimal | None:
        if self.rollup is not None:
            return self.rollup.value
        values = [v for _, v in self.entries if v is not None]
        return sum(values, Decimal(0)) if values else None

    @property
    def total_display(self) -> str:
        return format_number(self.total) if self.total is not None else "—"

    @property
    def reported(self) -> int:
        """Units (for a roll-up: regions below) with a value."""
        if self.rollup is not None:
            return self.rollup.counted
        return len([1 for _, v in self.entries if v is not None])

    @property
    def expected(self) -> int:
        """Units that report it (for a roll-up: regions below)."""
        return len(self.rollup.parts) if self.rollup is not None else len(self.entries)



def summary_rows(cycle, book: FigureBook | None = None) -> list[SummaryRow]:
    """One row per indicator in outline order; the value is the sum over the units that report it."""
    book = book or FigureBook(cycle)
    order = {}
    for n, top in enumerate(cycle.top_sections()):
        for m, section in enumerate(top.walk()):
            order[section.id] = (n, m)
    indicators = sorted(book.by_id.values(), key=lambda i: (order.get(i.section_id, (999, 0)), i.position, i.id))
    rows = []
    for n, ind in enumerate(indicators, 1):
        entries = [(c, book.value(c, ind)) for c in book.reporters[ind.id]]
        rows.append(SummaryRow(n, ind, ind.section, entries, book.rollup(ind)))
    return rows


def appendix_rows(cycle, book: FigureBook | None = None) -> list[dict]:
    """The appendix table (附表：主要统计指标) for the compiled and published report.

    Each row: ``{"no", "section", "name", "measure", "value"}`` with ``value`` printed as in the text
    (``—`` when nobody entered it).
    """
    return [
        {"no": r.number, "section": r.section.path_label, "name": r.indicator.name,
         "measure": r.indicator.measure, "value": r.total_display, "code": r.indicator.code}
        for r in summary_rows(cycle, book)
    ]


def export_xlsx(cycle, book: FigureBook | None = None) -> bytes:
    """A workbook with the summary, the per-unit values and the rule results of the cycle."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment

    book = book or FigureBook(cycle)
    rows = summary_rows(cycle, book)
    wb = Workbook()
    ws = wb.active
    ws.title = "指标汇总"
    xlsx.sheet_header(ws, ["序号", "章节", "指标代码", "指标名称", "计量单位", "合计数值", "已填报单位数",
                           "应填报单位数"], [6, 40, 22, 30, 10, 14, 14, 14])
    for r in rows:
        ws.append([r.number, r.section.path_label, r.indicator.code, r.indicator.name, r.indicator.measure,
                   xlsx.number(r.total), r.reported, r.expected])

    ws = wb.create_sheet("分单位数值")
    xlsx.sheet_header(ws, ["指标代码", "指标名称", "计量单位", "填报单位", "数值", "材料状态", "说明"],
                      [22, 30, 10, 24, 14, 12, 50])
    for r in rows:
        for contribution, value in r.entries:
            explanation = book.explanation(contribution, f"yoy:{r.indicator.code}") or ""
            ws.append([r.indicator.code, r.indicator.name, r.indicator.measure, contribution.unit.name,
                       xlsx.number(value), CONTRIBUTION_STATE_LABELS.get(contribution.state, contribution.state),
                       explanation])

    rolled = [r for r in rows if r.rollup is not None]
    if rolled:
        ws = wb.create_sheet("下级地区汇总")
        xlsx.sheet_header(ws, ["指标代码", "指标名称", "汇总方式", "计量单位", "下级地区", "数值", "年度报告状态",
                               "说明"], [22, 30, 12, 10, 24, 14, 14, 24])
        for r in rolled:
            for part in r.rollup.parts:
                ws.append([r.indicator.code, r.indicator.name, r.rollup.how_label, r.indicator.measure,
                           part.region_name, xlsx.number(part.value), part.state_label, part.note])

    ws = wb.create_sheet("校验结果")
    xlsx.sheet_header(ws, ["章节", "规则", "级别", "结果", "说明"], [40, 36, 8, 14, 90])
    for result in evaluate_cycle(book, detail=True):
        section = result.rule.section.path_label if result.rule.section is not None else "全文"
        ws.append([section, result.rule.expression, result.severity_label, result.status_label, result.message])
        ws.cell(row=ws.max_row, column=5).alignment = Alignment(wrap_text=True)

    xlsx.keep_text(wb)  # typed text (a liaison's explanation, a name) must not become a formula
    wb.properties.title = f"{cycle.title} 统计指标汇总"
    return xlsx.to_bytes(wb)
