"""A cross-unit sum() while collecting: a blank from a unit that has not submitted yet is "not yet
checkable" (nobody blocked, a neutral note), a blank from a unit that has submitted counts as nothing
reported; the lead unit holding the total sees, unit by unit, the parts it may see (submitted or approved,
never drafts), so it can tell whose number disagrees."""
import re

import pytest

from fazhi_flow.figures.evaluate import NOT_YET_CHECKABLE, check_cycle
from fazhi_flow.services import contributions as C
from fazhi_flow.services import figures as F

from .conftest import GOOD, INDICATORS, build_seed_world

RULE = "全区涉企检查次数应等于各单位之和"
LEAD = {code: v for code, v in GOOD["sfj"].items() if INDICATORS[code][4] == "enforce"}


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def submit(world, unit, figures=None):
    contribution = world.contribution_of(unit, "enforce")
    if figures:
        F.save_figures(contribution, world.liaisons[unit], figures)
    C.save_draft(contribution, world.liaisons[unit], "开展入企检查。")
    C.submit_contribution(contribution, world.liaisons[unit])
    return contribution


def sum_results(world):
    return [r for r in check_cycle(world.cycle) if r.rule.message == RULE]


@pytest.fixture()
def blank_b(db, factory):
    """区司法局 entered its total and its part and submitted; 八字哨镇 entered a correct part and
    submitted; 龙光桥街道 (an optional indicator) has entered nothing and is still drafting."""
    world = build_seed_world(db, factory)
    lead = submit(world, "sfj", LEAD)
    town_a = submit(world, "town_a", {"inspections": "1312"})
    db.session.commit()
    world.lead, world.town_a = lead, town_a
    return world


def test_a_blank_of_a_unit_still_drafting_blocks_nobody(blank_b):
    assert blank_b.lead.state == "submitted" and blank_b.town_a.state == "submitted"
    results = sum_results(blank_b)
    assert results and {r.status for r in results} == {"incomplete"}
    assert all(NOT_YET_CHECKABLE in r.message and "数字对不上" not in r.full_message for r in results)


def test_the_reviewer_sees_the_neutral_note_where_rules_are_listed(blank_b, login):
    page = text(login(blank_b.reviewer).get(f"/review/{blank_b.lead.id}").get_data(as_text=True))
    assert f"{RULE}：{NOT_YET_CHECKABLE}" in page
    assert "数字对不上" not in page


def test_a_blank_of_a_unit_that_submitted_counts_as_nothing_reported(blank_b):
    town_b = submit(blank_b, "town_b")  # its own blank does not stop it
    assert town_b.state == "submitted"
    failed = [r for r in sum_results(blank_b) if r.failed]
    assert failed and all("（区司法局1500 + 八字哨镇1312 = 2812），两者相差1000。" in r.message for r in failed)


def test_sign_off_checks_still_count_a_blank_as_nothing(blank_b, db):
    blank_b.cycle.state = "compiling"
    db.session.flush()
    assert any(r.failed for r in sum_results(blank_b))


@pytest.fixture()
def lead_last(db, factory):
    """The support units submit first (龙光桥街道 a wrong 1001); 区司法局 enters its total last."""
    world = build_seed_world(db, factory)
    submit(world, "town_a", {"inspections": "1312"})
    world.town_b = submit(world, "town_b", {"inspections": "1001"})
    world.lead = world.contribution_of("sfj", "enforce")
    F.save_figures(world.lead, world.liaisons["sfj"], LEAD)
    db.session.commit()
    return world


def test_the_lead_sees_each_submitted_units_part_and_who_changed_last(lead_last, login):
    lead = lead_last.lead
    page = text(login(lead_last.liaisons["sfj"]).get(f"/figures/contribution/{lead.id}").get_data(as_text=True))
    assert "各单位涉企检查次数合计（区司法局1500 + 八字哨镇1312 + 龙光桥街道1001 = 3813），两者相差1。" in page
    assert "最近修改的是区司法局的" in page
    assert "涉及的单位：区司法局、八字哨镇、龙光桥街道。" in page


def test_a_support_unit_still_sees_only_its_own_part(lead_last, login):
    town_a = lead_last.contribution_of("town_a", "enforce")
    page = text(login(lead_last.liaisons["town_a"]).get(f"/figures/contribution/{town_a.id}").get_data(as_text=True))
    assert "1001" not in page and "3813" not in page and "1500" not in page


def test_the_lead_never_sees_a_support_units_draft(lead_last, login, db):
    C.recall_contribution(lead_last.town_b, lead_last.liaisons["town_b"])
    F.save_figures(lead_last.town_b, lead_last.liaisons["town_b"], {"inspections": "654321"})
    db.session.commit()
    lead = lead_last.lead
    client = login(lead_last.liaisons["sfj"])
    for path in (f"/figures/contribution/{lead.id}", f"/figures/contribution/{lead.id}/checks", f"/tasks/{lead.id}"):
        body = client.get(path).get_data(as_text=True)
        assert "654321" not in body and "654,321" not in body and "1001" not in body, path
