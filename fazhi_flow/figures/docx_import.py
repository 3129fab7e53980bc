"""Read a .docx draft (saved by Word or WPS) into plain text: paragraphs in document order, each table
row as one line of cells joined by " | ".

The main part (word/document.xml) is read as a stream by expat's callbacks, without building an
element tree, so memory stays flat however large the document is. Reading stops as soon as
the extracted text passes a character budget (config DOCX_IMPORT_MAX_CHARS) or the XML read passes a
byte ceiling (DOCX_IMPORT_MAX_XML_BYTES): a small file that unpacks to a huge document (many empty runs)
costs a bounded amount of work instead of minutes and gigabytes.
"""
from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET
import zipfile
from xml.parsers import expat

from flask import current_app, has_app_context

from ..errors import DomainError
from ..whole_numbers import optional_int

MAX_BYTES = 10 * 1024 * 1024
# Refused at once from the sizes the archive declares (reading never yields more than declared).
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
# Defaults of DOCX_IMPORT_MAX_CHARS and DOCX_IMPORT_MAX_XML_BYTES: a long annual-report chapter
# has some tens of thousands of characters in a few MB of XML.
DEFAULT_MAX_CHARS = 200_000
DEFAULT_MAX_XML_BYTES = 16 * 1024 * 1024
# Default of DOCX_IMPORT_MAX_SECONDS: a wall-clock ceiling on top of the byte budgets, so a document that
# is slow in some way not foreseen here still cannot hold a web worker (gunicorn kills one at 30 s).
DEFAULT_MAX_SECONDS = 10
CHUNK = 64 * 1024
CELL_SEPARATOR = " | "
# Real documents nest some tens of levels (tables in tables, text boxes); a file nested deeper is
# refused at once, so a paragraph of millions of nested elements costs no more than a normal one.
MAX_DEPTH = 256

# Attribute names as expat reports them with namespace_separator="}".
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MAIN_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_RUN_TEXT = {"tab": "\t", "ptab": "\t", "cr": "\n", "noBreakHyphen": "-"}
# Paths from the root: body paragraphs, and paragraphs directly in the cells of body tables
# (as python-docx reads them: text boxes and nested tables are not imported).
_BODY_P = ("document", "body", "p")
_CELL_P = ("document", "body", "tbl", "tr", "tc", "p")
_ROW = _CELL_P[:4]
_CELL = _CELL_P[:5]

UNREADABLE = "无法读取该文档，文件可能已损坏或不是 Word/WPS 文档。请另存为 .docx 后再试。"
NOT_DOCX = "该文件不是有效的 .docx 文档。请在 Word 或 WPS 中“另存为” .docx 格式后再上传。"


class _TooLarge(Exception):
    """The budget is spent; the message says which one."""


def _setting(name: str, default: int) -> int:
    """A positive integer setting (also from a FAZHI_* environment variable, i.e. text)."""
    raw = current_app.config.get(name) if has_app_context() else None
    try:
        value = int(str(raw).strip()) if raw not in (None, "") else default
    except ValueError:
        return default  # a mistyped setting must not break every import
    return value if value > 0 else default


class _Extractor:
    """Collects the lines of the document from expat callbacks; no element tree is ever built."""

    def __init__(self, max_chars: int):
        self.max_chars, self.chars = max_chars, 0
        self.tags: list[str] = []
        self.lines: list[str] = []
        self.para: list[str] | None = None
        self.text: list[str] | None = None  # the characters of the w:t being read
        self.cell_paras: list[str] = []
        self.cell_props: dict = {}
        self.row: list[str] = []
        self.offset = 0
        self.column_text: dict[int, str] = {}  # root text of vertically merged cells by grid column

    def start(self, name: str, attrs: dict) -> None:
        tag = name.rpartition("}")[2]
        self.tags.append(tag)
        depth = len(self.tags)
        if depth > MAX_DEPTH:
            raise _TooLarge(f"该文档的结构嵌套过深（超过{MAX_DEPTH}层），无法导入。"
                            "请在 Word 或 WPS 中清除格式或另存为新文档后再试。")
        if depth in (3, 6) and tag == "p" and tuple(self.tags) in (_BODY_P, _CELL_P):
            self.para = []
        elif self.para is not None and self._in_run():
            self._run_content(tag, attrs)
        elif depth == 4 and tag == "tr" and tuple(self.tags) == _ROW:
            self.row, self.offset = [], 0
        elif depth == 5 and tag == "tc" and tuple(self.tags) == _CELL:
            self.cell_paras, self.cell_props = [], {}
        elif depth == 7 and tag in ("gridSpan", "vMerge") and tuple(self.tags[:6]) == _CELL + ("tcPr",):
            self.cell_props[tag] = attrs.get(_W + "val")
        elif depth == 6 and tag == "gridBefore" and tuple(self.tags[:5]) == _ROW + ("trPr",):
            self.offset = _int(attrs.get(_W + "val"), 0)

    def end(self, name: str) -> None:
        depth = len(self.tags)
        if self.text is not None and self.tags[-1] == "t":
            self._add_piece("".join(self.text))
            self.text = None
        elif depth in (3, 6) and self.tags[-1] == "p" and self.para is not None:
            path = tuple(self.tags)
            if path == _BODY_P:
                self._add_line(self._close_para().replace("\u3000", " ").strip())
            elif path == _CELL_P:
                self.cell_paras.append(self._close_para())
        elif depth == 5 and tuple(self.tags) == _CELL:
            self._close_cell()
        elif depth == 4 and tuple(self.tags) == _ROW and any(self.row):
            self._add_line(CELL_SEPARATOR.join(self.row))
        self.tags.pop()

    def chars_of(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def _in_run(self) -> bool:
        """Whether the element just started is a direct child of a run of the paragraph being read."""
        # Index look-ups only: copying the path on every tag would make deep nesting quadratic.
        tags = self.tags
        base = len(_BODY_P) if tags[2] == "p" else len(_CELL_P)
        inner = len(tags) - base
        return (inner == 2 and tags[base] == "r") or (inner == 3 and tags[base] == "hyperlink"
                                                     and tags[base + 1] == "r")

    def _run_content(self, tag: str, attrs: dict) -> None:
        if tag == "t":
            self.text = []
        elif tag == "br":
            self._add_piece("\n" if attrs.get(_W + "type", "textWrapping") == "textWrapping" else "")
        else:
            self._add_piece(_RUN_TEXT.get(tag, ""))

    def _add_piece(self, piece: str) -> None:
        if piece:
            self.chars += len(piece)
            if self.chars > self.max_chars:
                raise _TooLarge(f"该文档的文字超过{self.max_chars}字，无法导入。请拆分文档，或只复制需要的部分后再导入。")
            self.para.append(piece)

    def _close_para(self) -> str:
        text, self.para = "".join(self.para or []), None
        return text

    def _close_cell(self) -> None:
        span = max(_int(self.cell_props.get("gridSpan"), 1), 1)
        if "vMerge" in self.cell_props and self.cell_props["vMerge"] in (None, "continue"):
            # python-docx reads a continued vertical merge as the cell that starts it.
            text = self.column_text.get(self.offset, "")
        else:
            text = " ".join(p.strip() for p in self.cell_paras if p.strip())
            self.column_text[self.offset] = text
        self.row.append(text)
        self.offset += span

    def _add_line(self, text: str) -> None:
        if text:
            self.lines.append(text)


def _int(raw, default: int) -> int:
    """A small count from an XML attribute (a tab offset, a cell span); the default when odd."""
    number = optional_int(raw, high=99_999)
    return default if number is None else number


def _main_part(archive: zipfile.ZipFile) -> str:
    """The name of the main document part, from the package relationships."""
    try:
        with archive.open("_rels/.rels") as stream:
            rels = stream.read(256 * 1024)
        for rel in ET.fromstring(rels):
            if rel.get("Type") == _MAIN_REL and rel.get("Target"):
                return rel.get("Target").lstrip("/")
    except (KeyError, ET.ParseError):
        pass
    return "word/document.xml"


_clock = time.monotonic


def _stream_lines(archive: zipfile.ZipFile, max_chars: int, max_xml: int, max_seconds: int) -> list[str]:
    """Parse the main part chunk by chunk; stop at the character budget, the byte or the time ceiling."""
    extractor = _Extractor(max_chars)
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.StartElementHandler = extractor.start
    parser.EndElementHandler = extractor.end
    parser.CharacterDataHandler = extractor.chars_of
    read, deadline = 0, _clock() + max_seconds
    with archive.open(_main_part(archive)) as stream:
        while chunk := stream.read(CHUNK):
            if _clock() > deadline:
                raise _TooLarge(f"该文档读取超过{max_seconds}秒仍未完成，无法导入。"
                                "请在 Word 或 WPS 中清除格式或拆分文档后再试。")
            read += len(chunk)
            if read > max_xml:
                raise _TooLarge(f"该文档的内容结构过于庞大（正文部分超过{max_xml // 1024 // 1024}MB），无法导入。"
                                "请在 Word 或 WPS 中清除格式或拆分文档后再试。")
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    return extractor.lines


def _check_package(data: bytes, filename: str) -> None:
    name = (filename or "").lower()
    if name.endswith((".doc", ".wps")):
        raise DomainError("暂不支持旧版 .doc/.wps 格式。请在 Word 或 WPS 中“另存为” .docx 格式后再上传。")
    if not data:
        raise DomainError("上传的文件是空的，请重新选择文件。")
    if len(data) > MAX_BYTES:
        raise DomainError(f"文件过大（{len(data) // 1024 // 1024}MB），请上传不超过{MAX_BYTES // 1024 // 1024}MB的 .docx 文件。")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DomainError(NOT_DOCX)


def docx_to_text(data: bytes, filename: str = "") -> str:
    """Return the text of a .docx file.

    :raise DomainError: not a .docx, unreadable, too large, over the text budget, or without any text.
    """
    _check_package(data, filename)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(item.file_size for item in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise DomainError(f"该文档解压后超过{MAX_UNPACKED_BYTES // 1024 // 1024}MB，无法导入。"
                                  "请删除其中的大图片或拆分文档后再试。")
            lines = _stream_lines(archive, _setting("DOCX_IMPORT_MAX_CHARS", DEFAULT_MAX_CHARS),
                                  _setting("DOCX_IMPORT_MAX_XML_BYTES", DEFAULT_MAX_XML_BYTES),
                                  _setting("DOCX_IMPORT_MAX_SECONDS", DEFAULT_MAX_SECONDS))
    except _TooLarge as exc:
        raise DomainError(str(exc)) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DomainError(NOT_DOCX) from None
    except (KeyError, ET.ParseError, expat.ExpatError, RuntimeError, zipfile.LargeZipFile, NotImplementedError):
        raise DomainError(UNREADABLE) from None
    text = "\n".join(lines)
    if not text.strip():
        raise DomainError("文档中没有可导入的文字（图片和文本框中的文字无法导入）。")
    return text


def merge_text(current: str, imported: str, mode: str) -> str:
    """``replace`` the draft by the imported text, or ``append`` it after the current text."""
    if mode == "append" and (current or "").strip():
        return current.rstrip() + "\n" + imported
    return imported
