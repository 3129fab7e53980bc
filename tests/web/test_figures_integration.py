"""Figures wired into the liaison's editor, the review pages, the history and the task lists."""
from __future__ import annotations

import html

import pytest

from fazhi_flow.models.indicator import Indicator, Rule
from fazhi_flow.services import contributions as svc
from fazhi_flow.services.figures import save_figures

CITING = "全年办理行政执法案件{{cases_total}}件，其中适用简易程序{{cases_simple}}件。\n执法人员全部持证上岗。"


def add_figures(db, w):
    """Two indicators and a rule on the world's section."""
    db.session.add_all([
        Indicator(cycle_id=w.cycle.id, section_id=w.section.id, code="cases_total", name="行政执法案件数",
                  measure="件", type="integer", reported_by="all", required=True, position=0),
        Indicator(cycle_id=w.cycle.id, section_id=w.section.id, code="cases_simple", name="简易程序案件数",
                  measure="件", type="integer", reported_by="all", required=False, position=1),
        Rule(cycle_id=w.cycle.id, section_id=w.section.id, expression="cases_simple <= cases_total",
             severity="error", message="简易程序案件数不能超过案件总数", position=0),
    ])
    db.session.flush()


@pytest.fixture()
def fig_world(world, db):
    add_figures(db, world)
    db.session.commit()
    return world


def _page(response) -> str:
    return response.get_data(as_text=True)


def test_editor_summarises_the_figures_and_links_to_every_tool(as_user, fig_world, db):
    w = fig_world
    page = _page(as_user(w.liaison).get(f"/tasks/{w.contribution.id}"))
    assert "统计数据" in page
    assert "本章节需要贵单位填报 <strong>2</strong> 项统计指标，已填 <strong>0</strong> 项" in page
    # The required value is missing: told as a problem that blocks 提交审核.
    assert "还有 1 个问题，解决后才能提交审核" in page and "必填指标“行政执法案件数”（件）尚未填写" in page
    assert f'href="/figures/contribution/{w.contribution.id}"' in page and "填写统计数据" in page
    assert f'href="/figures/contribution/{w.contribution.id}/import"' in page and "导入Word文档" in page
    # Citation help with each code and name, ready to copy.
    assert '<code class="copyable">{{cases_total}}</code>' in page and "行政执法案件数（件）" in page
    assert '<code class="copyable">{{cases_simple}}</code>' in page
    # No approved text last year: no dead button.
    assert "以上年度文字开始起草" not in page


def test_editor_counts_filled_values_and_rule_problems(as_user, fig_world, db):
    w = fig_world
    save_figures(w.contribution, w.liaison, {"cases_total": "120", "cases_simple": "130"})
    db.session.commit()
    page = _page(as_user(w.liaison).get(f"/tasks/{w.contribution.id}"))
    assert "已填 <strong>2</strong> 项" in page
    assert "简易程序案件数不能超过案件总数" in page
    assert "还有 1 个问题" in page
    save_figures(w.contribution, w.liaison, {"cases_simple": "80"})
    db.session.commit()
    page = _page(as_user(w.liaison).get(f"/tasks/{w.contribution.id}"))
    assert "统计数据已通过校验" in page and "个问题" not in page


def test_start_from_last_year_is_offered_when_last_year_was_approved(as_user, fig_world, factory, db):
    w = fig_world
    previous = factory.cycle(state="published", year=w.cycle.year - 1, region=w.cycle.region)
    old_section = factory.section(previous, w.section.title, code=w.section.code)
    factory.contribution(factory.assignment(old_section, w.unit), state="approved", body="上年度的执法工作总结。")
    db.session.commit()
    page = _page(as_user(w.liaison).get(f"/tasks/{w.contribution.id}"))
    assert "以上年度文字开始起草" in page
    assert f'action="/figures/contribution/{w.contribution.id}/from-last-year"' in page


def test_textarea_keeps_citations_while_every_display_prints_the_number(as_user, fig_world, db):
    w = fig_world
    c = w.contribution
    c.body = CITING
    save_figures(c, w.liaison, {"cases_total": "120", "cases_simple": "45"})
    db.session.commit()
    liaison = as_user(w.liaison)
    editor = _page(liaison.get(f"/tasks/{c.id}"))
    assert "{{cases_total}}件" in html.unescape(editor.split("<textarea", 1)[1].split("</textarea>", 1)[0])
    # 我的任务 previews the text as it will read.
    tasks = _page(liaison.get("/tasks/"))
    assert "全年办理行政执法案件120件，其中适用简易程序45件。" in tasks and "{{cases_total}}" not in tasks

    svc.submit_contribution(c, w.liaison)
    db.session.commit()
    review = _page(as_user(w.reviewer).get(f"/review/{c.id}"))
    assert '<span class="bound-number" title="cases_total">120</span>' in review
    assert "{{cases_total}}" not in review.split("材料内容", 1)[1].split("统计数据校验", 1)[0]
    assert "统计数据校验" in review and "cases_simple &lt;= cases_total" in review
    queue = _page(as_user(w.reviewer).get("/review/"))
    assert "全年办理行政执法案件120件" in queue


def test_review_page_shows_rule_failures_literal_numbers_and_unknown_citations(as_user, fig_world, db):
    w = fig_world
    c = w.contribution
    c.body = "全年办理行政执法案件100件。{{no_such_code}}"
    save_figures(c, w.liaison, {"cases_total": "120", "cases_simple": "130"})
    c.state = "submitted"
    db.session.commit()
    page = _page(as_user(w.reviewer).get(f"/review/{c.id}"))
    panel = page.split("统计数据校验", 1)[1]
    assert "未通过" in panel and "130" in panel and "120" in panel  # the arithmetic is shown
    assert "正文数字与填报数值不一致" in panel and "100件" in panel
    assert "不存在的指标“{{no_such_code}}”" in html.unescape(panel)
    assert "【未知指标：no_such_code】" in page


def test_review_flags_text_mostly_copied_from_last_year(as_user, fig_world, factory, db):
    w = fig_world
    text = "全年组织执法人员培训四期，推行执法公示、全过程记录和法制审核制度，执法质量稳步提升。"
    previous = factory.cycle(state="published", year=w.cycle.year - 1, region=w.cycle.region)
    old_section = factory.section(previous, w.section.title, code=w.section.code)
    factory.contribution(factory.assignment(old_section, w.unit), state="approved", body=text)
    w.contribution.body = text
    w.contribution.state = "submitted"
    db.session.commit()
    page = _page(as_user(w.reviewer).get(f"/review/{w.contribution.id}"))
    assert "高度相似" in page


def test_review_diff_and_history_compare_the_text_as_displayed(as_user, fig_world, db):
    w = fig_world
    c = w.contribution
    c.body = CITING
    save_figures(c, w.liaison, {"cases_total": "120", "cases_simple": "45"})
    svc.submit_contribution(c, w.liaison)
    svc.return_contribution(c, w.reviewer, comment="请核对案件数")
    save_figures(c, w.liaison, {"cases_total": "126"})
    svc.submit_contribution(c, w.liaison)
    db.session.commit()
    review = _page(as_user(w.reviewer).get(f"/review/{c.id}"))
    diff = review.split('class="diff"', 1)[1].split("材料内容", 1)[0]
    # Only the figure changed: the diff shows the numbers, not two identical {{code}} lines.
    assert "全年办理行政执法案件12<del>0</del>件" in diff and "全年办理行政执法案件12<ins>6</ins>件" in diff
    assert "{{cases_total}}" not in diff
    history = _page(as_user(w.liaison).get(f"/tasks/{c.id}/history?a=1&b=2"))
    assert "12<ins>6</ins>件" in history and "{{cases_total}}" not in history


def test_unit_head_sees_rendered_text_and_the_checks(as_user, factory, db):
    w = factory.world(unit_head_review=True)
    add_figures(db, w)
    w.contribution.body = CITING
    save_figures(w.contribution, w.liaison, {"cases_total": "12", "cases_simple": "3"})
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    assert w.contribution.state == "unit_review"
    page = _page(as_user(w.unit_head).get(f"/tasks/{w.contribution.id}/unit-review"))
    assert "全年办理行政执法案件<span class=\"bound-number\" title=\"cases_total\">12</span>件" in page
    assert "统计数据校验" in page
    queue = _page(as_user(w.unit_head).get("/tasks/unit-queue"))
    assert "全年办理行政执法案件12件" in queue


def test_submitted_material_in_the_editor_is_shown_rendered(as_user, fig_world, db):
    w = fig_world
    w.contribution.body = CITING
    save_figures(w.contribution, w.liaison, {"cases_total": "7", "cases_simple": "2"})
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    page = _page(as_user(w.liaison).get(f"/tasks/{w.contribution.id}"))
    assert "<textarea" not in page
    assert '<span class="bound-number" title="cases_total">7</span>' in page
    assert "查看统计数据" in page


def test_other_units_see_no_figures(as_user, fig_world, db):
    w = fig_world
    assert as_user(w.other_liaison).get(f"/tasks/{w.contribution.id}").status_code == 403
    assert as_user(w.other_liaison).get(f"/figures/contribution/{w.contribution.id}").status_code == 403
