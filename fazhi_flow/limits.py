"""Text limits from one source: the column definitions.

``column_length(Model.attr)`` is what forms (Length validators) and importers accept for a column, so
nothing can be typed or imported that the database would refuse. String columns carry their length;
Text columns have none in the schema and take theirs from ``TEXT_LIMITS`` below.

Values the system composes itself (message subjects, notification titles, audit targets) are fitted
to their columns instead: ``fitted(...)`` in a model shortens them with "…" when they are set.
"""
from __future__ import annotations

from sqlalchemy.orm import validates

ELLIPSIS = "…"
# Where a shortened text may end: after a sentence or clause mark, a closing bracket or a space.
BREAKS = "。；，、：！？）》」』”’)]!?;,: \n"
# The break is taken only from the last part of the room, so little text is lost for it.
BREAK_WINDOW = 0.2

# Limits of free-text (Text) columns, by "table.column". The database does not enforce them.
TEXT_LIMITS: dict[str, int] = {
    "section.guidance": 5000,
    "indicator.guidance": 2000,
    "report_cycle.issuers": 1000,
}


def _column(attr):
    """The Column behind ``Model.attr`` (or a Column itself)."""
    prop = getattr(attr, "property", None)
    return prop.columns[0] if prop is not None else attr


def column_length(attr) -> int | None:
    """The most characters ``Model.attr`` holds: its String length, else its entry in TEXT_LIMITS."""
    column = _column(attr)
    length = getattr(column.type, "length", None)
    return length or TEXT_LIMITS.get(f"{column.table.name}.{column.name}")


def shorten(text: str | None, limit: int | None) -> str | None:
    """``text`` cut to at most ``limit`` characters, ending with "…" (at a clause break when near)."""
    if text is None or limit is None or len(text) <= limit:
        return text
    room = text[:limit - 1]
    floor = int(len(room) * (1 - BREAK_WINDOW))
    cut = max(room.rfind(mark, floor) for mark in BREAKS)
    if cut >= floor:
        room = room[:cut + 1]
    return room.rstrip() + ELLIPSIS


def fit(attr, text: str | None) -> str | None:
    """``text`` shortened to fit the column ``Model.attr``."""
    return shorten(text, column_length(attr))


def fitted(*names: str):
    """A model validator fitting the named String columns to their lengths whenever they are set.

    In a model's class body: ``_fit = fitted("title", "link")``.
    """

    @validates(*names)
    def _fit(self, key, value):
        return shorten(value, self.__table__.c[key].type.length)

    return _fit


def too_long(label: str, attr, unit: str = "字") -> str:
    """The Chinese message for a value too long for ``Model.attr``, e.g. "标题最多300字。"."""
    return f"{label}最多{column_length(attr)}{unit}。"


def max_length(attr, label: str, unit: str = "字"):
    """A WTForms Length validator with the column's limit and a Chinese message."""
    from wtforms.validators import Length

    return Length(max=column_length(attr), message=too_long(label, attr, unit))
