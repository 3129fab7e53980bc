"""The compile pages (汇总编辑, 全文预览, 签发, draft downloads) load in a fixed number of queries however
large the cycle, with texts citing own, cross-section and sum() figures; their templates never
lazy-load; the merged text is the same as merging section by section without the bulk load."""
from __future__ import annotations

import pytest

from fazhi_flow.testing import (
    FreshUserClient,
    count_queries,
    login,
    no_lazy_loads_while_rendering,
)

from .world import build_world

SMALL = (3, 4)
LARGE = (24, 12)


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _get(client, db, url):
    client.get(url)  # warm up what every request loads once (the user, the nav)
    db.session.remove()  # a request starts with an empty session, not the test's loaded objects
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:800])
    return len(statements), response.get_data(as_text=True)


PAGES = {
    "edit": lambda w: (w.admin, f"/compile/{w.cycle.id}"),
    "preview": lambda w: (w.admin, f"/compile/{w.cycle.id}/preview"),
    "signoff": lambda w: (w.leader, f"/compile/{w.cycle.id}/signoff"),
    "draft-txt": lambda w: (w.admin, f"/compile/{w.cycle.id}/draft.txt"),
    "draft-html": lambda w: (w.admin, f"/compile/{w.cycle.id}/draft.html"),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_query_count_does_not_grow_with_the_cycle(app, db, page):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size, cycle_state="compiling")
        user, url = PAGES[page](world)
        counts[size], html = _get(_client(app, user), db, url)
        # The approved numbers are printed: the citations were resolved, not skipped.
        assert "全区合计" in html and "{{" not in html
    assert counts[SMALL] == counts[LARGE], counts


@pytest.mark.parametrize("page", ["edit", "preview", "signoff"])
def test_templates_do_not_lazy_load(app, db, page):
    world = build_world(db, *SMALL, cycle_state="compiling")
    user, url = PAGES[page](world)
    client = _client(app, user)
    db.session.remove()  # a request starts with an empty session, not the test's loaded objects
    with no_lazy_loads_while_rendering(app, db.session):
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    assert "bound-number" in response.get_data(as_text=True) or page != "edit"


def test_current_document_in_fixed_queries_and_the_same_text(app, db):
    """current_document: constant queries, and the text merging one section at a time gives."""
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.publish.merge import assemble
    from fazhi_flow.publish.numbers import ApprovedTexts
    from fazhi_flow.publish.text import render_text
    from fazhi_flow.services import compile as svc

    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size, cycle_state="compiling")
        cycle_id = world.cycle.id
        db.session.expunge_all()  # start cold, as a request does
        cycle = db.session.get(ReportCycle, cycle_id)
        with count_queries(db.engine) as statements:
            document = svc.current_document(cycle)
        counts[size] = len(statements)
        db.session.expunge_all()
        cycle = db.session.get(ReportCycle, cycle_id)
        # The reference: the plain merge, lazy loads and every figure of the book.
        expected = render_text(assemble(cycle, numbers=ApprovedTexts(cycle)))
        assert render_text(document) == expected
        assert "全区合计" in expected
    assert counts[SMALL] == counts[LARGE], counts
