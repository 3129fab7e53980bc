"""The unit that broke a cross-unit rule is the one told: its own submit is refused with the rule and the
arithmetic (its own number shown, the others' hidden); the lead unit is not blocked and sees which
unit's number changed last; the reviewer sees the whole arithmetic on the review page."""
import re

import pytest

from fazhi_flow.errors import DomainError
from fazhi_flow.services import contributions as C
from fazhi_flow.services import figures as F

from .conftest import build_seed_world, good_values

NOTE = "最近修改的是龙光桥街道的“涉企检查次数”，请该单位核对。"


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


@pytest.fixture()
def broken(db, factory):
    """All figures fine, then 龙光桥街道 changes 1000 to 1001: the district total no longer adds up."""
    world = build_seed_world(db, factory, values=good_values())
    F.save_figures(world.contribution_of("town_b", "enforce"), world.liaisons["town_b"], {"inspections": "1001"})
    for unit in ("sfj", "town_b"):
        C.save_draft(world.contribution_of(unit, "enforce"), world.liaisons[unit], "开展入企检查。")
    db.session.commit()
    return world


def submit(world, *units):
    for unit in units:
        contribution = world.contribution_of(unit, "enforce")
        C.save_draft(contribution, world.liaisons[unit], "开展入企检查。")
        C.submit_contribution(contribution, world.liaisons[unit])
        assert contribution.state == "submitted"


def test_the_support_unit_is_refused_with_the_rule_and_its_own_number(broken):
    submit(broken, "sfj", "town_a")  # other units' figures count for town_b once submitted
    town = broken.contribution_of("town_b", "enforce")
    with pytest.raises(DomainError) as info:
        C.submit_contribution(town, broken.liaisons["town_b"])
    message = info.value.message
    assert "全区涉企检查次数应等于各单位之和：数字对不上：" in message
    assert "各单位涉企检查次数合计（本单位1001，其他单位〔待汇总〕）" in message and NOTE in message
    assert "3812" not in message and "1500" not in message
    assert town.state == "draft" and town.revisions == []


def test_the_lead_is_not_blocked_and_sees_whose_number_disagrees(broken, login):
    lead = broken.contribution_of("sfj", "enforce")
    client, path = login(broken.liaisons["sfj"]), f"/figures/contribution/{lead.id}"
    page = text(client.get(path).get_data(as_text=True))
    assert NOTE not in page and "1001" not in page and "3813" not in page  # drafts stay hidden
    submit(broken, "town_a", "town_b")  # allowed: the lead's figure was still a draft
    assert NOTE in text(client.get(path).get_data(as_text=True))
    C.submit_contribution(lead, broken.liaisons["sfj"])
    assert lead.state == "submitted"


def test_the_reviewer_sees_the_arithmetic_and_the_unit_on_the_review_page(broken, login, db):
    lead = broken.contribution_of("sfj", "enforce")
    C.submit_contribution(lead, broken.liaisons["sfj"])
    db.session.commit()
    page = text(login(broken.reviewer).get(f"/review/{lead.id}").get_data(as_text=True))
    assert "（区司法局1500 + 八字哨镇1312 + 龙光桥街道1001 = 3813），两者相差1。" + NOTE in page


def test_fixing_the_number_lets_the_support_unit_submit(broken):
    town = broken.contribution_of("town_b", "enforce")
    F.save_figures(town, broken.liaisons["town_b"], {"inspections": "1000"})
    C.submit_contribution(town, broken.liaisons["town_b"])
    assert town.state == "submitted"
