"""Writing XLSX workbooks: the formula guard and the small pieces every export repeats.

openpyxl stores a string starting with "=" as a formula, which Excel would run: names, explanations
and other text typed or imported by users must stay text. Write-only sheets (large exports) pass
each row through ``text_row``; ordinary workbooks call ``keep_text`` before saving.
"""
from __future__ import annotations

import io


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
