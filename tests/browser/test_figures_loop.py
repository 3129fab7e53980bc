"""Figures in a real browser: a liaison fills an indicator from the editor, cites it in the text, and
the reviewer reads the number; a draft whose save failed is offered back from the browser's copy."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from fazhi_flow.models.indicator import Indicator, Rule
from fazhi_flow.timeutil import local_today

pytestmark = pytest.mark.browser


def _figures_world(factory, db):
    w = factory.world()
    w.contribution.body = ""
    # Deadlines near today, so the pages (and the user guide's screenshots) look like a live cycle.
    w.cycle.due = local_today() + timedelta(days=12)
    db.session.add_all([
        Indicator(cycle_id=w.cycle.id, section_id=w.section.id, code="cases_total", name="行政执法案件数",
                  measure="件", type="integer", reported_by="all", required=True, position=0),
        Indicator(cycle_id=w.cycle.id, section_id=w.section.id, code="cases_simple", name="简易程序案件数",
                  measure="件", type="integer", reported_by="all", required=False, position=1),
        Rule(cycle_id=w.cycle.id, section_id=w.section.id, expression="cases_simple <= cases_total",
             severity="error", message="简易程序案件数不能超过案件总数", position=0),
    ])
    db.session.commit()
    return w


def test_liaison_fills_a_figure_and_the_reviewer_reads_the_number(factory, db, person):
    w = _figures_world(factory, db)
    cid = w.contribution.id
    db.session.commit()

    liaison = person(w.liaison)
    page = liaison.login()
    page.goto(f"/tasks/{cid}")
    summary = page.locator(".figures-summary")
    assert "需要贵单位填报 2 项统计指标，已填 0 项" in summary.inner_text()
    assert page.locator("code.copyable:has-text('{{cases_total}}')").count() == 1
    page.click(".draft-tools a:has-text('填写统计数据')")
    page.wait_for_url(re.compile(rf"/figures/contribution/{cid}$"))
    page.fill("#value-cases_total", "126")
    page.fill("#value-cases_simple", "40")
    page.click("button:has-text('保存统计数据')")
    page.wait_for_load_state()
    assert "统计数据已保存" in page.content()
    page.click("a:has-text('返回正文编辑')")
    page.wait_for_url(re.compile(rf"/tasks/{cid}$"))
    assert "已填 2 项" in page.locator(".figures-summary").inner_text()
    assert "统计数据已通过校验" in page.content()
    page.fill("textarea#body", "全年办理行政执法案件{{cases_total}}件，其中简易程序{{cases_simple}}件。")
    liaison.shot("liaison-editor-figures")
    page.click("button:has-text('提交审核')")
    page.wait_for_url(re.compile(r"/submit$"))
    assert page.locator(".material .bound-number:has-text('126')").count() == 1
    page.click("button:has-text('确认提交审核')")
    page.wait_for_load_state()
    assert "已提交审核" in page.content()

    reviewer = person(w.reviewer)
    page = reviewer.login()
    page.goto(f"/review/{cid}")
    material = page.locator(".material").first.inner_text()
    assert "全年办理行政执法案件126件，其中简易程序40件。" in material and "{{" not in material
    panel = page.locator(".figures-panel")
    assert "统计数据校验" in panel.inner_text() and "通过" in panel.inner_text()
    reviewer.shot("reviewer-figures")


def test_unsaved_text_is_offered_back_from_the_browser(factory, db, person):
    w = _figures_world(factory, db)
    cid = w.contribution.id
    db.session.commit()
    liaison = person(w.liaison)
    page = liaison.login()
    page.goto(f"/tasks/{cid}")
    assert page.locator("#draft-backup").is_hidden()
    page.fill("textarea#body", "还没来得及保存的一段文字。")
    page.goto("/tasks/")  # left without saving (e.g. the save failed and the page was closed)
    page.goto(f"/tasks/{cid}")
    assert page.locator("#draft-backup").is_visible()
    page.click("button:has-text('恢复这些文字')")
    assert page.input_value("textarea#body") == "还没来得及保存的一段文字。"
    page.click("button:has-text('保存草稿')")
    page.wait_for_load_state()
    assert "草稿已保存" in page.content()
    # Saved: the browser's copy is dropped and nothing is offered any more.
    page.goto(f"/tasks/{cid}")
    assert page.locator("#draft-backup").is_hidden()
