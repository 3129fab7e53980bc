"""Every table heading in the templates says what its column is, at least to a screen reader (an empty
<th> is announced as nothing; a column of buttons gets <span class="sr-only">操作</span>). The
browser tests check the pages they open with axe-core; this covers the pages they do not open."""
from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TH = re.compile(r"<th\b[^>]*>(.*?)</th>", re.S)
TAG = re.compile(r"<[^>]+>")
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)


def _spoken(cell: str) -> str:
    """What a heading cell gives a screen reader: its text, Jinja expressions or an aria-label."""
    if re.search(r'aria-label="[^"]+"', cell):
        return "aria-label"
    return TAG.sub("", JINJA_COMMENT.sub("", cell)).strip()


def test_no_table_heading_is_empty():
    empty, seen = [], 0
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in TH.finditer(text):
            seen += 1
            if not _spoken(match.group(1)):
                line = text.count("\n", 0, match.start()) + 1
                empty.append(f"{path.relative_to(TEMPLATES)}:{line}: {match.group(0)}")
    assert empty == []
    assert seen > 100  # the pattern really reads the templates' headings


def test_the_check_finds_an_empty_heading():
    assert _spoken("") == "" and _spoken('<input type="checkbox">') == ""
    assert _spoken('<span class="sr-only">操作</span>') == "操作"
    assert _spoken("{{ n.short_number }}") == "{{ n.short_number }}"
