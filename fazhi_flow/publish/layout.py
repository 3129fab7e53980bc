"""The page layout of GB/T 9704-2012 《党政机关公文格式》, shared by the DOCX, HTML and PDF renderers."""
from __future__ import annotations

from dataclasses import dataclass

PAGE_WIDTH_MM = 210
PAGE_HEIGHT_MM = 297
MARGIN_TOP_MM = 37       # 天头
MARGIN_LEFT_MM = 28      # 订口
TEXT_WIDTH_MM = 156      # 版心 width
TEXT_HEIGHT_MM = 225     # 版心 height
MARGIN_RIGHT_MM = PAGE_WIDTH_MM - MARGIN_LEFT_MM - TEXT_WIDTH_MM     # 26
MARGIN_BOTTOM_MM = PAGE_HEIGHT_MM - MARGIN_TOP_MM - TEXT_HEIGHT_MM   # 35
LINES_PER_PAGE = 22
CHARS_PER_LINE = 28
# The rule line above the page number sits 7 mm below the text block.
PAGE_NUMBER_GAP_MM = 7

BODY_PT = 16        # 3号
TITLE_PT = 22       # 2号
PAGE_NUMBER_PT = 14  # 4号
# 225 mm / 22 lines = 28.99 pt; Word templates round the pitch down to 579 twips so 22 lines fit.
LINE_PITCH_TWIPS = 579
LINE_PITCH_PT = LINE_PITCH_TWIPS / 20
# 28 characters to the line: 156 mm is 442.2 pt, so each 16 pt character may advance 15.79 pt, i.e.
# -0.21 pt of character spacing. OOXML's w:spacing (ECMA-376 17.3.2.35) is added after every character
# and counted in twips (1/20 pt): rounding down to -5 twips (-0.25 pt) gives 28 × 15.75 = 441 pt, which
# fits, while 29 characters (456.75 pt) do not; a first line two characters (32 pt) in holds 26 (441.5 pt).
CHAR_SPACING_TWIPS = -5
# Columns of the indicator appendix table (序号, 所属部分, 指标名称, 计量单位, 数值): 156 mm in all.
TABLE_WIDTHS_MM = (12, 46, 52, 24, 22)


def mm_to_pt(mm: float) -> float:
    return mm * 72 / 25.4


# One character of body text as set: 16 pt plus the character spacing (15.75 pt).
CHAR_PT = BODY_PT + CHAR_SPACING_TWIPS / 20
# The closing block keeps the issuing bodies two characters in from the right margin.
CLOSING_RIGHT_CHARS = 2
# The date starts this many characters to the right of the issuing bodies' first character.
DATE_SHIFT_CHARS = 2


def width_chars(text: str) -> float:
    """The printed width of ``text`` in body characters: Arabic numerals and Latin letters are half width."""
    return sum(0.5 if ord(ch) < 0x80 else 1 for ch in text)


@dataclass(frozen=True)
class ClosingLine:
    """One line of the closing block: ``text`` set ``chars`` characters in from the ``side`` margin."""
    text: str
    side: str    # "right" (right-aligned) or "left" (left-aligned)
    chars: float


def closing_block(issuers: list[str], date_text: str) -> list[ClosingLine]:
    """The issuing bodies (发文机关署名) and the date (成文日期) of a report without a seal.

    GB/T 9704-2012 7.3.5.2 (不加盖印章的公文): the issuing body is set one line below the body text,
    two characters in from the right margin (右空二字); the date goes on the next line, its first
    character two characters to the right of the issuing body's first character. When the date is
    the longer of the two, the date is set two characters in from the right and the issuing body moves
    left by as much (增加发文机关署名右空字数). With several issuing bodies (联合行文) they are listed one
    per line, the lead body first, and the longest of them stands for "the issuing body" above.
    """
    if not issuers:
        return [ClosingLine(date_text, "right", CLOSING_RIGHT_CHARS)] if date_text else []
    longest = max(width_chars(name) for name in issuers)
    date_width = width_chars(date_text)
    # How far the date would run past the two-character margin if it began two characters in.
    overrun = max(0.0, DATE_SHIFT_CHARS + date_width - longest) if date_text else 0.0
    right = CLOSING_RIGHT_CHARS + overrun
    lines = [ClosingLine(name, "right", right) for name in issuers]
    if date_text:
        # Measured from the left margin on the real measure (442.2 pt is a little over 28 × 15.75 pt).
        start = mm_to_pt(TEXT_WIDTH_MM) / CHAR_PT - right - longest + DATE_SHIFT_CHARS
        lines.append(ClosingLine(date_text, "left", start))
    return lines
