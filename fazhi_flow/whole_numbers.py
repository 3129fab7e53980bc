"""The one way to read whole numbers that come from users: URLs, query strings, forms, files, commands.

ASCII digits only and within the range of the column the number is compared with. ``str.isdigit`` and
``int`` accept "²", "①", full-width digits, signs, blanks and thousands of digits; the first two then
fail inside ``int`` (a 500) and a number beyond the column's range fails in the database driver.
"""
from __future__ import annotations

import re

# Keys, versions and counters are 32-bit INTEGER columns; a few totals are BIGINT.
DB_INT_MAX = 2**31 - 1
DB_BIGINT_MAX = 2**63 - 1

# At most 19 digits: enough for any BIGINT, and int() never sees a long string.
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_int(raw, low: int = 0, high: int = DB_INT_MAX) -> int:
    """``raw`` as an int in ``low..high``; ValueError for anything but plain ASCII digits in range."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError("not a whole number")
    text = str(raw)
    if not _ASCII_DIGITS.fullmatch(text):
        raise ValueError("not a whole number")
    number = int(text)
    if not low <= number <= high:
        raise ValueError("out of range")
    return number


def optional_int(raw, low: int = 0, high: int = DB_INT_MAX) -> int | None:
    """``parse_int``, or None when ``raw`` is missing or malformed."""
    try:
        return parse_int(raw, low, high)
    except ValueError:
        return None


def looks_like_digits(raw: str) -> bool:
    """Plain ASCII digits of any length (a number that is merely too large, not malformed)."""
    return raw.isascii() and raw.isdigit()
