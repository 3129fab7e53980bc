"""Read a .docx draft (saved by Word or WPS) into plain text: paragraphs in document order, each table
row as one line of cells joined by " | "."""
from __future__ import annotations

import io
import zipfile

from ..errors import DomainError

MAX_BYTES = 10 * 1024 * 1024
# python-docx unpacks every part into memory: a small file that unpacks to gigabytes (a zip bomb)
# is refused from the sizes the archive declares (reading never yields more than declared).
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
CELL_SEPARATOR = " | "


def _iter_blocks(document):
    """Paragraphs and tables of the body in document order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(child, document)
        elif tag == "tbl":
            yield Table(child, document)


def _table_lines(table) -> list[str]:
    lines = []
    for row in table.rows:
        cells, last = [], None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if last is not None and cell._tc is last:
                continue
            last = cell._tc
            text = " ".join(p.text.strip() for p in cell.paragraphs if p.text.strip())
            cells.append(text)
        if any(cells):
            lines.append(CELL_SEPARATOR.join(cells))
    return lines


def docx_to_text(data: bytes, filename: str = "") -> str:
    """Return the text of a .docx file.

    :raise DomainError: not a .docx, unreadable, too large, or without any text.
    """
    name = (filename or "").lower()
    if name.endswith((".doc", ".wps")):
        raise DomainError("暂不支持旧版 .doc/.wps 格式。请在 Word 或 WPS 中“另存为” .docx 格式后再上传。")
    if not data:
        raise DomainError("上传的文件是空的，请重新选择文件。")
    if len(data) > MAX_BYTES:
        raise DomainError(f"文件过大（{len(data) // 1024 // 1024}MB），请上传不超过{MAX_BYTES // 1024 // 1024}MB的 .docx 文件。")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DomainError("该文件不是有效的 .docx 文档。请在 Word 或 WPS 中“另存为” .docx 格式后再上传。")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DomainError("该文件不是有效的 .docx 文档。请在 Word 或 WPS 中“另存为” .docx 格式后再上传。") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise DomainError(f"该文档解压后超过{MAX_UNPACKED_BYTES // 1024 // 1024}MB，无法导入。"
                          "请删除其中的大图片或拆分文档后再试。")
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise DomainError("无法读取该文档，文件可能已损坏或不是 Word/WPS 文档。请另存为 .docx 后再试。") from None
    lines = []
    for block in _iter_blocks(document):
        if hasattr(block, "rows"):
            lines.extend(_table_lines(block))
        else:
            text = block.text.replace("\u3000", " ").strip()
            if text:
                lines.append(text)
    text = "\n".join(lines)
    if not text.strip():
        raise DomainError("文档中没有可导入的文字（图片和文本框中的文字无法导入）。")
    return text


def merge_text(current: str, imported: str, mode: str) -> str:
    """``replace`` the draft by the imported text, or ``append`` it after the current text."""
    if mode == "append" and (current or "").strip():
        return current.rstrip() + "\n" + imported
    return imported
