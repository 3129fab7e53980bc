"""The 统一身份认证 button in Debian's Chromium: the app, the provider and back, over real HTTP."""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from .people import person, two_regions

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--lang=zh-CN"]


@pytest.fixture()
def chromium():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")  # fails in CI
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


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
