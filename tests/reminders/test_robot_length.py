"""Robot texts fit the robots' limits (WeCom refuses text over 2048 UTF-8 bytes: the whole message
would be dead): a long list of sections is cut before the link, which is kept."""
import pytest

from fazhi_flow.notify.webhook import CUT_NOTE, TEXT_LIMITS, payload


def _long_text(lines: int) -> str:
    body = "\n".join(f"第{i}项：“依法行政制度体系建设情况”截止日期2025年1月10日，当前状态：起草中" for i in range(lines))
    return f"【重新征集】示例区2024年法治政府建设年度报告\n{body}\nhttp://fz.example.gov.cn/tasks/"


@pytest.mark.parametrize("kind", ["wecom", "dingtalk"])
def test_a_long_text_is_cut_within_the_limit_and_keeps_its_link(kind):
    text = _long_text(400)
    assert len(text.encode("utf-8")) > TEXT_LIMITS[kind]
    content = payload(kind, text)["text"]["content"]
    assert len(content.encode("utf-8")) <= TEXT_LIMITS[kind]
    assert content.startswith("【重新征集】") and content.endswith("\nhttp://fz.example.gov.cn/tasks/")
    assert CUT_NOTE in content


def test_a_text_within_the_limit_is_sent_as_it_is():
    text = _long_text(3)
    assert payload("wecom", text)["text"]["content"] == text


def test_a_text_without_lines_is_cut_on_a_character_boundary():
    content = payload("wecom", "法" * 2000)["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048 and content.endswith(CUT_NOTE)
    assert set(content[:-len(CUT_NOTE)]) == {"法"} and len(content) > 600
