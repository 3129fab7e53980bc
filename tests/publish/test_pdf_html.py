"""PDF rendered on the server (checked as PNG pages with pdftoppm) and HTML with a print stylesheet."""
import os
import shutil
import struct
import subprocess
import sys

import pytest

from fazhi_flow.publish.document import Block, ReportDocument
from fazhi_flow.publish.html import font_stacks, render_html
from fazhi_flow.publish.merge import assemble
from fazhi_flow.publish.pdf import INSTALL_HINT, PdfUnavailable, pdf_available, render_pdf

IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(ok: bool, reason: str):
    if not ok:
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


@pytest.fixture()
def pdf_tools():
    _require(pdf_available(), "WeasyPrint or pango is not installed (pip install weasyprint; "
                              "apt-get install libpango-1.0-0 libpangoft2-1.0-0)")
    _require(shutil.which("pdftoppm") is not None, "pdftoppm is missing (apt-get install poppler-utils)")


def long_document() -> ReportDocument:
    point = "一是持续完善依法决策机制，重大事项全部经过合法性审查。"
    return ReportDocument(
        title="示例区2024年法治政府建设年度报告",
        opening=["全区坚持依法行政，法治政府建设各项任务稳步推进。现将情况报告如下："],
        blocks=[Block(1, "一、", "主要举措和成效")]
        + [Block(2, f"（{n}）", f"第{n}项工作", [point * 6, point * 4], True) for n in "一二三四五六"]
        + [Block(1, "二、", "下一年度工作安排", [point * 3])],
        issuers=["中共示例区委员会", "示例区人民政府"],
    )


def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_pdf_pages_are_a4_with_page_numbers(app, tmp_path, pdf_tools):
    stacks = font_stacks(app.config["PDF_FONTS"])
    pdf = render_pdf(render_html(long_document(), stacks))
    assert pdf.startswith(b"%PDF")
    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "72", "-png", str(source), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    for page in pages:
        width, height = png_size(page)
        # A4 at 72 dpi is 595.3 × 841.9 points.
        assert abs(width - 595) <= 1 and abs(height - 842) <= 1
    if shutil.which("pdftotext"):
        out = subprocess.run(["pdftotext", "-layout", "-f", "2", "-l", "3", str(source), "-"],
                             check=True, capture_output=True, text=True).stdout
        page2, page3 = out.split("\f")[:2]
        # Page numbers: even pages on the left, odd pages on the right.
        last2 = [line for line in page2.splitlines() if line.strip()][-1]
        last3 = [line for line in page3.splitlines() if line.strip()][-1]
        assert last2.replace(" ", "") == "—2—" and not last2.startswith(" " * 20)
        assert last3.replace(" ", "") == "—3—" and last3.startswith(" " * 20)
        # A full page of text holds 22 lines, each line 28 characters.
        body = [line.strip() for line in page2.splitlines() if line.strip()][:-1]
        assert len(body) == 22
        assert max(len(line.replace(" ", "")) for line in body) == 28


def test_report_pdf_has_the_chinese_text(app, report, tmp_path, pdf_tools):
    from fazhi_flow.services.compile import render_format

    pdf = render_format(assemble(report.cycle), "pdf")
    (tmp_path / "r.pdf").write_bytes(pdf)
    _require(shutil.which("pdftotext") is not None, "pdftotext is missing (poppler-utils)")
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], check=True, capture_output=True,
                          text=True).stdout.replace("\n", "")
    assert "（二）优化法治化营商环境。" in text
    assert "2025年1月6日" in text
    assert "尚未通过审核" not in text


def test_missing_weasyprint_gives_chinese_install_hint(app, report, monkeypatch):
    from fazhi_flow.services.compile import render_format, render_outputs

    monkeypatch.setitem(sys.modules, "weasyprint", None)   # import now fails as if not installed
    assert not pdf_available()
    with pytest.raises(PdfUnavailable) as caught:
        render_format(assemble(report.cycle), "pdf")
    assert caught.value.message == INSTALL_HINT
    assert "pip install weasyprint" in INSTALL_HINT and "libpango" in INSTALL_HINT
    outputs = render_outputs(assemble(report.cycle))
    assert outputs["pdf"] is None and outputs["docx"].startswith(b"PK")


def test_html_print_stylesheet_and_structure(app, report):
    stacks = font_stacks(app.config["DOCX_FONTS"], app.config["PDF_FONTS"])
    html = render_html(assemble(report.cycle), stacks)
    assert "@page {" in html and "size: A4;" in html
    assert "margin: 37mm 26mm 35mm 28mm;" in html
    assert '@page :right {\n  @bottom-right {\n    content: "— " counter(page) " —";' in html
    assert "@bottom-left" in html and "@media print" in html
    assert '"仿宋_GB2312", "Noto Serif CJK SC", serif' in html
    assert '<h1 class="gw-title">示例区2024年法治政府建设年度报告</h1>' in html
    assert '<h2 class="gw-h gw-l1">一、法治政府建设主要举措和成效</h2>' in html
    assert ('<p class="gw-runin gw-l2"><span class="gw-hd">（一）夯实制度根基，提升依法决策水平。</span>'
            "一是把牢决策法制审查关口。") in html
    assert '<p class="gw-opening">2024年，全区围绕' in html
    # The closing block's offsets: test_docx_layout.py.
    assert '<div class="gw-issuers">\n<p>中共示例区委员会</p>\n<p>示例区人民政府</p>' in html
    assert "http" not in html.replace('xmlns', '')   # self-contained: nothing fetched


def test_html_escapes_text():
    html = render_html(ReportDocument(title="<b>标题</b>", opening=["a < b & c"]), font_stacks({}))
    assert "<b>标题</b>" not in html and "&lt;b&gt;标题" in html and "a &lt; b &amp; c" in html
