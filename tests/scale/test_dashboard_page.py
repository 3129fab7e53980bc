"""The dashboard at scale: fixed queries with a world whose texts cite figures, no lazy loads while the
template renders, and every cell's link (written from one prefix, not a url_for per cell) the same
as url_for gives."""
from __future__ import annotations

import re

from flask import url_for

from .test_compile_queries import LARGE, SMALL, _client, _get, no_lazy_loads_while_rendering
from .world import build_world


def test_query_count_does_not_grow_with_the_cycle(app, db):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size)
        url = f"/dashboard/?cycle={world.cycle.id}"
        clients = {"admin": _client(app, world.admin), "liaison": _client(app, world.liaison(1))}
        for who, client in clients.items():
            counts[size, who], html = _get(client, db, url)
            assert html.count('<th class="unit" scope="row">') == (size[0] if who == "admin" else 1)
    for who in ("admin", "liaison"):
        assert counts[SMALL, who] == counts[LARGE, who], counts


def test_no_lazy_loads_while_rendering(app, db):
    world = build_world(db, *SMALL)
    client, url = _client(app, world.admin), f"/dashboard/?cycle={world.cycle.id}"
    db.session.remove()
    with no_lazy_loads_while_rendering(app, db.session):
        response = client.get(url)
    assert response.status_code == 200


def test_cell_links_are_the_ones_url_for_builds(app, db):
    world = build_world(db, 5, 6)
    cases = [(world.admin, "review.show", world.contribution_ids.items()),
             (world.leader, "review.show", world.contribution_ids.items()),
             (world.liaison(2), "tasks.edit", [(k, v) for k, v in world.contribution_ids.items() if k[0] == 2]),
             (world.reviewer, None, [])]
    for user, endpoint, cells in cases:
        html = _client(app, user).get(f"/dashboard/?cycle={world.cycle.id}").get_data(as_text=True)
        matrix = html[html.index('<table class="matrix">'):html.index("</table>")]
        links = re.findall(r'<a href="([^"]+)" aria-label="[^"]+">', matrix)
        with app.test_request_context():
            expected = sorted(url_for(endpoint, contribution_id=cid) for _cell, cid in cells) if endpoint else []
        assert sorted(links) == expected, user.username
