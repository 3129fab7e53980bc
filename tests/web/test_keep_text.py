"""A 保存草稿 that cannot be accepted (expired page, lost login) never loses the typed text.

These tests run an app with CSRF protection on, as in production (the ``csrf_app`` fixture).
"""
from __future__ import annotations

import html

from fazhi_flow.models import Contribution, User

from .conftest import PASSWORD

TYPED = "今年新办行政复议案件58件，全部在法定期限内审结。\n<b>不是标签</b>"


def _token(page: str) -> str:
    for marker in ('name="csrf_token" type="hidden" value="', 'name="csrf_token" value="'):
        if marker in page:
            return page.split(marker, 1)[1].split('"', 1)[0]
    raise AssertionError("no CSRF token on the page")


def _login(client, username):
    token = _token(client.get("/login").get_data(as_text=True))
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302


def _textarea(page: str, ident: str = "body") -> str:
    start = page.index(f'id="{ident}"')
    return html.unescape(page[start:].split(">", 1)[1].split("</textarea>", 1)[0]).lstrip("\r\n")


def _body(db, cid):
    db.session.expire_all()
    body = db.session.get(Contribution, cid).body
    db.session.commit()  # end the read: the other app's requests write to the same SQLite file
    return body


def test_expired_token_brings_the_editor_back_with_the_typed_text(csrf_app, world, db):
    username, cid, version, before = (world.liaison.username, world.contribution.id, world.contribution.version,
                                      world.contribution.body)
    db.session.commit()
    client = csrf_app.test_client()
    _login(client, username)
    r = client.post(f"/tasks/{cid}", data={"body": TYPED, "version": version, "csrf_token": "expired-token"})
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert "页面已过期" in page and "还没有保存" in page and "保存草稿" in page
    assert _textarea(page) == TYPED  # the text is back in the editor, escaped
    assert "<b>不是标签</b>" not in page
    assert _body(db, cid) == before
    db.session.commit()
    # Saving again from this page (its fresh token) stores exactly what was typed.
    r = client.post(f"/tasks/{cid}", data={"body": _textarea(page), "version": version,
                                           "csrf_token": _token(page)})
    assert r.status_code == 302
    assert _body(db, cid) == TYPED


def test_lost_session_shows_the_text_to_copy_and_a_way_back(csrf_app, world, db):
    cid, before = world.contribution.id, world.contribution.body
    db.session.commit()
    client = csrf_app.test_client()  # no session cookie at all: it expired
    r = client.post(f"/tasks/{cid}", data={"body": TYPED, "version": "1", "csrf_token": "old"})
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert "内容没有保存" in page and _textarea(page, "rescued-text") == TYPED
    assert f'href="/login?next=/tasks/{cid}"' in html.unescape(page)
    # Nothing of the material itself is shown to somebody not logged in.
    assert before not in page and world.section.title not in page
    assert _body(db, cid) == before


def test_logged_out_elsewhere_keeps_the_text(csrf_app, world, db):
    username, cid, version, before = (world.liaison.username, world.contribution.id, world.contribution.version,
                                      world.contribution.body)
    db.session.commit()
    client = csrf_app.test_client()
    _login(client, username)
    token = _token(client.get(f"/tasks/{cid}").get_data(as_text=True))
    # Logging out on another computer rotates the session token: this cookie no longer logs in.
    user = db.session.get(User, world.liaison.id)
    user.rotate_session_token()
    db.session.commit()
    r = client.post(f"/tasks/{cid}", data={"body": TYPED, "version": version, "csrf_token": token})
    assert r.status_code == 401
    page = r.get_data(as_text=True)
    assert "登录已超时" in page and _textarea(page, "rescued-text") == TYPED
    assert _body(db, cid) == before
    # A plain visit still goes to the login page.
    assert client.get(f"/tasks/{cid}").status_code == 302


def test_another_units_editor_is_never_shown_on_an_expired_post(csrf_app, world, db):
    username, cid, before = world.other_liaison.username, world.contribution.id, world.contribution.body
    db.session.commit()
    client = csrf_app.test_client()
    _login(client, username)
    r = client.post(f"/tasks/{cid}", data={"body": TYPED, "version": "1", "csrf_token": "bad"})
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert before not in page and 'id="body"' not in page
    assert _body(db, cid) == before


def test_other_forms_of_the_area_get_the_plain_refusal(csrf_app, world, db):
    username, cid, version = world.liaison.username, world.contribution.id, world.contribution.version
    db.session.commit()
    client = csrf_app.test_client()
    _login(client, username)
    r = client.post(f"/tasks/{cid}/submit", data={"version": version})
    assert r.status_code == 400 and "安全校验" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Contribution, cid).state == "draft"


def test_editor_textarea_carries_the_browser_backup_hooks(as_user, world):
    page = as_user(world.liaison).get(f"/tasks/{world.contribution.id}").get_data(as_text=True)
    assert f'data-backup-key="{world.liaison.id}:{world.contribution.id}"' in page
    assert 'id="draft-backup" hidden' in page and "data-backup-restore" in page
