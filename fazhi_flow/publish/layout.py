"""The page layout of GB/T 9704-2012 《党政机关公文格式》, shared by the DOCX, HTML and PDF renderers."""

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
# Columns of the indicator appendix table (序号, 所属部分, 指标名称, 计量单位, 数值): 156 mm in all.
TABLE_WIDTHS_MM = (12, 46, 52, 24, 22)


def mm_to_pt(mm: float) -> float:
    return mm * 72 / 25.4
