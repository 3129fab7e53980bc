"""A list's preview displays only the beginning of a long text (its other citations are not
resolved), and shows exactly what displaying the whole text and cutting it would show: texts with
citations (half- and full-width braces, sum(), spaces and line breaks inside), blank lines, missing
values, cuts landing inside a citation. The renderer is a stand-in that prints from a fixed table."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from fazhi_flow.figures.bound import render_bound
from fazhi_flow.web.bound_text import BoundText

VALUES = {"c1": 12, "c2": 3456789, "sum(c1)": 1200, "sum(c2)": 987654321, "l1": 7}
NAMES = {"c1": "办理案件数", "c2": "涉案金额", "l1": "重点事项数", "c9": "未填指标"}
PIECES = ["本单位", "全区合计", "件，", "。", "\n", "\n\n", "   ", "  \n  ", "依法行政水平不断提升", "ab",
          "\r\n", "\r", "\u2028", "\x85", "{{c1}}", "{{ c2 }}", "{{sum(c1)}}", "｛｛sum（c2）｝｝", "{{\nl1\n}}", "{{c9}}", "{{未知}}", "{", "}}"]


def _body(rng: random.Random, pieces: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(pieces))


def _whole(body: str, length: int) -> str:
    """What the preview must be: the whole text displayed, on one line, then cut."""
    text = " ".join(p.strip() for p in render_bound(body, VALUES, NAMES).splitlines() if p.strip())
    return text if len(text) <= length else text[:length] + "…"


@pytest.fixture()
def renderer(monkeypatch):
    shown = []

    def text(self, contribution, body=None, snapshot=None):
        body = contribution.body if body is None else body
        shown.append(body)
        return render_bound(body, VALUES, NAMES)

    monkeypatch.setattr(BoundText, "text", text)
    return BoundText(), shown


@pytest.mark.parametrize("seed", range(40))
def test_the_preview_equals_the_whole_text_displayed_and_cut(renderer, seed):
    preview, shown = renderer
    rng = random.Random(seed)
    for pieces in (1, 5, 30, 120, 600):
        for length in (1, 10, 60):
            body = _body(rng, pieces)
            shown.clear()
            assert preview.preview(SimpleNamespace(body=body), length) == _whole(body, length), (body, length)


def test_a_cut_between_carriage_return_and_line_feed(renderer):
    preview, _shown = renderer
    body = "甲" * 239 + "\r\n" + "乙{{c1}}" * 100
    assert preview.preview(SimpleNamespace(body=body)) == _whole(body, 60)
    assert preview.preview(SimpleNamespace(body=body), 300) == _whole(body, 300)


def test_a_long_text_is_displayed_from_its_beginning_only(renderer):
    preview, shown = renderer
    long_text = "本单位今年办理案件{{c1}}件，涉案金额{{c2}}元。\n" * 400  # about 13,000 characters
    assert preview.preview(SimpleNamespace(body=long_text)) == _whole(long_text, 60)
    assert len(shown) == 1 and len(shown[0]) < 300  # one rendering, of the beginning
    # A beginning that displays too short (a blank run) falls back to the whole text.
    sparse = "\n" * 500 + "本单位{{c1}}件。" * 20
    shown.clear()
    assert preview.preview(SimpleNamespace(body=sparse)) == _whole(sparse, 60)
    assert shown[-1] == sparse
