"""我的任务, the editor, 待审核 and the review page load in a fixed number of queries however large the
cycle, with texts citing own, cross-section and sum() figures; their templates never lazy-load."""
from __future__ import annotations

import pytest

from fazhi_flow.testing import (
    FreshUserClient,
    LazyLoadDuringRender,
    count_queries,
    login,
    no_lazy_loads_while_rendering,
)

from .world import build_world

SMALL = (3, 4)
LARGE = (30, 12)


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _get(client, db, url):
    client.get(url)  # warm up what every request loads once (the user, the nav)
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:800])
    return len(statements), response.get_data(as_text=True)


def _span(code, value):
    return f'<span class="bound-number" title="{code}">{value}</span>'


# page -> (viewer, url, text the page must show: a figure its text cites, printed from the value)
PAGES = {
    # Unit 1's own figure in section 0 is 10 + 1 + 0; the preview prints it.
    "tasks": lambda w: (w.liaison(1), "/tasks/", "本单位今年办理案件11件"),
    # Submitted, so shown as text, its own figure printed from the value.
    "editor": lambda w: (w.liaison(1), f"/tasks/{w.contribution_id(1, 0)}", _span("c0", "11")),
    # A draft of the lead unit: the form keeps the citations; the summary lists its two indicators.
    "editor-lead": lambda w: (w.liaison(0), f"/tasks/{w.contribution_id(0, 0)}", "{{sum(c0)}}"),
    "queue": lambda w: (w.reviewer, "/review/", "本单位今年办理案件"),
    "review": lambda w: (w.reviewer, f"/review/{w.first('submitted')}", _span("l1", "3")),
    "review-admin": lambda w: (w.admin, f"/review/{w.first('submitted')}", "统计数据校验"),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_query_count_does_not_grow_with_the_cycle(app, db, page):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size)
        user, url, shown = PAGES[page](world)
        counts[size], html = _get(_client(app, user), db, url)
        assert shown in html, (page, size)
    assert counts[SMALL] == counts[LARGE], counts


def test_editor_with_last_years_material_in_fixed_queries(app, db):
    """Last year's approved material of the section (every unit on it) beside the draft."""
    counts = {}
    for size in (SMALL, LARGE):
        last = build_world(db, *size, year=2023, states=("approved",))
        world = build_world(db, *size)
        world.cycle.cloned_from_id = last.cycle.id
        db.session.commit()
        client = _client(app, world.liaison(1))
        url = f"/tasks/{world.contribution_id(1, 0)}"
        with no_lazy_loads_while_rendering(app, db.session):
            counts[size], html = _get(client, db, url)
        assert "上年度通过的材料（2023年）" in html
        assert html.count("<summary>规模单位") == size[0]
    assert counts[SMALL] == counts[LARGE], counts


@pytest.mark.parametrize("page", sorted(PAGES))
def test_templates_do_not_lazy_load(app, db, page):
    world = build_world(db, *SMALL)
    user, url, shown = PAGES[page](world)
    client = _client(app, user)
    with no_lazy_loads_while_rendering(app, db.session):
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert shown in response.get_data(as_text=True)


def test_the_guard_catches_a_lazy_load(app, db):
    """The check above would see a template that reaches an unloaded relationship."""
    from flask import render_template_string
    from sqlalchemy import select

    from fazhi_flow.models import Contribution

    world = build_world(db, *SMALL)
    db.session.expunge_all()
    contribution = db.session.scalar(select(Contribution).where(Contribution.id == world.contribution_id(0, 0)))
    with app.test_request_context(), no_lazy_loads_while_rendering(app, db.session), \
            pytest.raises(LazyLoadDuringRender):
        render_template_string("{{ c.unit.name }}", c=contribution)


@pytest.mark.parametrize("viewer", ["reviewer", "admin"])
def test_a_value_changed_after_approval_is_shown_in_fixed_queries(app, db, viewer):
    """The review page lists the sentences of every text citing a value changed after approval (each
    citing unit's text is read): the texts come with the figures' batch, not one query per text."""
    from sqlalchemy import text

    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size)
        in_section = {cid: world.states[cid] for (_u, s), cid in world.contribution_ids.items() if s == 0}
        approved = next(cid for cid, state in in_section.items() if state == "approved")
        submitted = next(cid for cid, state in in_section.items() if state == "submitted")
        changed = db.session.execute(text(
            "UPDATE indicator_value SET value = value + 5 WHERE contribution_id = :c AND approved_value IS NOT NULL "
            "AND indicator_id = (SELECT id FROM indicator WHERE cycle_id = :cy AND code = 'c0')"),
            {"c": approved, "cy": world.cycle.id}).rowcount
        db.session.commit()
        assert changed == 1
        counts[size], html = _get(_client(app, getattr(world, viewer)), db, f"/review/{submitted}")
        assert "通过后又修改的数值" in html, size
    assert counts[SMALL] == counts[LARGE], counts
