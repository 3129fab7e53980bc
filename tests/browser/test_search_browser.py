"""搜索 in a real browser: typed into the header box, the results page fits a phone and a laptop,
its links and marked hits can be seen, and axe-core finds no serious problem (the checks of
test_layout_a11y.py, reused)."""
from __future__ import annotations

from urllib.parse import quote

from tests.browser.test_layout_a11y import BOTH, _report, axe_source, visit  # noqa: F401 - fixtures


def test_search_from_the_header_box(demo, db, visit):  # noqa: F811 - the imported fixture
    liaison = visit("gaj")
    page = liaison.page
    page.goto("/tasks/")
    page.fill("#header-q", "公安")
    page.press("#header-q", "Enter")
    page.wait_for_load_state()
    assert "/search/?q=" in page.url
    assert page.locator("#search-units").is_visible()
    assert page.locator(".search-hits mark", has_text="公安").count() >= 1
    liaison.check("search", f"/search/?q={quote('公安')}", BOTH, actions=[".search-hits mark", "#search-q"])
    liaison.check("search-empty", "/search/", BOTH, actions=["#search-q"])
    admin = visit("admin")
    admin.check("search", f"/search/?q={quote('行政')}", BOTH, actions=[".search-hits a", ".search-hits mark"])
    _report([liaison, admin])
