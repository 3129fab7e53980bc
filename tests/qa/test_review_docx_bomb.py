"""Word import: a small .docx that unpacks to a huge document (a zip bomb) is refused before it is
read, with a message, instead of filling the server's memory."""
import io
import zipfile

import pytest
from docx import Document

from fazhi_flow.errors import DomainError
from fazhi_flow.figures.docx_import import docx_to_text

HUGE = 120 * 1024 * 1024


def _bomb() -> bytes:
    source = io.BytesIO()
    Document().save(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "word/document.xml":
                # The body padded with whitespace: valid XML, tiny when compressed.
                data = data.replace(b"<w:body>", b"<w:body>" + b" " * HUGE, 1)
            bomb.writestr(item.filename, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def test_zip_bomb_is_refused_before_parsing(app):
    data = _bomb()
    assert len(data) < 1024 * 1024  # it passes the upload size limit
    with pytest.raises(DomainError) as caught:
        docx_to_text(data, "草稿.docx")
    assert "解压" in caught.value.message


def test_ordinary_document_still_imports(app):
    document = Document()
    document.add_paragraph("今年共开展法治宣传活动12场。")
    buffer = io.BytesIO()
    document.save(buffer)
    assert docx_to_text(buffer.getvalue(), "草稿.docx") == "今年共开展法治宣传活动12场。"
