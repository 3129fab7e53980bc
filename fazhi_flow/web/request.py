"""The request class: submitted text never carries a NUL character.

A browser can send one (pasted from a binary file, or typed into a URL); PostgreSQL refuses NUL in
text, so it would fail the save, the search or the filter with a 500 instead of being ignored.
"""
from __future__ import annotations

from collections.abc import Mapping

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict


def _clean(value):
    return value.replace("\x00", "") if isinstance(value, str) else value


class NulFreeMultiDict(ImmutableMultiDict):
    """Query and form parameters with NUL removed from names and text values (files are untouched)."""

    def __init__(self, mapping=None):
        if mapping is not None and not isinstance(mapping, Mapping):
            mapping = [(_clean(key), _clean(value)) for key, value in mapping]
        super().__init__(mapping)


class FazhiRequest(Request):
    parameter_storage_class = NulFreeMultiDict
