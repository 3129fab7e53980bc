"""Bound numbers: the text cites an indicator as ``{{code}}`` (or ``{{sum(code)}}`` for the total of
every unit) and the number is printed from the value wherever the text is shown, so the text and the
table can never disagree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from .numbers import format_number

# {{ code }} or {{ sum(code) }}; full-width braces typed with a Chinese input method also count.
CITATION = re.compile(r"[{｛]\s*[{｛]\s*(?:(sum)\s*[(（]\s*([^\s{}()（）｛｝]+?)\s*[)）]|([^\s{}()（）｛｝]+?))\s*[}｝]\s*[}｝]")
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n")


@dataclass(frozen=True)
class Citation:
    key: str  # "code" or "sum(code)"
    code: str
    is_sum: bool
    start: int
    end: int


def citations(text: str) -> list[Citation]:
    """Every ``{{code}}`` / ``{{sum(code)}}`` in ``text``, in order."""
    found = []
    for m in CITATION.finditer(text or ""):
        if m.group(1):
            found.append(Citation(f"sum({m.group(2)})", m.group(2), True, m.start(), m.end()))
        else:
            found.append(Citation(m.group(3), m.group(3), False, m.start(), m.end()))
    return found


def _missing_marker(citation: Citation, names: dict | None) -> str:
    name = (names or {}).get(citation.code)
    if name is None:
        return f"【未知指标：{citation.code}】"
    return f"【{'各单位' + name + '合计' if citation.is_sum else name}：未填报】"


def _printed(value) -> str:
    # A string is a placeholder for a value the reader may not see (figures.visibility), printed as is.
    return value if isinstance(value, str) else format_number(value)


def render_bound(text: str, values: dict, names: dict | None = None) -> str:
    """Replace each citation in ``text`` by its number.

    ``values`` maps ``code`` and ``sum(code)`` to a number (Decimal/int/str) or None, as returned by
    ``fazhi_flow.services.figures.bound_values(contribution)``. A citation without a value becomes a
    visible 【…未填报】 marker (never a silent blank); ``names`` (code → indicator name) makes it readable.
    """
    def replace(m: re.Match) -> str:
        citation = citations(m.group(0))[0]
        value = values.get(citation.key)
        if value is None:
            return _missing_marker(citation, names)
        return _printed(value)

    return CITATION.sub(replace, text or "")


def render_bound_html(text: str, values: dict, names: dict | None = None) -> Markup:
    """Like ``render_bound`` but HTML-escaped, each bound number in a ``<span class="bound-number">``."""
    out, last = [], 0
    text = text or ""
    for citation in citations(text):
        out.append(escape(text[last:citation.start]))
        value = values.get(citation.key)
        if value is None:
            out.append(Markup('<span class="bound-number missing">{}</span>').format(
                _missing_marker(citation, names)))
        else:
            out.append(Markup('<span class="bound-number" title="{}">{}</span>').format(
                citation.key, _printed(value)))
        last = citation.end
    out.append(escape(text[last:]))
    return Markup("").join(out)


def sentences(text: str) -> list[str]:
    """Split text into sentences at 。！？； and line ends, keeping the end mark."""
    return [s.strip() for s in SENTENCE_END.split(text or "") if s and s.strip()]


def sentences_citing(text: str, code: str) -> list[str]:
    """The sentences of ``text`` that cite ``code`` (alone or in a sum)."""
    return [s for s in sentences(text) if any(c.code == code for c in citations(s))]


def unknown_citations(text: str, known_codes) -> list[str]:
    known = set(known_codes)
    return list(dict.fromkeys(c.code for c in citations(text) if c.code not in known))
