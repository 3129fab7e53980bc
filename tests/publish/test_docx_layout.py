"""The DOCX lays out like the PDF: 28 characters to the line, 22 lines to the page, the same number of
pages (LibreOffice converts it headless; pdftotext reads both back), properties from the publication,
and the closing block of GB/T 9704-2012 7.3.5.2."""
import io
import re
import shutil
import subprocess
from datetime import date, datetime

import pytest
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt

from fazhi_flow.publish.docx import render_docx
from fazhi_flow.publish.document import ReportDocument
from fazhi_flow.publish.html import font_stacks, render_html
from fazhi_flow.publish.layout import (CHAR_PT, MARGIN_LEFT_MM, TEXT_WIDTH_MM, closing_block, mm_to_pt,
                                       width_chars)
from fazhi_flow.publish.merge import assemble
from fazhi_flow.publish.pdf import pdf_available, render_pdf
from fazhi_flow.timeutil import utcnow

from .test_pdf_html import _require
from .test_publication import signed

# Full-width punctuation LibreOffice and Word may hang past the right margin (标点溢出边界).
HANGING = "，。、；：！？”’）》"
RIGHT_EDGE_PT = mm_to_pt(MARGIN_LEFT_MM + TEXT_WIDTH_MM)


@pytest.fixture()
def converters():
    _require(shutil.which("soffice") is not None,
             "LibreOffice is missing (apt-get install libreoffice-writer-nogui)")
    _require(pdf_available(), "WeasyPrint or pango is not installed (pip install weasyprint)")
    _require(shutil.which("pdftotext") is not None, "pdftotext is missing (apt-get install poppler-utils)")


@pytest.fixture()
def demo_document(db, monkeypatch):
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import org
    from fazhi_flow.services.demo import load_demo

    # Passwords play no part here; a cheap hash keeps the demo accounts fast.
    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    cycle, _, _ = load_demo(today=date(2024, 12, 20))
    return assemble(cycle)


def open_fonts(app) -> dict:
    """The server's open fonts (the PDF's), one name each: CI has no 仿宋_GB2312 for LibreOffice."""
    return {role: names.split(",")[0].strip() for role, names in app.config["PDF_FONTS"].items()}


def libreoffice_pdf(docx: bytes, tmp_path) -> bytes:
    source = tmp_path / "report.docx"
    source.write_bytes(docx)
    # A private profile, so runs in parallel (and a user's own LibreOffice) do not collide.
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(source)], check=True, capture_output=True, timeout=180)
    return (tmp_path / "report.pdf").read_bytes()


def pages_of(pdf: bytes, tmp_path, name: str, *options: str) -> str:
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", *options, str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def layout_pages(pdf: bytes, tmp_path, name: str) -> list[list[str]]:
    """Per page, its text lines (without the blank ones); spaces pdftotext puts between glyphs removed
    except the leading ones, which show indentation."""
    text = pages_of(pdf, tmp_path, name, "-layout")
    pages = [page for page in text.split("\f") if page.strip()]
    out = []
    for page in pages:
        lines = [line.rstrip() for line in page.splitlines() if line.strip()]
        out.append([re.match(r"\s*", line).group() + line.strip().replace(" ", "") for line in lines])
    return out


def full_line_lengths(pages: list[list[str]]) -> list[int]:
    """Characters of every full body line made only of Chinese characters and full-width punctuation:
    a line that starts at the margin and is followed, on its page, by another such line of the same
    paragraph. Half-width numerals are left out (their width depends on the font)."""
    lengths = []
    for page in pages:
        for line, following in zip(page, page[1:]):
            if line[:1].isspace() or following[:1].isspace() or width_chars(line) != len(line):
                continue
            if line.startswith("—"):   # the page number
                continue
            lengths.append(len(line.rstrip(HANGING)) if len(line) > 28 else len(line))
    return lengths


def test_libreoffice_lays_out_28_by_22_like_the_pdf(app, demo_document, tmp_path, converters):
    docx = render_docx(demo_document, open_fonts(app))
    ours = layout_pages(render_pdf(render_html(demo_document, font_stacks(app.config["PDF_FONTS"]))),
                        tmp_path, "weasyprint.pdf")
    office = layout_pages(libreoffice_pdf(docx, tmp_path), tmp_path, "libreoffice.pdf")

    assert len(ours) >= 3, "the demo report should run to several pages"
    assert len(office) == len(ours)
    for pages in (ours, office):
        lengths = full_line_lengths(pages)
        assert len(lengths) >= 20
        assert max(lengths) == 28
        # A line may end a character early where a closing punctuation mark may not start the next.
        assert sum(n == 28 for n in lengths) >= 0.8 * len(lengths), lengths
        # Lines per page: a full page holds 22 lines of text above its page number.
        assert max(len(page) - 1 for page in pages[:-1]) == 22


def word_boxes(pdf: bytes, tmp_path, name: str) -> list[tuple[float, float, float, str]]:
    """(xMin, xMax, yMax, word) of every word pdftotext finds on the last page."""
    text = pages_of(pdf, tmp_path, name, "-bbox")
    last = text.rsplit("<page ", 1)[1]
    found = re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
                       last)
    return [(float(x0), float(x1), float(y1), word) for x0, x1, y1, word in found]


def closing_positions(boxes, issuers, date_text):
    """xMin and xMax of each issuer line and of the date line (its numerals may be separate words);
    the closing block is the last text on the page, so the last match counts."""
    spans = {}
    for name in issuers:
        x0, x1, _, _ = [b for b in boxes if b[3] == name][-1]
        spans[name] = (x0, x1)
    date_y = [b[2] for b in boxes if b[3].startswith(date_text[:4])][-1]
    on_line = [b for b in boxes if abs(b[2] - date_y) < 1]
    return spans, (min(b[0] for b in on_line), max(b[1] for b in on_line))


CLOSING = ReportDocument(title="示例区2024年法治政府建设年度报告", opening=["全区法治政府建设稳步推进。"],
                         issuers=["中共益阳市赫山区委员会", "益阳市赫山区人民政府"], issue_date=date(2025, 1, 6))
# A date longer than its issuing body (区司法局, four characters).
LONG_DATE = ReportDocument(title="区司法局2024年法治政府建设年度报告", opening=["全局法治建设稳步推进。"],
                           issuers=["区司法局"], issue_date=date(2025, 12, 16))


def pdfs_of(app, document, tmp_path):
    ours = render_pdf(render_html(document, font_stacks(app.config["PDF_FONTS"])))
    office = libreoffice_pdf(render_docx(document, open_fonts(app)), tmp_path)
    return (("weasyprint.pdf", ours), ("libreoffice.pdf", office))


def test_closing_block_positions_in_both_pdfs(app, tmp_path, converters):
    """7.3.5.2: the issuing bodies two characters in from the right margin, the date below with its
    first character two characters right of the issuing body's first character."""
    for name, pdf in pdfs_of(app, CLOSING, tmp_path):
        spans, (date_x0, _) = closing_positions(word_boxes(pdf, tmp_path, name), CLOSING.issuers,
                                                CLOSING.issue_date_text)
        (first_x0, first_x1), (second_x0, second_x1) = spans.values()
        assert first_x1 == pytest.approx(RIGHT_EDGE_PT - 2 * CHAR_PT, abs=1.5), name
        assert second_x1 == pytest.approx(first_x1, abs=1.5), name
        assert date_x0 == pytest.approx(first_x0 + 2 * CHAR_PT, abs=1.5), name


def test_a_longer_date_sits_two_characters_in_and_moves_the_issuer(app, tmp_path, converters):
    """7.3.5.2: a date longer than the issuing body is set two characters in from the right and the
    issuing body moves left, still starting two characters before the date."""
    for name, pdf in pdfs_of(app, LONG_DATE, tmp_path):
        spans, (date_x0, date_x1) = closing_positions(word_boxes(pdf, tmp_path, name), LONG_DATE.issuers,
                                                      LONG_DATE.issue_date_text)
        ((issuer_x0, issuer_x1),) = spans.values()
        assert date_x0 == pytest.approx(issuer_x0 + 2 * CHAR_PT, abs=1.5), name
        assert issuer_x1 < RIGHT_EDGE_PT - 4 * CHAR_PT, name
        # The stylesheet measures the real glyphs. The DOCX counts a numeral as half a character (as in
        # 仿宋_GB2312); LibreOffice sets the open font's wider numerals with extra space beside Chinese
        # characters, so its date ends up to one and a half characters further right.
        tolerance = 1.5 if name == "weasyprint.pdf" else 1.5 * CHAR_PT
        assert date_x1 == pytest.approx(RIGHT_EDGE_PT - 2 * CHAR_PT, abs=tolerance), name


def test_closing_block_in_the_docx():
    doc = Document(io.BytesIO(render_docx(CLOSING)))
    issuer1, issuer2, issued = doc.paragraphs[-3:]
    assert doc.paragraphs[-4].text == ""     # one blank line below the body
    for paragraph in (issuer1, issuer2):
        assert paragraph.alignment == WD_ALIGN_PARAGRAPH.RIGHT
        assert paragraph.paragraph_format.right_indent == Pt(2 * CHAR_PT)
        assert paragraph.paragraph_format.first_line_indent == Pt(0)
        assert paragraph.paragraph_format.keep_with_next
        assert paragraph.runs[0]._r.rPr.find(qn("w:rFonts")).get(qn("w:eastAsia")) == "仿宋_GB2312"
    assert issued.text == "2025年1月6日"
    assert issued.alignment == WD_ALIGN_PARAGRAPH.LEFT
    assert issued.paragraph_format.first_line_indent == Pt(0)
    # No extra space around the numerals, so the date is as wide as counted.
    ppr = issued._p.pPr
    assert [ppr.find(qn(t)).get(qn("w:val")) for t in ("w:autoSpaceDE", "w:autoSpaceDN")] == ["0", "0"]
    # The date starts two characters right of where the longer issuing body (11 characters) starts.
    issuer_start = mm_to_pt(TEXT_WIDTH_MM) - 2 * CHAR_PT - 11 * CHAR_PT
    assert issued.paragraph_format.left_indent.pt == pytest.approx(issuer_start + 2 * CHAR_PT, abs=0.05)


def test_closing_block_rule_when_the_date_is_longer():
    # 区司法局 (4 characters) above a date of 7: the date sits two characters in from the right and the
    # issuing body moves left so that it still starts two characters before the date.
    issuer, issued = closing_block(["区司法局"], "2025年12月16日")
    assert (issuer.side, issued.side) == ("right", "left")
    date_end = issued.chars + width_chars("2025年12月16日")
    assert mm_to_pt(TEXT_WIDTH_MM) / CHAR_PT - date_end == pytest.approx(2)
    issuer_start = mm_to_pt(TEXT_WIDTH_MM) / CHAR_PT - issuer.chars - 4
    assert issued.chars - issuer_start == pytest.approx(2)
    # The usual case: the issuing body is longer; it keeps its two characters.
    assert closing_block(["益阳市赫山区人民政府"], "2025年1月6日")[0].chars == 2
    assert closing_block([], "2025年1月6日") == [closing_block([], "2025年1月6日")[0]]
    assert closing_block([], "")[:1] == []


def test_closing_block_in_the_html(app):
    html = render_html(CLOSING, font_stacks(app.config["PDF_FONTS"]))
    # Classes only: the application's CSP (style-src 'self') would drop style attributes.
    assert ('<div class="gw-closing">\n<div class="gw-sign">\n<div class="gw-issuers">\n'
            '<p>中共益阳市赫山区委员会</p>\n<p>益阳市赫山区人民政府</p>\n</div>\n'
            '<p class="gw-date">2025年1月6日</p>\n</div>\n</div>') in html
    assert ".gw-report .gw-sign { display: table; margin: 0 31.5pt 0 auto; }" in html
    assert ".gw-report .gw-closing p.gw-date { text-align: left; padding-left: 31.5pt; }" in html


def test_line_grid_and_character_spacing():
    doc = Document(io.BytesIO(render_docx(CLOSING)))
    grid = doc.sections[0]._sectPr.find(qn("w:docGrid"))
    # A grid of lines only; a character grid makes LibreOffice set 14 characters to the line.
    assert grid.get(qn("w:type")) == "lines" and grid.get(qn("w:charSpace")) is None
    assert int(grid.get(qn("w:linePitch"))) == 579
    assert 22 * 579 / 20 <= mm_to_pt(225) < 23 * 579 / 20     # 22 lines fit, a 23rd does not
    spacing = doc.styles["Normal"].element.rPr.find(qn("w:spacing"))
    advance = 16 + int(spacing.get(qn("w:val"))) / 20
    measure = mm_to_pt(TEXT_WIDTH_MM)
    assert 28 * advance <= measure < 29 * advance
    assert 26 * advance + 32 <= measure     # the first line, two characters in, holds 26
    assert advance == CHAR_PT


def test_properties_are_the_publications(compiling, db, monkeypatch):
    from fazhi_flow.services import compile as svc

    signed(compiling, db)
    # A publication time unlike the clock's, so the file cannot get it by rendering at the same second.
    monkeypatch.setattr(svc, "utcnow", lambda: datetime(2025, 1, 20, 9, 30, 15, 123456))
    publication = svc.publish_report(compiling.cycle, compiling.admin)
    db.session.flush()
    assert publication.published_at == datetime(2025, 1, 20, 9, 30, 15, 123456)
    props = Document(io.BytesIO(publication.docx)).core_properties
    assert props.title == "示例区2024年法治政府建设年度报告"
    assert props.author == props.last_modified_by == "中共示例区委员会、示例区人民政府"
    when = publication.published_at.replace(microsecond=0)
    assert props.created.replace(tzinfo=None) == props.modified.replace(tzinfo=None) == when
    assert "python-docx" not in (props.comments + props.author + props.last_modified_by)


def test_draft_properties_carry_the_time_of_rendering():
    before = utcnow().replace(microsecond=0)
    props = Document(io.BytesIO(render_docx(CLOSING))).core_properties
    assert props.created.replace(tzinfo=None) >= before
    assert props.created.year != 2013
