"""The 统一身份认证 button in Debian's Chromium: the app, the provider and back, over real HTTP."""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from .people import person, two_regions

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture()
def chromium(request):
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")  # fails in CI
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    # The run's one Chromium (tests/conftest.py): a second Playwright beside it cannot start.
    return request.getfixturevalue("browser")


@pytest.fixture()
def live_server(app, db):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    db.session.commit()  # the browser's requests must not wait for this session's SQLite lock
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        db.session.remove()


def test_the_button_logs_in_through_the_provider(chromium, db, provider, live_server, monkeypatch):
    hs, _zy, units = two_regions(db)
    user = person(db, hs, units["430903"], "hs_sfj", "赫山司法局联络员", must_change_password=True)
    db.session.commit()
    monkeypatch.setattr(provider, "redirect_uri", f"{live_server}/login/oidc/callback")
    provider.account = {"sub": "hs-ids-42", "preferred_username": "hs_sfj"}
    context = chromium.new_context(base_url=live_server, locale="zh-CN")
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto("/login?next=/inbox/")
        page.click("a:has-text('统一身份认证登录')")
        page.wait_for_url(f"{live_server}/inbox/")
        assert "赫山司法局联络员" in page.inner_text(".userbox")
        assert page.locator("a:has-text('修改密码')").count() == 1  # a local password remains usable
        # The provider now answers for someone without an account here.
        page.click("button:has-text('退出登录')")
        provider.account = {"sub": "hs-ids-43", "preferred_username": "nobody_here"}
        page.goto("/login")
        page.click("a:has-text('统一身份认证登录')")
        page.wait_for_url(f"{live_server}/login")
        assert "没有与统一身份认证账号对应的用户，请联系管理员" in page.inner_text("body")
    finally:
        context.close()
    db.session.expire_all()
    assert user.sso_subject == "hs-ids-42"


def _axe_js() -> str:
    named = os.environ.get("FAZHI_AXE_JS", "").strip()
    for candidate in (named, f"{named}/axe.min.js", f"{named}/node_modules/axe-core/axe.min.js") if named else ():
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as handle:
                return handle.read()
    pytest.skip("axe-core not found: set FAZHI_AXE_JS (see README)")  # a failure in CI


AXE_RUN = """
async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
  .filter((v) => v.impact === "serious" || v.impact === "critical")
  .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(" | ")}`)
"""


def test_the_login_page_with_both_methods_fits_and_passes_axe(chromium, db, provider, live_server, app,
                                                              monkeypatch):
    axe = _axe_js()
    monkeypatch.setitem(app.config, "LDAP_URL", "ldap://127.0.0.1:1")
    for viewport in ({"width": 390, "height": 844}, {"width": 1366, "height": 768}):
        context = chromium.new_context(base_url=live_server, locale="zh-CN", viewport=viewport)
        try:
            page = context.new_page()
            page.goto("/login")
            button = page.locator("a:has-text('统一身份认证登录')")
            assert button.is_visible() and button.bounding_box()["x"] + button.bounding_box()["width"] <= viewport["width"]
            assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
            page.evaluate(axe)  # evaluated, not a <script>: the site's CSP rightly forbids inline scripts
            assert page.evaluate(AXE_RUN) == [], viewport
        finally:
            context.close()
