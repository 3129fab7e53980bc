"""What changed between two texts, paragraph by paragraph, with changed characters marked inside.

Two shapes over one character-level marking: ``paragraph_diff`` (plain segments the template escapes;
a contribution's revisions) and ``diff_texts`` (rows with escaped markup; report versions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher

from markupsafe import Markup, escape


@dataclass
class DiffLine:
    kind: str                      # "same", "add", "del"
    number: int | None             # paragraph number in the text it belongs to
    segments: list[tuple[str, str]] = field(default_factory=list)  # (op, text): op in same/ins/del


def paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").splitlines() if p.strip()]


def _inline(old: str, new: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Character-level marks for a replaced paragraph (Chinese has no spaces to split words on)."""
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    left, right = [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(("same", old[i1:i2]))
            right.append(("same", new[j1:j2]))
        else:
            if i2 > i1:
                left.append(("del", old[i1:i2]))
            if j2 > j1:
                right.append(("ins", new[j1:j2]))
    return left, right


def paragraph_diff(old_text: str | None, new_text: str | None) -> list[DiffLine]:
    old, new = paragraphs(old_text), paragraphs(new_text)
    lines: list[DiffLine] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                lines.append(DiffLine("same", j1 + k + 1, [("same", new[j1 + k])]))
            continue
        olds, news = old[i1:i2], new[j1:j2]
        paired = min(len(olds), len(news)) if op == "replace" else 0
        for k in range(paired):
            ratio = SequenceMatcher(None, olds[k], news[k], autojunk=False).ratio()
            if ratio >= 0.4 and len(olds[k]) + len(news[k]) <= 20_000:
                left, right = _inline(olds[k], news[k])
                lines.append(DiffLine("del", i1 + k + 1, left))
                lines.append(DiffLine("add", j1 + k + 1, right))
            else:
                lines.append(DiffLine("del", i1 + k + 1, [("same", olds[k])]))
                lines.append(DiffLine("add", j1 + k + 1, [("same", news[k])]))
        for k in range(paired, len(olds)):
            lines.append(DiffLine("del", i1 + k + 1, [("same", olds[k])]))
        for k in range(paired, len(news)):
            lines.append(DiffLine("add", j1 + k + 1, [("same", news[k])]))
    return lines


def has_changes(lines: list[DiffLine]) -> bool:
    return any(line.kind != "same" for line in lines)


# ------------------------------------------------------------------ report versions, line by line


@dataclass
class DiffRow:
    op: str                 # equal | insert | delete | replace
    old: str | None
    new: str | None
    old_html: Markup
    new_html: Markup


_TAGS = {"del": (Markup("<del>"), Markup("</del>")), "ins": (Markup("<ins>"), Markup("</ins>"))}


def _markup(segments: list[tuple[str, str]]) -> Markup:
    parts = []
    for op, text in segments:
        if op == "same":
            parts.append(escape(text))
        else:
            opening, closing = _TAGS[op]
            parts.append(opening + escape(text) + closing)
    return Markup("").join(parts)


def _mark(old: str, new: str) -> tuple[Markup, Markup]:
    left, right = _inline(old, new)
    return _markup(left), _markup(right)


def diff_texts(old: str, new: str) -> list[DiffRow]:
    """Compare two texts paragraph by paragraph (one paragraph per line)."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows.extend(DiffRow("equal", line, line, escape(line), escape(line)) for line in a[i1:i2])
        elif op == "delete":
            rows.extend(DiffRow("delete", line, None, escape(line), Markup("")) for line in a[i1:i2])
        elif op == "insert":
            rows.extend(DiffRow("insert", None, line, Markup(""), escape(line)) for line in b[j1:j2])
        else:
            rows.extend(_replaced(a[i1:i2], b[j1:j2]))
    return rows


def _replaced(olds: list[str], news: list[str]) -> list[DiffRow]:
    rows = []
    for k in range(max(len(olds), len(news))):
        o = olds[k] if k < len(olds) else None
        n = news[k] if k < len(news) else None
        if o is not None and n is not None:
            rows.append(DiffRow("replace", o, n, *_mark(o, n)))
        elif o is not None:
            rows.append(DiffRow("delete", o, None, escape(o), Markup("")))
        else:
            rows.append(DiffRow("insert", None, n, Markup(""), escape(n)))
    return rows


def diff_summary(rows: list[DiffRow]) -> dict[str, int]:
    counts = {"insert": 0, "delete": 0, "replace": 0}
    for row in rows:
        if row.op in counts:
            counts[row.op] += 1
    return counts
