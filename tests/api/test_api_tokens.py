"""Personal access tokens: made on the token page (shown once, stored as a hash, audited), used as
``Authorization: Bearer``, refused when revoked, expired, or the account is deactivated; a read-only
token only reads; the login session never stands in for a token."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import select

from fazhi_flow.api import tokens as token_svc
from fazhi_flow.models import ApiToken, AuditEvent
from fazhi_flow.timeutil import utcnow

TOKEN_RE = re.compile(r"ffp_[A-Za-z0-9_-]{40,}")


def bearer(text: str) -> dict:
    return {"Authorization": f"Bearer {text}"}


def make(db, user, scope="write", days=30, name="统计系统"):
    row, text = token_svc.create_token(user, name, scope, days)
    db.session.commit()
    return row, text


def test_token_page_shows_the_token_once_and_stores_only_its_hash(world, as_user, client, db):
    as_user(world.liaison)
    name = "统" * token_svc.NAME_MAX  # the longest name allowed
    answer = client.post("/account/tokens/", data={"name": name, "scope": "write", "days": "365"})

    assert answer.status_code == 201
    page = answer.get_data(as_text=True)
    shown = TOKEN_RE.findall(page)
    assert shown, "the new token is shown on the page"
    text = shown[0]
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == world.liaison.id))
    assert row.token_hash == hashlib.sha256(text.encode()).hexdigest()
    assert row.name == name and row.scope == "write" and text.startswith(row.prefix)
    # Nothing stored holds the token text itself.
    assert text not in (row.token_hash, row.prefix, row.name)
    expected_expiry = row.created_at + timedelta(days=365)
    assert abs((row.expires_at - expected_expiry).total_seconds()) < 1
    # Listed afterwards by name and prefix, never the text again.
    listing = client.get("/account/tokens/").get_data(as_text=True)
    assert row.prefix in listing and text not in listing
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.create"))
    assert audit.actor_id == world.liaison.id and text not in str(audit.detail)
    # It works.
    me = client.get("/api/v1/me", headers=bearer(text))
    assert me.status_code == 200 and me.json["username"] == world.liaison.username
    assert me.json["token_scope"] == "write"


def test_token_form_refuses_bad_input_with_messages_and_keeps_it(world, as_user, client, db):
    as_user(world.liaison)
    cases = [
        ({"name": "", "scope": "read", "days": "30"}, "请填写令牌名称"),
        ({"name": "长" * (token_svc.NAME_MAX + 1), "scope": "read", "days": "30"}, "最多60字"),
        ({"name": "脚本", "scope": "read", "days": "0"}, "1到365天"),
        ({"name": "脚本", "scope": "read", "days": "366"}, "1到365天"),
        ({"name": "脚本", "scope": "admin", "days": "30"}, "权限只能是"),
    ]
    for form, message in cases:
        answer = client.post("/account/tokens/", data=form)
        assert answer.status_code == 422, form
        page = answer.get_data(as_text=True)
        assert message in page
        assert form["name"][:10] in page or not form["name"]
    assert db.session.scalar(select(db.func.count()).select_from(ApiToken)) == 0


def test_revoked_expired_and_deactivated_are_401_problems(world, client, db):
    _, revoked = make(db, world.liaison, name="撤销的")
    row_e, expired = make(db, world.liaison, name="过期的")
    _, of_inactive = make(db, world.other_liaison, name="停用账号的")
    _, good = make(db, world.liaison, name="有效的")
    token_svc.revoke_token(world.liaison, db.session.scalar(
        select(ApiToken.id).where(ApiToken.name == "撤销的")))
    row_e.expires_at = utcnow() - timedelta(seconds=1)
    world.other_liaison.active = False
    db.session.commit()

    for text in (revoked, expired, of_inactive, "ffp_" + "x" * 43, good[:-1], ""):
        answer = client.get("/api/v1/cycles", headers=bearer(text))
        assert answer.status_code == 401, text
        assert answer.mimetype == "application/problem+json"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json["status"] == 401 and "令牌" in answer.json["detail"]
    assert client.get("/api/v1/cycles", headers=bearer(good)).status_code == 200


def test_revoking_on_the_page_stops_the_token_and_only_ones_own(world, as_user, client, db):
    mine, text = make(db, world.liaison)
    theirs, other_text = make(db, world.other_liaison)
    as_user(world.liaison)

    refused = client.post(f"/account/tokens/{theirs.id}/revoke")
    assert refused.status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiToken, theirs.id).revoked_at is None
    assert client.get("/api/v1/me", headers=bearer(other_text)).status_code == 200

    done = client.post(f"/account/tokens/{mine.id}/revoke")
    assert done.status_code == 303
    db.session.expire_all()
    assert db.session.get(ApiToken, mine.id).revoked_at is not None
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 401
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.revoke")).actor_id \
        == world.liaison.id


def test_read_scope_reads_but_does_not_write(world, client, db):
    _, text = make(db, world.liaison, scope="read")
    c = world.contribution
    before = (c.body, c.version)

    assert client.get(f"/api/v1/contributions/{c.id}", headers=bearer(text)).status_code == 200
    answer = client.put(f"/api/v1/contributions/{c.id}/draft", headers=bearer(text),
                        json={"body": "只读令牌不能保存的文字。", "version": c.version})
    assert answer.status_code == 403
    assert answer.mimetype == "application/problem+json" and "只读" in answer.json["detail"]
    db.session.expire_all()
    assert (db.session.get(type(c), c.id).body, db.session.get(type(c), c.id).version) == before


def test_last_used_is_written_at_most_once_a_minute(world, client, db):
    row, text = make(db, world.liaison)
    assert row.last_used_at is None
    client.get("/api/v1/me", headers=bearer(text))
    db.session.expire_all()
    first = db.session.get(ApiToken, row.id).last_used_at
    assert first is not None
    client.get("/api/v1/me", headers=bearer(text))
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at == first
    # A minute later it is noted again.
    db.session.get(ApiToken, row.id).last_used_at = first - token_svc.TOUCH_EVERY
    db.session.commit()
    client.get("/api/v1/me", headers=bearer(text))
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at > first - token_svc.TOUCH_EVERY


def test_the_login_session_is_not_a_token(world, as_user, client, db):
    """A logged-in browser reaching the API (another site's form or script) is 401: only tokens count,
    and API answers never set the session cookie."""
    as_user(world.liaison)
    c = world.contribution
    for method, path, body in (("GET", "/api/v1/me", None),
                               ("PUT", f"/api/v1/contributions/{c.id}/draft", {"body": "跨站写入", "version": c.version})):
        answer = client.open(path, method=method, json=body)
        assert answer.status_code == 401
        assert "Set-Cookie" not in answer.headers
    db.session.expire_all()
    assert db.session.get(type(c), c.id).body != "跨站写入"
    # The browser's session itself is still alive for the pages.
    assert client.get("/account/tokens/").status_code == 200


def test_token_limits_in_the_service(world, db):
    from fazhi_flow.errors import DomainError

    for days in (0, token_svc.MAX_DAYS + 1):
        try:
            token_svc.create_token(world.liaison, "脚本", "read", days)
        except DomainError as exc:
            assert "1到365天" in exc.message
        else:
            raise AssertionError(f"{days} days accepted")
    for _ in range(token_svc.MAX_LIVE_TOKENS):
        token_svc.create_token(world.liaison, "批量", "read", 1)
    try:
        token_svc.create_token(world.liaison, "再多一个", "read", 1)
    except DomainError as exc:
        assert f"最多{token_svc.MAX_LIVE_TOKENS}个" in exc.message
    else:
        raise AssertionError("more live tokens than allowed")
