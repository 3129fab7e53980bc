"""A real server on 127.0.0.1 and Debian's Chromium driven by Playwright.

Without /usr/bin/chromium or the playwright package the browser tests are skipped with the reason;
with CI=true they fail instead, so CI can never pass without running them.
"""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() == "true"
# The user guide's screenshots are refreshed only on request (FAZHI_UPDATE_SCREENSHOTS=1); an ordinary
# run writes them to a temporary folder, so running the tests leaves the working tree clean.
GUIDE_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--lang=zh-CN"]


def _unavailable() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _unavailable()
    if reason is None:
        return
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            if IN_CI:
                item.fixturenames.insert(0, "_fail_without_browser")
            else:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


@pytest.fixture()
def _fail_without_browser():
    pytest.fail(f"CI=true but browser tests cannot run: {_unavailable()}")


@pytest.fixture()
def live_server(app, db):
    """Serve ``app`` (on the test database) from a thread; yields the base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The test's own session must not hold SQLite's write lock while the browser works.
    db.session.commit()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        db.session.remove()


# The session's one Chromium (``browser``) is in tests/conftest.py: Playwright's sync API runs one
# instance per thread at a time, so tests in other folders (tests/api, tests/sso) must share it.


class Person:
    """One user in their own browser context (own cookies), with a few helpers."""

    def __init__(self, browser, base_url: str, username: str, password: str, screenshots: Path):
        self.screenshots = screenshots
        self.context = browser.new_context(base_url=base_url, locale="zh-CN", viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15000)
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.username, self.password = username, password

    def login(self):
        page = self.page
        page.goto("/login")
        page.fill("#username", self.username)
        page.fill("#password", self.password)
        page.click("button:has-text('登录')")
        page.wait_for_load_state()
        return page

    def shot(self, name: str):
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)

    def close(self):
        self.context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    if os.environ.get("FAZHI_UPDATE_SCREENSHOTS") == "1":
        return GUIDE_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture()
def person(browser, live_server, db, screenshot_dir):
    people = []

    def _make(user, password="secret-Pass1"):
        username = user.username
        db.session.commit()  # reading an expired attribute began a transaction: end it (SQLite lock)
        p = Person(browser, live_server, username, password, screenshot_dir)
        people.append(p)
        return p

    yield _make
    for p in people:
        p.close()
