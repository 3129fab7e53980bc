"""HTML of a report with a print stylesheet that follows the GB/T 9704-2012 page layout.

The same markup serves three uses: the preview inside the application, the published HTML file and
the source of the server-rendered PDF (WeasyPrint understands the ``@page`` rules used here).
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from markupsafe import escape

from .document import APPENDIX_TITLE, ReportDocument
from .layout import (CHAR_PT, CHARS_PER_LINE, CLOSING_RIGHT_CHARS, DATE_SHIFT_CHARS, LINE_PITCH_PT,
                     MARGIN_BOTTOM_MM, MARGIN_LEFT_MM, MARGIN_RIGHT_MM, MARGIN_TOP_MM, PAGE_NUMBER_GAP_MM,
                     TABLE_WIDTHS_MM, TEXT_WIDTH_MM, mm_to_pt)

GENERIC = {"heading1": "sans-serif"}
FONT_KEYS = ("title", "body", "heading1", "heading2", "page_number")


def font_stack(*names: str, generic: str = "serif") -> str:
    """A CSS font-family list from comma-separated names, without duplicates, ending generic."""
    seen: list[str] = []
    for value in names:
        for name in (value or "").split(","):
            name = name.strip().strip("'\"")
            if name and name not in seen:
                seen.append(name)
    quoted = ", ".join(f'"{n}"' for n in seen)
    return f"{quoted}, {generic}" if quoted else generic


def font_stacks(*mappings: dict) -> dict[str, str]:
    """Per role (title, body, heading1 …) the CSS stack of every mapping's fonts in order."""
    return {
        key: font_stack(*(m.get(key, "") for m in mappings if m), generic=GENERIC.get(key, "serif"))
        for key in FONT_KEYS
    }


def report_css(stacks: dict[str, str]) -> str:
    """The stylesheet: an A4 page on screen, the official layout in print (and in the PDF)."""
    pitch = f"{LINE_PITCH_PT}pt"
    # 28 characters to the line: shrink each character's advance to fit the text block, with a little
    # slack because the layout engine rounds advances (29 characters would need -0.75 pt).
    spacing = round(mm_to_pt(TEXT_WIDTH_MM) / CHARS_PER_LINE - 16 - 0.05, 3)
    # The closing block (GB/T 9704-2012 7.3.5.2): two characters in from the right margin, the date
    # two characters right of the issuing bodies' start.
    closing_right, date_shift = CLOSING_RIGHT_CHARS * CHAR_PT, DATE_SHIFT_CHARS * CHAR_PT
    # Appendix column widths from the stylesheet: the site's CSP (style-src 'self') drops style
    # attributes. By position too, so that publications stored with <col style=…> get them as well.
    column_widths = "\n".join(f".gw-report .gw-table colgroup > col:nth-child({i}), "
                              f".gw-report .gw-table col.gw-c{i} {{ width: {w}mm; }}"
                              for i, w in enumerate(TABLE_WIDTHS_MM, 1))
    values = {
        "pitch": pitch, "spacing": spacing, "closing_right": closing_right, "date_shift": date_shift,
        "column_widths": column_widths, "TEXT_WIDTH_MM": TEXT_WIDTH_MM, "PAGE_NUMBER_GAP_MM": PAGE_NUMBER_GAP_MM,
        "MARGIN_TOP_MM": MARGIN_TOP_MM, "MARGIN_RIGHT_MM": MARGIN_RIGHT_MM, "MARGIN_BOTTOM_MM": MARGIN_BOTTOM_MM,
        "MARGIN_LEFT_MM": MARGIN_LEFT_MM,
    } | {f"{key}_font": stacks[key] for key in FONT_KEYS}
    return _css_template().substitute(values)


@lru_cache(maxsize=1)
def _css_template() -> Template:
    text = resources.files("fazhi_flow").joinpath("data", "report.css").read_text(encoding="utf-8")
    return Template(text[text.index("*/") + 2:])  # without the explanatory comment


_TAGS = {1: "h2", 2: "h3", 3: "h4"}


def render_article(document: ReportDocument) -> str:
    """The report as an ``<article>`` (escaped markup, no stylesheet)."""
    out = ['<article class="gw-report" lang="zh-CN">', f'<h1 class="gw-title">{escape(document.title)}</h1>']
    out.extend(f'<p class="gw-opening">{escape(p)}</p>' for p in document.opening)
    for block in document.blocks:
        level = f"gw-l{min(block.level, 4)}"
        for kind, head, text in block.lines():
            if kind == "heading":
                tag = _TAGS.get(block.level, "h5")
                out.append(f'<{tag} class="gw-h {level}">{escape(head)}</{tag}>')
            elif kind == "run_in":
                out.append(f'<p class="gw-runin {level}"><span class="gw-hd">{escape(head)}</span>'
                           f'{escape(text)}</p>')
            else:
                out.append(f"<p>{escape(text)}</p>")
    if document.has_appendix:
        out.append(f'<p class="gw-attach-note">{escape(document.appendix_note)}</p>')
    out.extend(render_closing(document))
    if document.has_appendix:
        out.append(render_appendix(document))
    out.append("</article>")
    return "\n".join(out)


def render_closing(document: ReportDocument) -> list[str]:
    """The issuing bodies and the date (GB/T 9704-2012 7.3.5.2, see :func:`layout.closing_block`).

    Placed by the stylesheet alone (the application's CSP forbids style attributes): ``gw-sign``
    shrinks to the wider of the issuing bodies and the date (two characters in), so the renderer's own
    glyph widths decide, and it sits two characters in from the right margin.
    """
    if not document.issuers and not document.issue_date:
        return []
    out = ['<div class="gw-closing">', '<div class="gw-sign">']
    if document.issuers:
        out.append('<div class="gw-issuers">')
        out.extend(f"<p>{escape(name)}</p>" for name in document.issuers)
        out.append("</div>")
    if document.issue_date:
        out.append(f'<p class="gw-date">{escape(document.issue_date_text)}</p>')
    out.extend(["</div>", "</div>"])
    return out


# Alignment of each appendix column: c centred, n a number (right), "" left.
_CELL_CLASS = ("c", "", "", "c", "n")


def render_appendix(document: ReportDocument) -> str:
    """The attachment page: 附件 at the top left, the title, then the indicator table."""
    head, *rows = document.appendix_table()
    out = ['<section class="gw-appendix">', '<p class="gw-attach-label">附件</p>',
           f'<h2 class="gw-attach-title">{escape(APPENDIX_TITLE)}</h2>',
           '<table class="gw-table">',
           "<colgroup>" + "".join(f'<col class="gw-c{i}">' for i in range(1, len(TABLE_WIDTHS_MM) + 1))
           + "</colgroup>",
           "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for row in rows:
        cells = "".join(f'<td class="{cls}">{escape(v)}</td>' if cls else f"<td>{escape(v)}</td>"
                        for cls, v in zip(_CELL_CLASS, row))
        out.append(f"<tr>{cells}</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(head)}">本年度报告没有统计指标。</td></tr>')
    out.extend(["</tbody>", "</table>", "</section>"])
    return "\n".join(out)


def render_html(document: ReportDocument, stacks: dict[str, str], note: str | None = None) -> str:
    """A complete HTML file with its stylesheet inlined (no external resources)."""
    notice = f'<p class="gw-note">{escape(note)}</p>\n' if note else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(document.title)}</title>\n"
        f"<style>{report_css(stacks)}"
        "body { margin: 0; }\n"
        ".gw-note { font-family: sans-serif; font-size: 11pt; color: #555; margin: 0 auto 8px;"
        " width: 156mm; }\n@media print { .gw-note { display: none; } }\n</style>\n"
        "</head>\n<body>\n"
        f'{notice}<div class="gw-sheet">\n{render_article(document)}\n</div>\n</body>\n</html>\n'
    )
