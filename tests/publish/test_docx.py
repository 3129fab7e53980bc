"""The DOCX follows GB/T 9704-2012: checked by opening the produced file with python-docx."""
import io

import pytest
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml.ns import qn
from docx.shared import Pt

from fazhi_flow.publish.docx import render_docx
from fazhi_flow.publish.merge import assemble

FONTS = {
    "title": "方正小标宋简体", "body": "仿宋_GB2312", "heading1": "黑体", "heading2": "楷体_GB2312",
    "page_number": "宋体",
}


def east_asia(run):
    fonts = run._r.rPr.find(qn("w:rFonts"))
    return fonts.get(qn("w:eastAsia"))


@pytest.fixture()
def docx_file(report):
    return Document(io.BytesIO(render_docx(assemble(report.cycle), FONTS)))


def by_text(doc, start):
    return next(p for p in doc.paragraphs if p.text.startswith(start))


def mm(length):
    # Lengths are stored in twips (1/1440 inch): compare to a tenth of a millimetre.
    return round(length / 36000, 1)


def test_page_setup_a4_and_text_block(docx_file):
    section = docx_file.sections[0]
    assert (mm(section.page_width), mm(section.page_height)) == (210, 297)
    assert mm(section.top_margin) == 37
    assert mm(section.left_margin) == 28
    assert mm(section.right_margin) == 26
    assert mm(section.bottom_margin) == 35
    assert mm(section.page_width - section.left_margin - section.right_margin) == 156
    assert mm(section.page_height - section.top_margin - section.bottom_margin) == 225


# The line grid, the character spacing and the closing block: test_docx_layout.py.


def test_title_22pt_centred_east_asian_font(docx_file):
    title = docx_file.paragraphs[0]
    assert title.text == "示例区2024年法治政府建设年度报告"
    assert title.alignment == WD_ALIGN_PARAGRAPH.CENTER
    run = title.runs[0]
    assert run.font.size == Pt(22)
    assert east_asia(run) == "方正小标宋简体"
    assert docx_file.paragraphs[1].text == ""   # one blank line below the title


def test_body_16pt_fangsong_two_character_indent(docx_file):
    opening = by_text(docx_file, "2024年，全区围绕")
    assert opening.paragraph_format.first_line_indent == Pt(32)
    assert opening.paragraph_format.line_spacing_rule == WD_LINE_SPACING.EXACTLY
    assert opening.paragraph_format.line_spacing.pt == pytest.approx(28.95)
    run = opening.runs[0]
    assert run.font.size == Pt(16)
    assert east_asia(run) == "仿宋_GB2312"
    fonts = run._r.rPr.find(qn("w:rFonts"))
    assert fonts.get(qn("w:ascii")) == "仿宋_GB2312"
    assert fonts.get(qn("w:asciiTheme")) is None
    # The Normal style names the body font for East Asian text too.
    normal = docx_file.styles["Normal"].element.rPr.find(qn("w:rFonts"))
    assert normal.get(qn("w:eastAsia")) == "仿宋_GB2312"


def test_level_one_heading_heiti_on_its_own(docx_file):
    heading = by_text(docx_file, "一、")
    assert heading.text == "一、法治政府建设主要举措和成效"
    assert [east_asia(r) for r in heading.runs] == ["黑体"]
    assert heading.paragraph_format.first_line_indent == Pt(32)
    assert heading.paragraph_format.keep_with_next


def test_level_two_run_in_heading_kaiti_then_fangsong(docx_file):
    paragraph = by_text(docx_file, "（二）")
    head, body = paragraph.runs
    assert head.text == "（二）优化法治化营商环境。"
    assert east_asia(head) == "楷体_GB2312"
    assert body.text.startswith("一是提升涉企服务质效。")
    assert east_asia(body) == "仿宋_GB2312"
    assert head.font.size == body.font.size == Pt(16)


def test_numbering_of_the_four_levels(factory, db):
    cycle = factory.cycle()
    top = factory.section(cycle, "主要举措")
    mid = factory.section(cycle, "制度建设", parent=top)
    low = factory.section(cycle, "决策机制", parent=mid)
    factory.section(cycle, "法律顾问", parent=low)
    db.session.expire_all()
    doc = Document(io.BytesIO(render_docx(assemble(cycle), FONTS)))
    heads = {p.text: east_asia(p.runs[0]) for p in doc.paragraphs if p.runs and p.text}
    assert heads["一、主要举措"] == "黑体"
    assert heads["（一）制度建设"] == "楷体_GB2312"
    assert heads["1.决策机制"] == "仿宋_GB2312"
    assert heads["（1）法律顾问"] == "仿宋_GB2312"


def _field_runs(paragraph):
    instr = [el.text for el in paragraph._p.iter(qn("w:instrText"))]
    kinds = [el.get(qn("w:fldCharType")) for el in paragraph._p.iter(qn("w:fldChar"))]
    return instr, kinds


def test_page_numbers_odd_right_even_left(docx_file):
    settings = docx_file.settings.element
    assert settings.find(qn("w:evenAndOddHeaders")) is not None
    section = docx_file.sections[0]
    odd = section.footer.paragraphs[0]
    even = section.even_page_footer.paragraphs[0]
    for paragraph in (odd, even):
        instr, kinds = _field_runs(paragraph)
        assert [i.strip() for i in instr] == ["PAGE"]
        assert kinds == ["begin", "separate", "end"]
        assert paragraph.text == "— 1 —"
        for run in paragraph.runs:
            assert run.font.size == Pt(14)
            assert east_asia(run) == "宋体"
    assert odd.alignment == WD_ALIGN_PARAGRAPH.RIGHT
    assert odd.paragraph_format.right_indent == Pt(14)       # one character in from the edge
    assert even.alignment == WD_ALIGN_PARAGRAPH.LEFT
    assert even.paragraph_format.left_indent == Pt(14)


def test_unapproved_material_absent(docx_file):
    assert not any("尚未通过审核" in p.text for p in docx_file.paragraphs)


def test_font_names_come_from_configuration(report, app):
    from fazhi_flow.services.compile import render_format

    fonts = {**app.config["DOCX_FONTS"]}
    app.config["DOCX_FONTS"] = {**fonts, "body": "仿宋", "heading1": "方正黑体_GBK"}
    try:
        doc = Document(io.BytesIO(render_format(assemble(report.cycle), "docx")))
    finally:
        app.config["DOCX_FONTS"] = fonts
    assert east_asia(by_text(doc, "2024年，全区").runs[0]) == "仿宋"
    assert east_asia(by_text(doc, "一、").runs[0]) == "方正黑体_GBK"
