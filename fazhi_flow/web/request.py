"""The request class: submitted text never carries NUL or other control characters; the editor's larger limits.

A browser can send a NUL (pasted from a binary file, or typed into a URL); PostgreSQL refuses NUL in
text, so it would fail the save, the search or the filter with a 500 instead of being ignored. The other
C0 controls (a BEL pasted from a terminal, say) are not allowed in XML: a title carrying one would make
every DOCX and XLSX export of the report fail. Tab, line feed and carriage return are kept.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict


# Characters XML 1.0 does not allow (python-docx and openpyxl refuse them), i.e. C0 controls but tab,
# LF and CR, lone surrogates and the two non-characters U+FFFE/U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(value):
    return _NOT_XML.sub("", value) if isinstance(value, str) else value


class NulFreeMultiDict(ImmutableMultiDict):
    """Query and form parameters without control characters in names and text values (files untouched)."""

    def __init__(self, mapping=None):
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = [(_clean(key), _clean(value)) for key, value in mapping]
        super().__init__(mapping)


# 保存草稿 sends the typed text together with the chosen file. Over the request limits werkzeug refuses
# the whole request with a 413, and the text with it; the editor's own checks (attachment size, text
# length) instead answer above the kept text. Files are spooled to disk while parsed, not held in memory.
EDITOR_ENDPOINTS = frozenset({"tasks.edit"})
EDITOR_MAX_CONTENT_LENGTH = 100 * 1024 * 1024
EDITOR_MAX_FORM_MEMORY_SIZE = 4 * 1024 * 1024


class FazhiRequest(Request):
    parameter_storage_class = NulFreeMultiDict

    @property
    def max_content_length(self) -> int | None:
        limit = Request.max_content_length.fget(self)
        if self._max_content_length is None and limit is not None and self.endpoint in EDITOR_ENDPOINTS:
            return max(limit, EDITOR_MAX_CONTENT_LENGTH)
        return limit

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value

    @property
    def max_form_memory_size(self) -> int | None:
        limit = Request.max_form_memory_size.fget(self)
        if self._max_form_memory_size is None and limit is not None and self.endpoint in EDITOR_ENDPOINTS:
            return max(limit, EDITOR_MAX_FORM_MEMORY_SIZE)
        return limit

    @max_form_memory_size.setter
    def max_form_memory_size(self, value: int | None) -> None:
        self._max_form_memory_size = value
