"""Reading numbers in requests (see ``whole_numbers``); form fields with Chinese messages for bad input."""
from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter, ValidationError
from wtforms import IntegerField

from ..whole_numbers import DB_INT_MAX, looks_like_digits, optional_int, parse_int

__all__ = ["DB_INT_MAX", "parse_int", "optional_int", "db_int", "arg_int", "int_list"]


def db_int(value) -> int:
    """``parse_int`` for ``request.args.get(..., type=db_int)``: malformed or out of range gives the default."""
    return parse_int(value)


def arg_int(name: str, default: int | None = None, source=None) -> int | None:
    """A number from the query string (or ``source``); ``default`` when missing or malformed."""
    values = request.args if source is None else source
    number = optional_int(values.get(name))
    return default if number is None else number


def int_list(values, limit: int | None = None) -> list[int]:
    """The well-formed numbers among ``values`` (e.g. ``getlist("ids")``), sorted, without repeats."""
    picked = (optional_int(v) for v in list(values)[:limit])
    return sorted({n for n in picked if n is not None})


class DbIntConverter(IntegerConverter):
    """The ``<int:...>`` URL converter: ASCII digits (werkzeug's ``\\d`` also matches "１２" and "²")
    within what the database can hold; anything else is 404."""

    regex = r"[0-9]+"

    def __init__(self, map, fixed_digits=0, min=None, max=DB_INT_MAX, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        number = optional_int(value, 0, self.max)
        if number is None:
            raise ValidationError()
        return number


class IntField(IntegerField):
    """An IntegerField read by ``parse_int`` (surrounding blanks forgiven), with Chinese messages."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        raw = (valuelist[0] or "").strip(" \t\r\n")
        if raw == "":
            self.data = None
            return
        try:
            self.data = parse_int(raw)
        except ValueError:
            self.data = None
            message = "数字超出范围。" if looks_like_digits(raw) else "请输入整数（只写阿拉伯数字）。"
            raise ValueError(message) from None
