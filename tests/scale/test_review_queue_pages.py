"""待审核 in pages of 50: the same rows in the same order as the whole list, the filters kept in the
page links, a malformed or too large page number answered with a page rather than an error."""
from __future__ import annotations

import html
import re

from fazhi_flow.pages.review import PAGE_SIZE, reviewable_submissions
from fazhi_flow.testing import FreshUserClient, login

from .world import build_world


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def _link(page: str, rel: str) -> str | None:
    found = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


def test_the_queue_pages_through_every_row_in_order(app, db):
    world = build_world(db, 30, 12)
    expected = [c.id for c in reviewable_submissions(world.reviewer)]
    assert len(expected) == 90 > PAGE_SIZE
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, world.reviewer)

    first = client.get("/review/").get_data(as_text=True)
    assert "共 90 份" in first
    assert _ids(first) == expected[:PAGE_SIZE]
    assert _link(first, "prev") is None
    assert "第1页，共2页" in first
    second = client.get(_link(first, "next")).get_data(as_text=True)
    assert _ids(second) == expected[PAGE_SIZE:]
    assert _link(second, "next") is None
    assert _link(second, "prev") in ("/review/", "/review/?")

    # A filter stays in the page links.
    filtered = client.get(f"/review/?cycle={world.cycle.id}").get_data(as_text=True)
    link = _link(filtered, "next")
    assert f"cycle={world.cycle.id}" in link and "page=2" in link
    assert _ids(client.get(link).get_data(as_text=True)) == expected[PAGE_SIZE:]

    # Nonsense and numbers beyond the last page give the first and the last page.
    for raw, want in (("abc", expected[:PAGE_SIZE]), ("-1", expected[:PAGE_SIZE]), ("0", expected[:PAGE_SIZE]),
                      ("999", expected[PAGE_SIZE:]), ("99999999999999999999", expected[:PAGE_SIZE])):
        response = client.get(f"/review/?page={raw}")
        assert response.status_code == 200, raw
        assert _ids(response.get_data(as_text=True)) == want, raw


def test_a_short_queue_has_no_page_links(app, db):
    world = build_world(db, 3, 4)
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, world.reviewer)
    page = client.get("/review/").get_data(as_text=True)
    assert _ids(page) == [c.id for c in reviewable_submissions(world.reviewer)]
    assert _link(page, "next") is None and _link(page, "prev") is None and "共1页" not in page
