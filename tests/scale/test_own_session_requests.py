"""Requests as a real server makes them: each pushes its own application context, so its database
session ends with it and its last commit expires nothing (web/handler.py). The heavy pages, a draft
save and the page after it are answered as within a test's shared session."""
from __future__ import annotations

import re
import threading

from sqlalchemy import text

from .test_page_queries import PAGES, _client
from .world import build_world


def _in_own_context(work):
    """Run ``work()`` in a thread: it starts with no application context, as a server's worker does."""
    out, errors = [], []

    def run():
        try:
            out.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return out[0]


def test_heavy_pages_and_a_save_in_sessions_of_their_own(app, db):
    world = build_world(db, 4, 4)
    for page, spec in sorted(PAGES.items()):
        user, url, shown = spec(world)
        client = _client(app, user)
        status, html = _in_own_context(lambda: (lambda r: (r.status_code, r.get_data(as_text=True)))(client.get(url)))
        assert status == 200 and shown in html, page

    liaison, cid = world.liaison(0), world.first("draft", unit=0)
    client = _client(app, liaison)

    def save_then_reopen():
        page = client.get(f"/tasks/{cid}").get_data(as_text=True)
        version = int(re.search(r'name="version"[^>]*value="(\d+)"', page).group(1))
        saved = client.post(f"/tasks/{cid}", data={"body": "本单位今年办理案件{{c0}}件。第二稿。", "version": version,
                                                   "action": "save"})
        again = client.get(f"/tasks/{cid}").get_data(as_text=True)
        return saved.status_code, again

    status, again = _in_own_context(save_then_reopen)
    assert status in (302, 303)
    assert "第二稿" in again
    stored = db.session.execute(text("SELECT body, version FROM contribution WHERE id = :c"), {"c": cid}).one()
    assert stored.body == "本单位今年办理案件{{c0}}件。第二稿。"
