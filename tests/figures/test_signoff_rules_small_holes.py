"""Small holes: a percent indicator without a maximum stops at 100; "changed after approval" lists only
the sentences whose printed text changes, each with before and after."""
import re

import pytest
from sqlalchemy import select

from fazhi_flow.models.indicator import Indicator, IndicatorValue
from fazhi_flow.services import contributions as C
from fazhi_flow.services import cycles as cycle_ops
from fazhi_flow.services import figures as F

from .conftest import build_seed_world, good_values


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_a_percent_without_a_maximum_refuses_105_and_keeps_the_old_value(db, factory, login):
    world = build_seed_world(db, factory, values=good_values())
    govern = world.contribution_of("sfj", "govern")
    with pytest.raises(F.FigureFormError) as info:
        F.save_figures(govern, world.liaisons["sfj"], {"appear_rate": "105"})
    assert info.value.errors["appear_rate"].startswith("“行政负责人出庭应诉率”是百分比，不能大于100%，您填写的是“105”。")
    F.save_figures(govern, world.liaisons["sfj"], {"appear_rate": "100%"})
    db.session.commit()
    response = login(world.liaisons["sfj"]).post(f"/figures/contribution/{govern.id}", data={
        **{f"value-{k}": v for k, v in good_values()["sfj"].items() if k not in ("inspections_total", "inspections",
                                                                              "lenient_total", "no_penalty", "reduced",
                                                                              "lighter", "no_coercion")},
        "value-appear_rate": "105"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "不能大于100%" in page and 'value="105"' in page
    row = db.session.scalar(select(IndicatorValue).where(IndicatorValue.contribution_id == govern.id,
                                                         IndicatorValue.indicator.has(code="appear_rate")))
    assert row.value == 100


def test_a_percent_with_a_maximum_set_by_the_admin_may_pass_100(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    rate = db.session.scalar(select(Indicator).where(Indicator.cycle_id == world.cycle.id,
                                                     Indicator.code == "appear_rate"))
    rate.maximum = 300
    F.save_figures(world.contribution_of("sfj", "govern"), world.liaisons["sfj"], {"appear_rate": "150"})
    with pytest.raises(F.FigureFormError, match="不能大于300%"):
        F.save_figures(world.contribution_of("sfj", "govern"), world.liaisons["sfj"], {"appear_rate": "301"})


BODIES = {("sfj", "enforce"): "全区涉企检查{{sum(inspections)}}次。司法局检查{{inspections}}次。",
          ("town_a", "enforce"): "本镇检查{{inspections}}次。",
          ("town_b", "enforce"): "本街道检查{{inspections}}次。"}


def test_only_the_sentences_that_change_are_listed_with_before_and_after(db, factory, login):
    world = build_seed_world(db, factory, values=good_values())
    for (unit, section), body in BODIES.items():
        contribution = world.contribution_of(unit, section)
        C.save_draft(contribution, world.liaisons[unit], body)
        C.submit_contribution(contribution, world.liaisons[unit])
        C.approve_contribution(contribution, world.reviewer)
    town_b = world.contribution_of("town_b", "enforce")
    C.reopen_contribution(town_b, world.admin, comment="核对")
    # Saved directly: the sum rule would (rightly) refuse this number at submission.
    row = db.session.scalar(select(IndicatorValue).where(IndicatorValue.contribution_id == town_b.id))
    row.value = 1200
    db.session.flush()
    [change] = F.changes_after_approval(world.cycle)
    assert (change.old, change.new) == (1000, 1200)
    listed = [(c.unit.name, before, after) for c, before, after in change.sentences]
    assert listed == [("区司法局", "全区涉企检查3812次。", "全区涉企检查4012次。"),
                      ("龙光桥街道", "本街道检查1000次。", "本街道检查1200次。")]
    cycle_ops.compile_cycle(world.cycle, world.admin, force_reason="龙光桥街道核对数字，先行汇总")
    db.session.commit()
    page = login(world.admin).get(f"/compile/{world.cycle.id}").get_data(as_text=True)
    card = re.sub(r"\s+", "", text(page.split('id="figure-changes"')[1].split("\n</div>")[0]))
    assert "通过时：全区涉企检查3812次。修改后：全区涉企检查4012次。" in card
    assert "本镇检查" not in card and "司法局检查1500次" not in card  # their printed text did not change
