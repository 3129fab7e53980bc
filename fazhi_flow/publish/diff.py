"""Line-by-line comparison of two report versions, with the changed characters marked."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass
class DiffRow:
    op: str                 # equal | insert | delete | replace
    old: str | None
    new: str | None
    old_html: Markup
    new_html: Markup


def _mark(old: str, new: str) -> tuple[Markup, Markup]:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    left, right = [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        a, b = escape(old[i1:i2]), escape(new[j1:j2])
        if op == "equal":
            left.append(a)
            right.append(b)
        else:
            if a:
                left.append(Markup("<del>") + a + Markup("</del>"))
            if b:
                right.append(Markup("<ins>") + b + Markup("</ins>"))
    return Markup("").join(left), Markup("").join(right)


def diff_texts(old: str, new: str) -> list[DiffRow]:
    """Compare two texts paragraph by paragraph (one paragraph per line)."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows.extend(DiffRow("equal", line, line, escape(line), escape(line)) for line in a[i1:i2])
        elif op == "delete":
            rows.extend(DiffRow("delete", line, None, escape(line), Markup("")) for line in a[i1:i2])
        elif op == "insert":
            rows.extend(DiffRow("insert", None, line, Markup(""), escape(line)) for line in b[j1:j2])
        else:
            olds, news = a[i1:i2], b[j1:j2]
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
