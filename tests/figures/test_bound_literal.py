"""Bound numbers ({{code}}) and the literal-number check, on sentences written for these tests."""
from decimal import Decimal
from types import SimpleNamespace

from fazhi_flow.figures.bound import citations, render_bound, render_bound_html, sentences_citing
from fazhi_flow.figures.literal import check_literals, keywords
from fazhi_flow.services.contributions import approve_contribution, reopen_contribution, submit_contribution
from fazhi_flow.services.figures import (
    bound_values, changes_after_approval, contribution_figures, render_contribution_text, save_figures,
)

from .conftest import build_seed_world, good_values


def ind(name, measure):
    return SimpleNamespace(name=name, measure=measure)


def test_render_bound_prints_values_and_marks_missing_ones():
    text = "全区建成调委会{{med_total}}个，其中镇级{{ med_town }}个；全区检查{{sum(inspections)}}次，园区｛｛med_park｝｝个。{{ghost}}"
    values = {"med_total": Decimal("265.0000"), "med_town": 18, "sum(inspections)": Decimal("3812"),
              "med_park": None}
    out = render_bound(text, values, names={"med_park": "园区调委会数", "med_total": "调委会总数"})
    assert out == "全区建成调委会265个，其中镇级18个；全区检查3812次，园区【园区调委会数：未填报】个。【未知指标：ghost】"
    html = render_bound_html("<b>{{med_total}}</b>", {"med_total": 265})
    assert str(html) == '&lt;b&gt;<span class="bound-number" title="med_total">265</span>&lt;/b&gt;'
    assert [c.key for c in citations(text)] == ["med_total", "med_town", "sum(inspections)", "med_park", "ghost"]


def test_sentences_citing_a_code():
    text = "调委会共{{med_total}}个。调解员队伍稳定。检查合计{{sum(med_total)}}次！"
    assert sentences_citing(text, "med_total") == ["调委会共{{med_total}}个。", "检查合计{{sum(med_total)}}次！"]


def test_keywords_drop_generic_heads_and_tails():
    assert keywords("调委会总数") == ["调委会总数", "调委会"]
    assert keywords("全区涉企检查次数") == ["全区涉企检查次数", "涉企检查次数", "涉企检查"]


def test_literal_numbers_flag_only_the_wrong_one():
    checks = [(ind("调委会总数", "个"), Decimal(265)), (ind("镇级调委会数", "个"), Decimal(18)),
              (ind("村级调委会数", "个"), Decimal(242)), (ind("人民调解员人数", "人"), Decimal(1104)),
              (ind("涉企柔性执法次数", "次"), Decimal(175))]
    text = ("到年底全区调委会共有265个，镇级调委会18个，村级调委会240个，行业性调委会4个。"
            "调解员力量不断充实，人民调解员1104人，另有志愿者300余人。\n"
            "涉企柔性执法175次，累计开展普法活动500余场次。")
    found = check_literals(text, checks)
    assert [(m.indicator.name, m.written, m.value) for m in found] == [("村级调委会数", Decimal(240), Decimal(242))]
    assert found[0].message.startswith("正文写的是“240个”，但指标“村级调委会数”填报的是242个，请核对：")
    assert "村级调委会240个" in found[0].sentence


def test_literal_check_ignores_other_measures_approximations_and_citations():
    checks = [(ind("调委会总数", "个"), Decimal(265)), (ind("涉企检查次数", "次"), Decimal(3812))]
    text = ("各调委会调解纠纷2971件。全区调委会约300个。共有调委会{{med_total}}个。"
            "涉企检查3000余次。本镇级调委会9个。")
    assert check_literals(text, checks) == []


def test_literal_check_sees_thousands_separators_and_following_names():
    checks = [(ind("涉企检查次数", "次"), Decimal(3812)), (ind("调委会总数", "个"), Decimal(265))]
    found = check_literals("今年开展涉企检查3,800次，建成264个调委会。", checks)
    assert [(m.written, m.value) for m in found] == [(Decimal(3800), Decimal(3812)), (Decimal(264), Decimal(265))]


def test_bound_values_resolve_own_and_total(seed_world):
    lead = seed_world.contribution_of("sfj", "enforce")
    town = seed_world.contribution_of("town_a", "enforce")
    values = bound_values(town)
    assert values["inspections"] == Decimal(1312)
    assert values["sum(inspections)"] == Decimal(3812)
    assert values["med_total"] == Decimal(265)  # one unit reports it, so anybody may cite it
    lead.body = "全区开展涉企检查{{inspections_total}}次，各单位合计{{sum(inspections)}}次，本局{{inspections}}次。"
    assert render_contribution_text(lead) == "全区开展涉企检查3812次，各单位合计3812次，本局1500次。"


def test_contribution_figures_report_literals_and_citations(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    c.body = "全区调委会共有266个。人民调解员{{mediators}}人。{{nonexistent}}"
    report = contribution_figures(c)
    assert [m.written for m in report.literals] == [Decimal(266)]
    assert report.unknown_citations == ["nonexistent"]
    assert any("不存在的指标“{{nonexistent}}”" in p for p in report.blocking())


def test_value_changed_after_approval_lists_the_citing_sentences(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    govern = world.contribution_of("sfj", "govern")
    govern.body = "全区建成调委会{{med_total}}个，覆盖各镇村。人民调解员队伍稳定。"
    submit_contribution(govern, world.liaisons["sfj"])
    approve_contribution(govern, world.reviewer)
    assert changes_after_approval(world.cycle) == []
    reopen_contribution(govern, world.admin, comment="园区新设一个调委会，需更新数字")
    save_figures(govern, world.liaisons["sfj"], {"med_total": "266", "med_park": "2"})
    changes = changes_after_approval(world.cycle)
    by_code = {c.indicator.code: c for c in changes}
    assert set(by_code) == {"med_total", "med_park"}
    change = by_code["med_total"]
    assert (change.old, change.new) == (Decimal(265), Decimal(266))
    assert [(s[1], s[2]) for s in change.sentences] == [
        ("全区建成调委会265个，覆盖各镇村。", "全区建成调委会266个，覆盖各镇村。")]
    assert by_code["med_park"].sentences == []
    report = contribution_figures(govern)
    assert {c.indicator.code for c in report.changes} == {"med_total", "med_park"}
