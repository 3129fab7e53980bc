"""Word import is bounded: the document is read as a stream and reading stops at a character budget
or a byte ceiling, so a small .docx that unpacks to ~94 MB of XML (the reported 83 s / 1.1 GB import)
is refused after a bounded amount of work, and the draft stays as it was."""
import io
import zipfile

import docx
import pytest

from fazhi_flow.errors import DomainError
from fazhi_flow.figures import docx_import
from fazhi_flow.figures.docx_import import docx_to_text
from fazhi_flow.testing import login

EMPTY_RUN = b"<w:r><w:t></w:t></w:r>"


def _with_body(inner: bytes, tail: bytes = b"") -> bytes:
    """A real .docx whose body is ``inner`` (XML); ``tail`` is appended after the root (garbage)."""
    source = io.BytesIO()
    docx.Document().save(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as packed:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + inner, 1) + tail
            packed.writestr(item.filename, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def empty_run_bomb(size: int = 94 * 1024 * 1024, tail: bytes = b"") -> bytes:
    """One paragraph of millions of empty runs: no text at all, ~``size`` bytes of XML."""
    return _with_body(b"<w:p>" + EMPTY_RUN * (size // len(EMPTY_RUN)) + b"</w:p>", tail)


def nesting_bomb(levels: int, tail: bytes = b"") -> bytes:
    """One paragraph holding ``levels`` elements nested in one another (no text)."""
    return _with_body(b"<w:p>" + b"<a>" * levels + b"</a>" * levels + b"</w:p>", tail)


def _paragraphs(texts) -> bytes:
    return b"".join(f"<w:p><w:r><w:t>{t}</w:t></w:r></w:p>".encode() for t in texts)


def test_empty_run_bomb_is_refused_at_the_byte_ceiling(app):
    # Broken XML after the 94 MB: the import can only end with the ceiling's message if it stopped
    # reading long before the end (a full parse would report the broken document instead).
    data = empty_run_bomb(tail=b"<w:broken")
    assert len(data) < 1024 * 1024  # passes the upload limit and the 100 MB unpacked guard
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert 90 * 1024 * 1024 < archive.getinfo("word/document.xml").file_size < docx_import.MAX_UNPACKED_BYTES
    with pytest.raises(DomainError) as caught:
        docx_to_text(data, "草稿.docx")
    assert "内容结构过于庞大" in caught.value.message and "16MB" in caught.value.message


def test_nesting_bomb_is_refused_after_bounded_work(app):
    # 200,000 levels (1.4 MB of XML, far under the byte ceiling) took over a minute when every tag
    # copied its path; the broken tail proves reading stopped at the depth limit, long before the end.
    with pytest.raises(DomainError) as caught:
        docx_to_text(nesting_bomb(200_000, tail=b"<w:broken"), "草稿.docx")
    assert caught.value.message.startswith(f"该文档的结构嵌套过深（超过{docx_import.MAX_DEPTH}层）")
    # Nesting just under the limit next to a normal run still imports.
    inner = docx_import.MAX_DEPTH - len(docx_import._BODY_P) - 1
    deep = "<w:p><w:r><w:t>正文</w:t></w:r>".encode() + b"<a>" * inner + b"</a>" * inner + b"</w:p>"
    assert docx_to_text(_with_body(deep), "草稿.docx") == "正文"


def test_text_budget_stops_reading_while_streaming(app, db):
    app.config["DOCX_IMPORT_MAX_CHARS"] = 1000
    try:
        data = _with_body(_paragraphs(["依法行政" * 100] * 5), tail=b"<w:broken")
        with pytest.raises(DomainError) as caught:
            docx_to_text(data, "草稿.docx")
        assert "文字超过1000字" in caught.value.message
        # Just under the budget the same text imports.
        assert docx_to_text(_with_body(_paragraphs(["依法行政" * 62])), "草稿.docx") == "依法行政" * 62
    finally:
        app.config.pop("DOCX_IMPORT_MAX_CHARS")


def test_byte_ceiling_is_configurable(app, db):
    app.config["DOCX_IMPORT_MAX_XML_BYTES"] = 1024 * 1024
    try:
        with pytest.raises(DomainError, match="超过1MB"):
            docx_to_text(empty_run_bomb(2 * 1024 * 1024), "草稿.docx")
        assert docx_to_text(_with_body(_paragraphs(["全区共办理行政复议案件12件。"])), "a.docx") \
            == "全区共办理行政复议案件12件。"
    finally:
        app.config.pop("DOCX_IMPORT_MAX_XML_BYTES")


def _rich_document() -> bytes:
    """Tabs, breaks, a hyperlink, merged cells (both ways), a nested table and full-width spaces."""
    from docx.enum.text import WD_BREAK
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("第一段\u3000全角空格  ")
    paragraph = document.add_paragraph("有")
    run = paragraph.add_run("制表")
    run.add_tab()
    run.add_text("符")
    run.add_break()
    run.add_text("换行后")
    run.add_break(WD_BREAK.PAGE)
    run.add_text("分页")
    paragraph._p.append(parse_xml(
        '<w:hyperlink xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        '<w:r><w:t>链接文字</w:t></w:r></w:hyperlink>'))
    table = document.add_table(rows=4, cols=4)
    for i in range(4):
        for j in range(4):
            table.cell(i, j).text = f"格{i}{j}"
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(1, 0).merge(table.cell(3, 0))
    table.cell(1, 2).merge(table.cell(2, 3))
    table.cell(3, 3).add_paragraph("第二段落")
    table.cell(3, 2).add_table(rows=1, cols=1).cell(0, 0).text = "嵌套"
    document.add_paragraph("")
    document.add_paragraph("末段")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_streaming_reader_reads_what_python_docx_reads(app):
    data = _rich_document()
    document = docx.Document(io.BytesIO(data))
    body = [p.text.replace("\u3000", " ").strip() for p in document.paragraphs]
    assert docx_to_text(data, "a.docx") == "\n".join([
        body[0], "有制表\t符\n换行后分页链接文字",
        "格00 格01 | 格02 | 格03",
        "格10 格20 格30 | 格11 | 格12 格13 格22 格23",
        "格10 格20 格30 | 格21 | 格12 格13 格22 格23",
        "格10 格20 格30 | 格31 | 格32 | 格33 第二段落",
        "末段"])


def test_bomb_through_the_page_keeps_the_draft(app, db, client, factory):
    cycle = factory.cycle(state="collecting")
    unit = factory.unit()
    liaison = factory.user("liaison", unit=unit)
    contribution = factory.contribution(factory.assignment(factory.section(cycle), unit),
                                        body="用户已经写好的草稿。")
    db.session.commit()
    login(client, liaison)
    response = client.post(f"/figures/contribution/{contribution.id}/import",
                           data={"mode": "replace", "file": (io.BytesIO(empty_run_bomb()), "草稿.docx")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert "内容结构过于庞大" in response.get_data(as_text=True)
    db.session.expire_all()
    assert contribution.body == "用户已经写好的草稿。"


def test_a_document_still_reading_after_the_time_ceiling_is_refused(monkeypatch):
    """Whatever makes a document slow, reading stops once DOCX_IMPORT_MAX_SECONDS have passed: the
    clock here jumps a minute per chunk, so the ceiling (10 s by default) is passed at the second one."""
    ticks = iter(range(0, 10**6, 60))
    monkeypatch.setattr(docx_import, "_clock", lambda: next(ticks))
    data = empty_run_bomb(size=2 * docx_import.CHUNK * 4)  # several chunks of XML
    with pytest.raises(DomainError) as info:
        docx_to_text(data, "慢.docx")
    assert "读取超过10秒仍未完成" in info.value.message


def test_a_normal_document_is_within_the_time_ceiling():
    document = docx.Document()
    for i in range(60):
        document.add_paragraph(f"第{i}段：依法行政工作取得新进展。")
    out = io.BytesIO()
    document.save(out)
    assert docx_to_text(out.getvalue(), "正常.docx").startswith("第0段")
