"""Writing XLSX workbooks: the formula guard and the small pieces every export repeats.

openpyxl stores a string starting with "=" as a formula, which Excel would run: names, explanations
and other text typed or imported by users must stay text. Write-only sheets (large exports) pass
each row through ``text_row``; ordinary workbooks call ``keep_text`` before saving.
"""
from __future__ import annotations

import io
from decimal import Decimal

# The header of an ordinary sheet: bold on a light blue, centred and wrapped.
HEADER_FILL = "DDE7F3"


def text_row(sheet, values) -> list:
    """A row for a write-only sheet in which no string becomes a formula."""
    from openpyxl.cell import WriteOnlyCell

    out = []
    for value in values:
        if isinstance(value, str) and value.startswith("="):
            value = WriteOnlyCell(sheet, value=value)
        if getattr(value, "data_type", None) == "f":
            value.data_type = "s"
        out.append(value)
    return out


def header_row(sheet, titles, font, align=None) -> list:
    """Header cells for a write-only sheet, in ``font`` (and ``align`` when given), formula-guarded."""
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for title in titles:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = font
        if align is not None:
            cell.alignment = align
        cells.append(cell)
    return text_row(sheet, cells)


def sheet_header(sheet, titles, widths) -> None:
    """First row of an ordinary sheet: ``titles`` styled as a header, column ``widths``, frozen below."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    sheet.append(titles)
    bold, fill = Font(bold=True), PatternFill("solid", fgColor=HEADER_FILL)
    centred = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for i, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(i)].width = width
        cell = sheet.cell(row=1, column=i)
        cell.font, cell.fill, cell.alignment = bold, fill, centred
    sheet.freeze_panes = "A2"


def number(value) -> int | float | None:
    """A stored decimal as a spreadsheet number: whole numbers stay integers."""
    if value is None:
        return None
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


def keep_text(book) -> None:
    """Turn every formula cell of an ordinary (not write-only) workbook back into text."""
    for sheet in book.worksheets:
        for line in sheet.iter_rows():
            for cell in line:
                if cell.data_type == "f":
                    cell.data_type = "s"


def to_bytes(book) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
