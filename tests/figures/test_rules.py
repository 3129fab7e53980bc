"""Rules over the figures of a real report: the correct figures pass, exactly the broken ones fail."""
import pytest

from fazhi_flow.errors import DomainError
from fazhi_flow.figures.evaluate import FigureBook, check_cycle, evaluate_contribution
from fazhi_flow.services.contributions import submit_contribution

from .conftest import build_seed_world, good_values


def failed(results):
    return sorted({r.rule.expression for r in results if r.failed})


def test_the_published_figures_pass_every_rule(seed_world):
    results = check_cycle(seed_world.cycle)
    assert failed(results) == []
    assert {r.status for r in results} == {"ok"}
    total = next(r for r in results if r.rule.expression.startswith("med_total"))
    assert total.message == ("调委会总数应等于各类调委会之和：调委会总数（265）应等于 镇级调委会数（18） + "
                             "园区调委会数（1） + 村级调委会数（242） + 行业性专业性调委会数（4） = 265。")


# (A percent above 100 is refused at entry now, so "appear_rate <= 100" cannot be broken here.)
BROKEN = {
    "med": ({"sfj__med_total": "266"}, "med_total = med_town + med_park + med_village + med_trade"),
    "lenient": ({"sfj__reduced": "93"}, "lenient_total = no_penalty + reduced + lighter + no_coercion"),
    "sum": ({"town_b__inspections": "900"}, "inspections_total = sum(inspections)"),
    "closed": ({"sfj__suit_closed": "52"}, "suit_closed <= suit_total"),
    "mediators": ({"sfj__mediators": "700"}, "mediators >= med_total * 3"),
}


@pytest.mark.parametrize("key", list(BROKEN))
def test_exactly_the_broken_figure_is_flagged(db, factory, key):
    changes, expression = BROKEN[key]
    world = build_seed_world(db, factory, values=good_values(**changes))
    assert failed(check_cycle(world.cycle)) == [expression]


def test_all_broken_together_are_all_flagged_and_nothing_else(db, factory):
    changes = {}
    for c, _ in BROKEN.values():
        changes.update(c)
    world = build_seed_world(db, factory, values=good_values(**changes))
    assert failed(check_cycle(world.cycle)) == sorted(e for _, e in BROKEN.values())


def test_messages_show_the_arithmetic_in_words(db, factory):
    world = build_seed_world(db, factory, values=good_values(sfj__med_total="266", town_b__inspections="900"))
    messages = {r.rule.expression: r.message for r in check_cycle(world.cycle) if r.failed}
    assert messages["med_total = med_town + med_park + med_village + med_trade"] == (
        "调委会总数应等于各类调委会之和：数字对不上：调委会总数（266）应等于 镇级调委会数（18） + 园区调委会数（1） + "
        "村级调委会数（242） + 行业性专业性调委会数（4） = 265，两者相差1。")
    assert messages["inspections_total = sum(inspections)"] == (
        "全区涉企检查次数应等于各单位之和：数字对不上：全区涉企检查次数（3812）应等于 各单位涉企检查次数合计"
        "（区司法局1500 + 八字哨镇1312 + 龙光桥街道900 = 3712），两者相差100。")


def test_liaison_view_of_a_sum_hides_other_units_values(db, factory):
    world = build_seed_world(db, factory, values=good_values(town_b__inspections="900"))
    contribution = world.contribution_of("sfj", "enforce")
    results = evaluate_contribution(FigureBook(world.cycle), contribution, detail=False)
    message = next(r.message for r in results if "sum" in r.rule.expression)
    assert "各单位涉企检查次数合计（3712）" in message
    assert "八字哨镇" not in message


def test_an_error_rule_blocks_submission_with_the_message(db, factory):
    world = build_seed_world(db, factory, values=good_values(sfj__med_total="266"))
    contribution = world.contribution_of("sfj", "govern")
    contribution.body = "全区调委会建设稳步推进。"
    with pytest.raises(DomainError) as info:
        submit_contribution(contribution, world.liaisons["sfj"])
    assert "暂不能提交审核" in info.value.message
    assert "调委会总数（266）" in info.value.message
    assert contribution.state == "draft"
    assert contribution.revisions == []


def test_the_support_unit_whose_figure_breaks_the_total_is_blocked_not_the_lead(db, factory):
    # town_b enters its figure last (enter_values goes unit by unit): its 900 breaks the district total.
    world = build_seed_world(db, factory, values=good_values(town_b__inspections="900"))
    for unit in ("sfj", "town_a"):  # the others' figures count for town_b once submitted
        other = world.contribution_of(unit, "enforce")
        other.body = "全区涉企检查全面推行扫码入企。"
        submit_contribution(other, world.liaisons[unit])
        assert other.state == "submitted"
    town = world.contribution_of("town_b", "enforce")
    town.body = "本街道开展入企检查并全部扫码留痕。"
    with pytest.raises(DomainError, match="涉企检查次数合计（本单位900，其他单位〔待汇总〕）") as info:
        submit_contribution(town, world.liaisons["town_b"])
    assert "3812" not in info.value.message and "1312" not in info.value.message
    assert town.state == "draft"


def test_missing_values_make_a_rule_wait_not_fail(db, factory):
    world = build_seed_world(db, factory, values={"sfj": {"med_total": "265", "med_town": "18"}})
    results = [r for r in check_cycle(world.cycle) if r.rule.expression.startswith("med_total")]
    assert [r.status for r in results] == ["incomplete"]
    assert "“园区调委会数”" in results[0].message and "尚未填写" in results[0].message


def test_required_values_block_submission(db, factory):
    world = build_seed_world(db, factory, values={"sfj": {"med_total": "265"}})
    contribution = world.contribution_of("sfj", "govern")
    contribution.body = "调委会覆盖镇村两级。"
    with pytest.raises(DomainError) as info:
        submit_contribution(contribution, world.liaisons["sfj"])
    assert "必填指标“镇级调委会数”（个）尚未填写。" in info.value.message


def test_a_warning_needs_an_explanation_then_submits(db, factory):
    from fazhi_flow.services.figures import save_figures

    world = build_seed_world(db, factory, values=good_values(sfj__mediators="700"))
    contribution = world.contribution_of("sfj", "govern")
    contribution.body = "人民调解员队伍持续壮大。"
    with pytest.raises(DomainError, match="人民调解员偏少"):
        submit_contribution(contribution, world.liaisons["sfj"])
    rule = next(r for r in FigureBook(world.cycle).rules if r.severity == "warning")
    save_figures(contribution, world.liaisons["sfj"], {}, {f"rule:{rule.id}": "今年起专职调解员单独统计，兼职人员未计入。"})
    revision = submit_contribution(contribution, world.liaisons["sfj"])
    assert revision.data["explanations"] == {f"rule:{rule.id}": "今年起专职调解员单独统计，兼职人员未计入。"}
    assert revision.data["figures"]["med_total"] == "265"


def test_rate_with_division_compares_with_tolerance(db, factory):
    from fazhi_flow.models.indicator import Rule

    world = build_seed_world(db, factory, values=good_values(sfj__appear_rate="54.76"))
    db.session.add(Rule(cycle_id=world.cycle.id, section_id=world.sections["govern"].id,
                        expression="appear_rate = suit_closed / suit_total * 100", severity="error"))
    db.session.flush()
    result = next(r for r in check_cycle(world.cycle) if "/" in r.rule.expression)
    assert result.status == "ok"
    assert "行政诉讼结案数（23） ÷ 行政诉讼案件数（42） × 100 = 54.76" in result.message


def test_division_by_zero_is_reported_not_crashed(db, factory):
    from fazhi_flow.models.indicator import Rule

    world = build_seed_world(db, factory, values=good_values(sfj__suit_total="0", sfj__suit_closed="0"))
    db.session.add(Rule(cycle_id=world.cycle.id, section_id=world.sections["govern"].id,
                        expression="suit_closed / suit_total * 100 <= 100", severity="error"))
    db.session.flush()
    result = next(r for r in check_cycle(world.cycle) if "/" in r.rule.expression)
    assert result.status == "incomplete" and "为0" in result.message
