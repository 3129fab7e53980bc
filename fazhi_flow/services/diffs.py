"""What changed between two texts, paragraph by paragraph, with changed words marked inside.

Pure functions returning plain data; templates render (and so escape) the text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher


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
