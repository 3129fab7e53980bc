"""The editor's card 同一章节的其他单位: at most OTHER_UNITS_LISTED units listed (lead units first), the
rest counted; the counts by state of all of them; the same queries and about the same size however
many units share the section."""
from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import select, update

from fazhi_flow.testing import FreshUserClient, count_queries, login
from fazhi_flow.web.loading import OTHER_UNITS_LISTED
from fazhi_flow.workflow.states import CONTRIBUTION_STATE_LABELS
from tests.scale.world import build_world

STATES = ("draft", "submitted", "approved", "returned", "unit_review")
ROW = re.compile(r'<li><span>(\S+) <span class="role-(lead|support)">')


def _world(db, units: int, *, leads=()):
    """One section shared by ``units`` units; unit 0 leads it, and so do the units in ``leads``."""
    from fazhi_flow.models import Assignment

    world = build_world(db, units, 1, states=STATES)
    if leads:
        db.session.execute(update(Assignment).where(Assignment.unit_id.in_([world.unit_ids[u] for u in leads]))
                           .values(role="lead"))
        db.session.commit()
    return world


def _name(unit: int) -> str:
    return f"规模单位{unit + 1:03d}"  # as build_world names the ``unit``-th unit


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _card(html: str) -> str:
    start = html.index("<h2>同一章节的其他单位</h2>")
    return html[start:html.index("</div>", start)]


def _editor(app, db, world, unit: int = 1, viewer=None) -> tuple[str, int]:
    """The card of the ``unit``-th unit's editor and the number of queries of the page."""
    client = _client(app, viewer or world.liaison(unit))
    url = f"/tasks/{world.contribution_id(unit, 0)}"
    client.get(url)  # warm up what every request loads once
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    return _card(response.get_data(as_text=True)), len(statements)


def _expected_summary(db, world, unit: int = 1) -> str:
    """The summary line, from the states of the other units' contributions as stored."""
    from fazhi_flow.models import Contribution

    own = world.contribution_id(unit, 0)
    states = Counter(db.session.scalars(
        select(Contribution.state).where(Contribution.section_id == world.section_ids[0], Contribution.id != own)))
    parts = [f"{label} {states[state]:,}" for state, label in CONTRIBUTION_STATE_LABELS.items() if states[state]]
    return f"共 {sum(states.values()):,} 个单位：" + "、".join(parts)


def test_many_units_list_the_leads_first_and_count_the_rest(app, db):
    units = OTHER_UNITS_LISTED + 31
    leads = (units - 11, units - 4)  # beyond the first rows by id: listed only because they lead
    world = _world(db, units, leads=leads)
    card, _ = _editor(app, db, world)

    rows = ROW.findall(card)
    assert len(rows) == OTHER_UNITS_LISTED
    lead_units = (0, *leads)
    support_units = [u for u in range(2, units) if u not in leads][:OTHER_UNITS_LISTED - len(lead_units)]
    assert rows == [(_name(u), "lead") for u in lead_units] + [(_name(u), "support") for u in support_units]
    hidden = (units - 1) - OTHER_UNITS_LISTED
    assert f"另有 {hidden} 个单位未列出。" in card  # a liaison's 填报进度 shows only the own unit
    assert _expected_summary(db, world) in card
    assert len(set(world.states.values())) == len(STATES)  # every state counted, none left out
    assert all(label in card for label in CONTRIBUTION_STATE_LABELS.values())


def test_the_office_is_pointed_to_the_dashboard(app, db):
    world = _world(db, OTHER_UNITS_LISTED + 3)
    card, _ = _editor(app, db, world, viewer=world.admin)
    assert "另有 2 个单位未列出，见“填报进度”。" in card
    assert len(ROW.findall(card)) == OTHER_UNITS_LISTED


def test_few_units_are_all_listed(app, db):
    world = _world(db, 5)
    card, _ = _editor(app, db, world, unit=2)
    assert ROW.findall(card) == [(_name(0), "lead")] + [(_name(u), "support") for u in (1, 3, 4)]
    assert "未列出" not in card
    assert _expected_summary(db, world, unit=2) in card


def test_a_unit_alone_on_its_section(app, db):
    world = _world(db, 1)
    card, _ = _editor(app, db, world, unit=0)
    assert "本章节只有本单位报送。" in card
    assert ROW.findall(card) == []
    assert "个单位：" not in card and "未列出" not in card


def test_queries_and_size_do_not_grow_with_the_units(app, db):
    cards, counts = {}, {}
    for units in (6, 61, 1201):
        cards[units], counts[units] = _editor(app, db, _world(db, units))
    assert counts[6] == counts[61] == counts[1201], counts
    assert "共 1,200 个单位：" in cards[1201] and "另有 1,170 个单位未列出。" in cards[1201]
    # The same rows and lines, only the numbers in them longer.
    assert abs(len(cards[1201]) - len(cards[61])) < 40, (len(cards[61]), len(cards[1201]))
