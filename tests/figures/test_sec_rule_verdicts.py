"""Rule verdicts never reveal another unit's unsubmitted figures: for a liaison, another unit's values
count only once that unit has submitted them (or had them approved). A draft of 区司法局 neither flips
八字哨镇's verdict nor shows in a message ("最近修改的是区司法局…", "（待区司法局填报）"), so re-saving its
own number cannot be used to find another unit's; rules made only of other units' figures are not shown
to it at all. The office keeps the full arithmetic."""
import re

import pytest

from fazhi_flow.figures.evaluate import NOT_YET_CHECKABLE
from fazhi_flow.services import contributions as C
from fazhi_flow.services import figures as F

from .conftest import build_seed_world, good_values

SECRET = "777777"
SUM_RULE = "inspections_total = sum(inspections)"
DRAFT_TELLS = ("最近修改的是区司法局", "待区司法局填报", "待龙光桥街道填报", "未通过", "数字对不上")


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


@pytest.fixture()
def world(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    world.town = world.contribution_of("town_a", "enforce")
    world.lead = world.contribution_of("sfj", "enforce")
    C.save_draft(world.town, world.liaisons["town_a"], "开展入企检查。")
    db.session.commit()
    return world


def verdicts(world, viewer=None):
    """(expression, status, message) of every rule result the viewer is shown for 八字哨镇's material."""
    report = F.contribution_figures(world.town, viewer or world.liaisons["town_a"])
    return [(r.rule.expression, r.status, r.full_message) for r in report.results]


def town_pages(world, login) -> str:
    client, c = login(world.liaisons["town_a"]), world.town.id
    pages = [client.get(p) for p in (f"/figures/contribution/{c}", f"/figures/contribution/{c}/checks",
                                     f"/tasks/{c}/submit")]
    assert [p.status_code for p in pages] == [200, 200, 200]
    return "".join(text(p.get_data(as_text=True)) for p in pages)


def test_another_units_draft_changes_nothing_the_liaison_is_shown(world, db, login):
    before, page_before = verdicts(world), town_pages(world, login)
    assert [(e, s) for e, s, _ in before] == [(SUM_RULE, "incomplete")]
    assert NOT_YET_CHECKABLE in before[0][2]
    for draft in (SECRET, "", "3812"):  # a wrong draft, a cleared one, a right one: all read alike
        F.save_figures(world.lead, world.liaisons["sfj"], {"inspections_total": draft})
        db.session.commit()
        assert verdicts(world) == before, draft
        page = town_pages(world, login)
        assert page == page_before, draft
        assert not [t for t in DRAFT_TELLS + (SECRET, "777,777") if t in page], draft


def test_re_saving_its_own_number_cannot_probe_a_draft(world, db):
    F.save_figures(world.lead, world.liaisons["sfj"], {"inspections_total": SECRET})
    db.session.commit()
    seen = set()
    for guess in ("1312", str(777777 - 2500), "0"):  # the number that would make the sum agree is among them
        F.save_figures(world.town, world.liaisons["town_a"], {"inspections": guess})
        seen |= {(s, m.replace(guess, "N")) for _, s, m in verdicts(world)}
    assert len(seen) == 1 and next(iter(seen))[0] == "incomplete"


def test_a_unit_review_is_still_inside_the_unit(world, db):
    world.lead.state = "unit_review"  # waiting for its own unit head: not yet handed over
    world.contribution_of("town_b", "enforce").state = "submitted"
    db.session.flush()
    assert [s for _, s, _ in verdicts(world)] == ["incomplete"]


def test_submitted_figures_give_the_verdict(world, db):
    for unit in ("sfj", "town_b"):
        contribution = world.contribution_of(unit, "enforce")
        C.save_draft(contribution, world.liaisons[unit], "开展入企检查。")
        C.submit_contribution(contribution, world.liaisons[unit])
    db.session.commit()
    assert [(e, s) for e, s, _ in verdicts(world)] == [(SUM_RULE, "ok")]
    F.save_figures(world.town, world.liaisons["town_a"], {"inspections": "1313"})
    [(_, status, message)] = verdicts(world)
    assert status == "failed" and "本单位1313，其他单位〔待汇总〕" in message and "3812" not in message
    assert "最近修改的是八字哨镇" in message


def test_rules_of_other_units_figures_only_are_not_shown(world, login):
    shown = [e for e, _, _ in verdicts(world)]
    assert shown == [SUM_RULE]  # not lenient_total = …, which only 区司法局 enters
    page = town_pages(world, login)
    assert "lenient_total" not in page and "no_penalty" not in page


def test_the_office_keeps_the_full_arithmetic_on_drafts(world, db):
    F.save_figures(world.lead, world.liaisons["sfj"], {"inspections_total": SECRET})
    db.session.commit()
    results = {e: (s, m) for e, s, m in verdicts(world, world.reviewer)}
    assert "lenient_total = no_penalty + reduced + lighter + no_coercion" in results
    status, message = results[SUM_RULE]
    assert status == "failed" and SECRET in message.replace(",", "")
    assert "区司法局1500 + 八字哨镇1312 + 龙光桥街道1000 = 3812" in message
