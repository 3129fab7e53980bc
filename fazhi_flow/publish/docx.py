"""DOCX in the format of GB/T 9704-2012 《党政机关公文格式》, written with python-docx.

Fonts are named for East Asian text (``w:eastAsia`` on ``w:rFonts``; python-docx's ``font.name`` only
sets the Latin slots), so Word and WPS pick the official fonts installed on office PCs. The names come
from the ``DOCX_FONTS`` setting.
"""
from __future__ import annotations

import io
from datetime import datetime

from docx import Document
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, Twips

from ..limits import shorten
from ..timeutil import utcnow
from .document import APPENDIX_TITLE, ReportDocument
from .layout import (BODY_PT, CHAR_PT, CHAR_SPACING_TWIPS, LINE_PITCH_TWIPS, MARGIN_BOTTOM_MM,
                     MARGIN_LEFT_MM, MARGIN_RIGHT_MM, MARGIN_TOP_MM, PAGE_HEIGHT_MM, PAGE_NUMBER_GAP_MM,
                     PAGE_NUMBER_PT, PAGE_WIDTH_MM, TABLE_WIDTHS_MM, TITLE_PT, closing_block)

DEFAULT_FONTS = {
    "title": "方正小标宋简体",
    "body": "仿宋_GB2312",
    "heading1": "黑体",
    "heading2": "楷体_GB2312",
    "page_number": "宋体",
}
INDENT = Pt(2 * BODY_PT)            # two characters of body text
PAGE_NUMBER_INDENT = Pt(PAGE_NUMBER_PT)  # one character of the page number
FOOTER_LINE_PT = 18
HEADING_FONT = {1: "heading1", 2: "heading2"}
# The appendix table: 4号 text, a little more than one line of it per row, widths filling the 156 mm.
TABLE_PT = 14
TABLE_LINE_TWIPS = 24 * 20
TABLE_ALIGN = (WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.LEFT, WD_ALIGN_PARAGRAPH.LEFT,
               WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.RIGHT)


def set_fonts(rpr_owner, name: str) -> None:
    """Name ``name`` for every script slot of a run or style, the East Asian one included."""
    rpr = rpr_owner.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    # Theme attributes win over explicit names, so drop them.
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(attr), None)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), name)
    fonts.set(qn("w:hint"), "eastAsia")


# The order of w:pPr's children in the schema (CT_PPr); Word refuses a file that breaks it.
PPR_ORDER = ("pStyle", "keepNext", "keepLines", "pageBreakBefore", "framePr", "widowControl", "numPr",
             "suppressLineNumbers", "pBdr", "shd", "tabs", "suppressAutoHyphens", "kinsoku", "wordWrap",
             "overflowPunct", "topLinePunct", "autoSpaceDE", "autoSpaceDN", "bidi", "adjustRightInd",
             "snapToGrid", "spacing", "ind", "contextualSpacing", "mirrorIndents", "suppressOverlap", "jc",
             "textDirection", "textAlignment", "textboxTightWrap", "outlineLvl", "divId", "cnfStyle",
             "rPr", "sectPr", "pPrChange")


def _ppr_flag(paragraph, name: str, value: str) -> None:
    """Add ``w:<name> w:val=value`` to a paragraph's properties in its schema place."""
    element = OxmlElement(f"w:{name}")
    element.set(qn("w:val"), value)
    later = PPR_ORDER[PPR_ORDER.index(name) + 1:]
    paragraph._p.get_or_add_pPr().insert_element_before(element, *(f"w:{tag}" for tag in later))


def _char_spacing(rpr_owner, twips: int) -> None:
    """Set ``w:spacing`` (character spacing, in twips) on a run or style, replacing any earlier value."""
    rpr = rpr_owner.get_or_add_rPr()
    for old in rpr.findall(qn("w:spacing")):
        rpr.remove(old)
    spacing = OxmlElement("w:spacing")
    spacing.set(qn("w:val"), str(twips))
    # CT_RPr's schema order puts w:spacing before w:w, w:kern, w:position, w:sz …
    following = [rpr.find(qn(tag)) for tag in ("w:w", "w:kern", "w:position", "w:sz", "w:szCs",
                                                "w:highlight", "w:u", "w:effect", "w:lang")]
    following = [el for el in following if el is not None]
    if following:
        following[0].addprevious(spacing)
    else:
        rpr.append(spacing)


def _run(paragraph, text: str, font: str, size: float, spacing: int | None = None):
    """A run of ``text``; ``spacing`` (twips) overrides the body's character spacing (the table and the
    page numbers are not on the 28-character measure)."""
    run = paragraph.add_run(text)
    set_fonts(run._r, font)
    run.font.size = Pt(size)
    szcs = OxmlElement("w:szCs")
    szcs.set(qn("w:val"), str(int(size * 2)))
    run._r.get_or_add_rPr().append(szcs)
    if spacing is not None:
        _char_spacing(run._r, spacing)
    return run


def _exact(paragraph, twips: int = LINE_PITCH_TWIPS) -> None:
    fmt = paragraph.paragraph_format
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = Twips(twips)
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(0)


def _setup_styles(doc, fonts: dict) -> None:
    styles = doc.styles.element
    rpr_default = styles.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    fonts_el = rpr_default.find(qn("w:rFonts"))
    for attr in list(fonts_el.attrib):
        del fonts_el.attrib[attr]
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts_el.set(qn(attr), fonts["body"])
    for tag in ("w:sz", "w:szCs"):
        rpr_default.find(qn(tag)).set(qn("w:val"), str(BODY_PT * 2))
    lang = rpr_default.find(qn("w:lang"))
    lang.set(qn("w:eastAsia"), "zh-CN")
    ppr_default = styles.find(qn("w:docDefaults")).find(qn("w:pPrDefault")).find(qn("w:pPr"))
    spacing = ppr_default.find(qn("w:spacing"))
    spacing.set(qn("w:after"), "0")
    spacing.set(qn("w:line"), str(LINE_PITCH_TWIPS))
    spacing.set(qn("w:lineRule"), "exact")

    normal = doc.styles["Normal"]
    set_fonts(normal.element, fonts["body"])
    normal.font.size = Pt(BODY_PT)
    _char_spacing(normal.element, CHAR_SPACING_TWIPS)
    fmt = normal.paragraph_format
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = Twips(LINE_PITCH_TWIPS)
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(0)
    fmt.widow_control = True


def _setup_page(doc) -> None:
    section = doc.sections[0]
    section.page_width = Mm(PAGE_WIDTH_MM)
    section.page_height = Mm(PAGE_HEIGHT_MM)
    section.top_margin = Mm(MARGIN_TOP_MM)
    section.bottom_margin = Mm(MARGIN_BOTTOM_MM)
    section.left_margin = Mm(MARGIN_LEFT_MM)
    section.right_margin = Mm(MARGIN_RIGHT_MM)
    section.gutter = Mm(0)
    section.header_distance = Mm(15)
    # The page number's line starts 7 mm below the text block.
    section.footer_distance = Mm(MARGIN_BOTTOM_MM - PAGE_NUMBER_GAP_MM) - Pt(FOOTER_LINE_PT)
    sect_pr = section._sectPr
    grid = sect_pr.find(qn("w:docGrid"))
    if grid is None:
        grid = OxmlElement("w:docGrid")
        sect_pr.append(grid)
    # A grid of lines only (ECMA-376 17.6.5: type "lines" ignores w:charSpace): 22 lines of 579 twips.
    # The 28 characters come from the Normal style's character spacing (CHAR_SPACING_TWIPS), which
    # Word, WPS and LibreOffice all apply the same way. A character grid ("linesAndChars" with Word's
    # own charSpace for 28 characters) is read differently: LibreOffice 7.4 sets 14 to the line.
    grid.set(qn("w:type"), "lines")
    grid.set(qn("w:linePitch"), str(LINE_PITCH_TWIPS))
    grid.attrib.pop(qn("w:charSpace"), None)
    # Odd pages and even pages have their own footers (w:evenAndOddHeaders in settings).
    doc.settings.odd_and_even_pages_header_footer = True


def _page_number(footer, fonts: dict, align) -> None:
    footer.is_linked_to_previous = False
    paragraph = footer.paragraphs[0] if footer.paragraphs else footer.add_paragraph()
    for run in paragraph._p.findall(qn("w:r")):
        paragraph._p.remove(run)
    fmt = paragraph.paragraph_format
    fmt.alignment = align
    fmt.first_line_indent = Pt(0)
    if align == WD_ALIGN_PARAGRAPH.RIGHT:
        fmt.right_indent = PAGE_NUMBER_INDENT
    else:
        fmt.left_indent = PAGE_NUMBER_INDENT
    _exact(paragraph, FOOTER_LINE_PT * 20)
    _no_grid(paragraph)
    font, size = fonts["page_number"], PAGE_NUMBER_PT
    _run(paragraph, "— ", font, size, 0)
    for kind, text in (("begin", None), ("instr", " PAGE "), ("separate", None), ("text", "1"),
                       ("end", None)):
        run = _run(paragraph, "", font, size, 0)
        if kind == "instr":
            instr = OxmlElement("w:instrText")
            instr.set(qn("xml:space"), "preserve")
            instr.text = text
            run._r.append(instr)
        elif kind == "text":
            run.text = text
        else:
            fld = OxmlElement("w:fldChar")
            fld.set(qn("w:fldCharType"), kind)
            run._r.append(fld)
    _run(paragraph, " —", font, size, 0)


def _paragraph(doc, indent=True, align=WD_ALIGN_PARAGRAPH.JUSTIFY):
    paragraph = doc.add_paragraph()
    fmt = paragraph.paragraph_format
    fmt.alignment = align
    fmt.first_line_indent = INDENT if indent else Pt(0)
    _exact(paragraph)
    return paragraph


def _no_grid(paragraph) -> None:
    """Keep a paragraph of smaller text (table, page number) off the page's line grid."""
    _ppr_flag(paragraph, "snapToGrid", "0")


def _appendix(doc, document: ReportDocument, fonts: dict) -> None:
    """The attachment page (GB/T 9704-2012 7.5): 附件 in 黑体 at the top left of a new page, the
    title centred in the title font, then the indicator table in 仿宋 with a repeated heading row."""
    label = _paragraph(doc, indent=False, align=WD_ALIGN_PARAGRAPH.LEFT)
    label.paragraph_format.page_break_before = True
    _run(label, "附件", fonts["heading1"], BODY_PT)
    _paragraph(doc)
    title = _paragraph(doc, indent=False, align=WD_ALIGN_PARAGRAPH.CENTER)
    _run(title, APPENDIX_TITLE, fonts["title"], TITLE_PT)
    _paragraph(doc)

    head, *rows = document.appendix_table()
    if not rows:
        rows = [["", "本年度报告没有统计指标。", "", "", ""]]
    table = doc.add_table(rows=1 + len(rows), cols=len(head))
    table.style = doc.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for column, width in zip(table.columns, TABLE_WIDTHS_MM):
        column.width = Mm(width)
    for r, values in enumerate([head, *rows]):
        row = table.rows[r]
        if r == 0:
            # Repeat the heading row on every page the table runs onto.
            header = OxmlElement("w:tblHeader")
            header.set(qn("w:val"), "true")
            row._tr.get_or_add_trPr().append(header)
        for c, (cell, value) in enumerate(zip(row.cells, values)):
            cell.width = Mm(TABLE_WIDTHS_MM[c])
            cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
            paragraph = cell.paragraphs[0]
            fmt = paragraph.paragraph_format
            fmt.first_line_indent = Pt(0)
            fmt.alignment = WD_ALIGN_PARAGRAPH.CENTER if r == 0 else TABLE_ALIGN[c]
            _exact(paragraph, TABLE_LINE_TWIPS)
            _no_grid(paragraph)
            _run(paragraph, value, fonts["heading1"] if r == 0 else fonts["body"], TABLE_PT, 0)


def _closing(doc, document: ReportDocument, fonts: dict) -> None:
    """The issuing bodies and the date, placed as :func:`layout.closing_block` says (GB/T 9704 7.3.5.2)."""
    lines = closing_block(document.issuers, document.issue_date_text)
    if not lines:
        return
    _paragraph(doc)  # one blank line above the issuing bodies
    for line in lines:
        right = line.side == "right"
        paragraph = _paragraph(doc, indent=False,
                               align=WD_ALIGN_PARAGRAPH.RIGHT if right else WD_ALIGN_PARAGRAPH.LEFT)
        fmt = paragraph.paragraph_format
        if right:
            fmt.right_indent = Pt(line.chars * CHAR_PT)
        else:
            fmt.left_indent = Pt(line.chars * CHAR_PT)
            _no_autospace(paragraph)
        fmt.keep_with_next = line is not lines[-1]
        _run(paragraph, line.text, fonts["body"], BODY_PT)


def _no_autospace(paragraph) -> None:
    """No extra space between Chinese characters and numerals (Word adds it by default), so the date is
    as wide as :func:`layout.width_chars` counts it. LibreOffice 7.4 ignores these flags."""
    _ppr_flag(paragraph, "autoSpaceDE", "0")
    _ppr_flag(paragraph, "autoSpaceDN", "0")


CORE_PROPERTY_MAX = 255


def _core_properties(doc, document: ReportDocument, published_at: datetime | None) -> None:
    """Title, author (the issuing bodies) and times: the publication time, not the template's 2013."""
    when = published_at or utcnow()
    props = doc.core_properties
    # python-docx refuses core properties over 255 characters; long titles and issuers are fitted.
    props.title = shorten(document.title, CORE_PROPERTY_MAX)
    props.language = "zh-CN"
    props.author = props.last_modified_by = shorten("、".join(document.issuers), CORE_PROPERTY_MAX)
    props.created = props.modified = when.replace(microsecond=0)
    props.revision = 1
    props.comments = props.subject = props.keywords = props.category = ""


def render_docx(document: ReportDocument, fonts: dict | None = None,
                published_at: datetime | None = None) -> bytes:
    """Write the report as a DOCX file and return its bytes.

    ``published_at`` (naive UTC) becomes the file's created and modified time; a draft gets the time
    it is rendered.
    """
    fonts = {**DEFAULT_FONTS, **(fonts or {})}
    doc = Document()
    _setup_styles(doc, fonts)
    _setup_page(doc)
    section = doc.sections[0]
    _page_number(section.footer, fonts, WD_ALIGN_PARAGRAPH.RIGHT)
    _page_number(section.even_page_footer, fonts, WD_ALIGN_PARAGRAPH.LEFT)
    _core_properties(doc, document, published_at)

    title = _paragraph(doc, indent=False, align=WD_ALIGN_PARAGRAPH.CENTER)
    _run(title, document.title, fonts["title"], TITLE_PT)
    _paragraph(doc)  # one blank line below the title

    for text in document.opening:
        _run(_paragraph(doc), text, fonts["body"], BODY_PT)
    for block in document.blocks:
        heading_font = fonts[HEADING_FONT.get(block.level, "body")]
        for kind, head, text in block.lines():
            paragraph = _paragraph(doc)
            if kind == "heading":
                paragraph.paragraph_format.keep_with_next = True
                _run(paragraph, head, heading_font, BODY_PT)
            elif kind == "run_in":
                _run(paragraph, head, heading_font, BODY_PT)
                if text:
                    _run(paragraph, text, fonts["body"], BODY_PT)
            else:
                _run(paragraph, text, fonts["body"], BODY_PT)

    if document.has_appendix:
        _paragraph(doc)  # the attachment note: a blank line below the body, two characters in
        _run(_paragraph(doc), document.appendix_note, fonts["body"], BODY_PT)
    _closing(doc, document, fonts)

    if document.has_appendix:
        _appendix(doc, document, fonts)

    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
