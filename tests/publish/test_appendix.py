"""The optional indicator appendix (附件：统计指标汇总表) after the closing block, in every format."""
import io
import shutil
import subprocess

import pytest
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt

from fazhi_flow.errors import DomainError, PermissionDenied
from fazhi_flow.models import ReportDraftVersion
from fazhi_flow.publish.document import ReportDocument
from fazhi_flow.publish.pdf import pdf_available
from fazhi_flow.services import compile as svc
from fazhi_flow.services import cycles as cycle_ops

from .test_bound_numbers import cite
from .test_docx import FONTS, east_asia
from .test_pdf_html import _require
from .test_web import login

HEAD = ["序号", "所属部分", "指标名称", "计量单位", "数值"]
ROWS = [
    ["1", "一、（三）规范公正文明执法", "涉企柔性执法", "次", "175"],
    ["2", "一、（三）规范公正文明执法", "不予处罚", "次", "52"],
    ["3", "一、（三）规范公正文明执法", "减免罚款", "万元", "—"],
]


@pytest.fixture()
def compiled(report, db, factory):
    cite(report, db, factory)
    cycle_ops.compile_cycle(report.cycle, report.admin, force_reason="发改局材料仍在审核，先行汇总")
    db.session.flush()
    return report


def docx_of(cycle):
    return Document(io.BytesIO(svc.render_format(svc.current_document(cycle), "docx")))


def test_enabled_appendix_is_a_table_after_the_closing_block(compiled, db):
    cycle = compiled.cycle
    assert not svc.appendix_enabled(cycle)
    version = svc.set_appendix(cycle, compiled.admin, True)
    assert version.reason == "附统计指标汇总表" and svc.appendix_enabled(cycle)
    assert svc.set_appendix(cycle, compiled.admin, True) is None   # already on: no new version

    doc = docx_of(cycle)
    assert len(doc.tables) == 1
    table = doc.tables[0]
    assert [[c.text for c in row.cells] for row in table.rows] == [HEAD, *ROWS]
    texts = [p.text for p in doc.paragraphs]
    # Attachment note below the body, then the closing block, then the attachment page.
    note, closing, label = texts.index("附件：统计指标汇总表"), texts.index("2025年1月6日"), texts.index("附件")
    assert note < closing < label and texts[label + 2] == "统计指标汇总表"
    assert doc.paragraphs[label].paragraph_format.page_break_before
    assert east_asia(doc.paragraphs[label].runs[0]) == FONTS["heading1"]
    title = doc.paragraphs[label + 2]
    assert title.alignment == WD_ALIGN_PARAGRAPH.CENTER and title.runs[0].font.size == Pt(22)
    # 仿宋 body cells, 黑体 heading row repeated on every page, the table as wide as the text block.
    cell = table.rows[1].cells[2].paragraphs[0]
    assert east_asia(cell.runs[0]) == FONTS["body"] and cell.runs[0].font.size == Pt(14)
    assert east_asia(table.rows[0].cells[0].paragraphs[0].runs[0]) == FONTS["heading1"]
    assert table.rows[0]._tr.trPr.find(qn("w:tblHeader")) is not None
    assert table.rows[1].cells[4].paragraphs[0].alignment == WD_ALIGN_PARAGRAPH.RIGHT
    assert round(sum(c.width for c in table.columns) / 36000) == 156

    text = svc.render_format(svc.current_document(cycle), "txt").decode("utf-8")
    assert text.index("附件：统计指标汇总表") < text.index("2025年1月6日") < text.index("\n附件\n")
    assert "\t".join(HEAD) in text and "\t".join(ROWS[0]) in text
    html = svc.render_format(svc.current_document(cycle), "html").decode("utf-8")
    assert '<section class="gw-appendix">' in html and "<td>涉企柔性执法</td>" in html
    assert '<td class="n">175</td>' in html and html.index("gw-closing") < html.index("gw-appendix\"")


def test_the_appendix_is_signed_and_published_with_the_report(compiled, db):
    cycle = compiled.cycle
    svc.set_appendix(cycle, compiled.admin, True)
    svc.request_signoff(cycle, compiled.admin)
    signed = svc.latest_version(cycle)
    assert ReportDocument.from_dict(signed.document).appendix[0]["value"] == "175"
    svc.sign_report(cycle, compiled.leader, signed.number)
    publication = svc.publish_report(cycle, compiled.admin)
    table = Document(io.BytesIO(publication.docx)).tables[0]
    assert [c.text for c in table.rows[1].cells] == ROWS[0]
    assert "附件：统计指标汇总表" in publication.text and "gw-appendix" in publication.html

    # Dropping it afterwards is a correction, published as a new version; the first one keeps it.
    svc.set_appendix(cycle, compiled.admin, False)
    svc.request_correction(cycle, compiled.admin, "不再附统计指标汇总表。")
    svc.sign_report(cycle, compiled.leader, svc.latest_version(cycle).number)
    correction = svc.latest_publication(cycle)
    assert not Document(io.BytesIO(correction.docx)).tables
    assert "附件" not in correction.text and Document(io.BytesIO(publication.docx)).tables


def test_disabled_appendix_leaves_no_trace(compiled, db):
    cycle = compiled.cycle
    doc = docx_of(cycle)
    assert not doc.tables and not any(p.text.startswith("附件") for p in doc.paragraphs)
    svc.set_appendix(cycle, compiled.admin, True)
    svc.set_appendix(cycle, compiled.admin, False)
    assert not svc.appendix_enabled(cycle)
    assert [v.reason for v in svc.versions(cycle)][-2:] == ["附统计指标汇总表", "取消附统计指标汇总表"]
    assert not docx_of(cycle).tables
    for fmt in ("txt", "html"):
        content = svc.render_format(svc.current_document(cycle), fmt).decode("utf-8")
        assert "统计指标汇总表" not in content and "gw-appendix\"" not in content


def test_appendix_refused_without_indicators_or_for_others(report, db):
    cycle_ops.compile_cycle(report.cycle, report.admin, force_reason="先行汇总")
    count = db.session.query(ReportDraftVersion).count()
    with pytest.raises(DomainError, match="没有定义统计指标"):
        svc.set_appendix(report.cycle, report.admin, True)
    with pytest.raises(PermissionDenied):
        svc.set_appendix(report.cycle, report.leader, True)
    assert db.session.query(ReportDraftVersion).count() == count


def test_appendix_checkbox_on_the_compile_page(compiled, db, client):
    db.session.commit()
    admin = login(client, compiled.admin)
    page = admin.get(f"/compile/{compiled.cycle.id}").get_data(as_text=True)
    assert "发布时附统计指标汇总表" in page and 'name="appendix"' in page
    response = admin.post(f"/compile/{compiled.cycle.id}/appendix", data={"appendix": "y"})
    assert response.status_code == 303
    db.session.expire_all()
    assert svc.appendix_enabled(compiled.cycle)
    preview = admin.get(f"/compile/{compiled.cycle.id}/preview").get_data(as_text=True)
    assert '<h2 class="gw-attach-title">统计指标汇总表</h2>' in preview and "<td>涉企柔性执法</td>" in preview
    docx = admin.get(f"/compile/{compiled.cycle.id}/draft.docx")
    assert Document(io.BytesIO(docx.data)).tables
    admin.post(f"/compile/{compiled.cycle.id}/appendix", data={})
    db.session.expire_all()
    assert not svc.appendix_enabled(compiled.cycle)


def test_pdf_puts_the_appendix_on_its_own_last_page(compiled, db):
    _require(pdf_available(), "WeasyPrint or pango is not installed (pip install weasyprint)")
    _require(shutil.which("pdftotext") is not None, "pdftotext is missing (apt-get install poppler-utils)")
    cycle = compiled.cycle

    def pages(pdf: bytes) -> list[str]:
        out = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
        return ["".join(page.split()) for page in out.stdout.decode("utf-8").split("\f") if page.strip()]

    without = pages(svc.render_format(svc.current_document(cycle), "pdf"))
    svc.set_appendix(cycle, compiled.admin, True)
    with_appendix = pages(svc.render_format(svc.current_document(cycle), "pdf"))
    assert len(with_appendix) == len(without) + 1
    last = with_appendix[-1]
    assert last.startswith("附件") and "统计指标汇总表" in last and "涉企柔性执法次175" in last
    assert "2025年1月6日" in with_appendix[-2] and "附件：统计指标汇总表" in with_appendix[-2]
