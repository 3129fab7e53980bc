"""OpenID Connect login against a real provider over HTTP (tests/sso/servers.py): PKCE, state, nonce and
ID-token checks, and how a signed-on person is matched to an existing account (never created)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc.jwk import RSAKey

from fazhi_flow.sso import oidc
from fazhi_flow.sso.matching import INACTIVE, NO_MATCH, OTHER_SUBJECT

from .conftest import CLIENT_ID, follow_message, oidc_login, zhang
from .people import last_audit, logged_in_id, person, user_count
from .servers import free_port

SUB = "8f1c2e0a-hs-ids-000123"


def test_first_login_binds_the_subject_and_later_logins_match_by_it(client, db, provider, district):
    user = zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "ZhangWei", "email": "other@example.org",
                        "email_verified": True}
    response = oidc_login(client, provider)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert logged_in_id(client) == user.id
    db.session.expire_all()
    assert user.sso_subject == SUB
    login_row = last_audit(db, "auth.login")
    assert login_row.actor_id == user.id and login_row.detail == {"method": "oidc"}
    # The app asked for S256 PKCE with a state and a nonce, and sent the matching verifier.
    asked = provider.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert provider.token_requests == [{"client": True, "grant": True, "pkce": True, "redirect_uri": True}]
    # The person is renamed at the provider: the bound subject still finds the account.
    client.post("/logout")
    assert logged_in_id(client) is None
    provider.account = {"sub": SUB, "preferred_username": "zhangwei-renamed"}
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == user.id


def test_another_subject_with_the_same_username_is_refused(client, db, provider, district):
    user = zhang(db, district, sso_subject=SUB)
    provider.account = {"sub": "someone-else-777", "preferred_username": "zhangwei",
                        "email": user.email, "email_verified": True}
    page = follow_message(client, oidc_login(client, provider))
    assert OTHER_SUBJECT in page
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject == SUB
    assert last_audit(db, "auth.login_failed").detail == {"method": "oidc", "reason": "subject_mismatch"}


def test_a_person_without_an_account_is_not_created(client, db, provider, district):
    zhang(db, district)
    before = user_count(db)
    provider.account = {"sub": "new-person-1", "preferred_username": "liuyang", "email": "liuyang@example.org",
                        "email_verified": True}
    page = follow_message(client, oidc_login(client, provider))
    assert NO_MATCH in page
    assert logged_in_id(client) is None
    assert user_count(db) == before


def test_an_inactive_account_is_refused(client, db, provider, district):
    user = zhang(db, district, active=False)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    assert INACTIVE in follow_message(client, oidc_login(client, provider))
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject is None


def test_email_matches_only_when_verified_and_unique(client, db, provider, district):
    hs_unit = district["units"]["430903"]
    lina = person(db, district["hs"], hs_unit, "li.na", "李娜", email="LiNa@hs.example.gov.cn")
    db.session.commit()
    claims = {"sub": "lina-sub", "preferred_username": "lina", "email": "lina@hs.example.gov.cn"}
    provider.account = {**claims, "email_verified": False}
    assert NO_MATCH in follow_message(client, oidc_login(client, provider))
    provider.account = {**claims, "email_verified": "true"}  # some providers send a string
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == lina.id
    client.post("/logout")
    # A second active account with the address: no longer one person, so no match.
    person(db, district["hs"], hs_unit, "wangfang", "王芳", email="lina@hs.example.gov.cn")
    lina.sso_subject = None
    db.session.commit()
    provider.account = {**claims, "sub": "lina-sub-2", "email_verified": True}
    assert NO_MATCH in follow_message(client, oidc_login(client, provider))
    assert logged_in_id(client) is None


def test_a_wrong_state_is_refused_before_any_token_request(client, db, provider, district):
    zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    authorize = client.get("/login/oidc").headers["Location"]
    callback = urlsplit(requests.get(authorize, allow_redirects=False, timeout=10).headers["Location"])
    code = parse_qs(callback.query)["code"][0]
    response = client.get(f"{callback.path}?code={code}&state=forged-state")
    assert "登录请求已失效" in follow_message(client, response)
    assert logged_in_id(client) is None
    assert provider.token_requests == []


def test_a_callback_cannot_be_replayed(client, db, provider, district):
    zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    authorize = client.get("/login/oidc").headers["Location"]
    callback = urlsplit(requests.get(authorize, allow_redirects=False, timeout=10).headers["Location"])
    assert client.get(f"{callback.path}?{callback.query}").headers["Location"] == "/"
    client.post("/logout")
    assert "登录请求已失效" in follow_message(client, client.get(f"{callback.path}?{callback.query}"))
    assert logged_in_id(client) is None


@pytest.mark.parametrize("tamper", [
    {"nonce": "not-the-nonce-we-sent"},
    {"key": "other"},               # signed by a key that is not the provider's, same key id
    # Another client's token; "azp" naming us keeps Authlib's own azp check from catching it.
    {"aud": "another-client", "extra": {"azp": CLIENT_ID}},
    {"iss": "http://127.0.0.1:1/evil"},
    {"exp": -3600},                 # expired an hour ago (beyond the clock leeway)
    {"no_id_token": True},
], ids=["nonce", "signature", "audience", "issuer", "expired", "no-id-token"])
def test_a_bad_id_token_is_refused(client, db, provider, district, tamper):
    user = zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    if tamper.get("key") == "other":
        tamper = {"key": RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})}
    provider.tamper = tamper
    page = follow_message(client, oidc_login(client, provider))
    assert oidc.BAD_TOKEN in page
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject is None
    assert provider.token_requests[-1]["pkce"] is True  # the exchange itself was sound


def test_a_refusal_by_the_provider_is_shown(client, db, provider, district):
    provider.tamper = {"denied": "用户取消了授权"}
    page = follow_message(client, oidc_login(client, provider))
    assert oidc.DENIED in page
    # The provider's own words are logged, not shown: anyone can put words into a callback link.
    assert "用户取消了授权" not in page
    assert provider.token_requests == []


def test_a_crafted_error_callback_shows_none_of_its_words(client, db, provider, district):
    """A link to the callback with an error but no attempt of this browser behind it: the fixed
    "request expired" message, not the link's text (phishing words on the system's own page)."""
    for query in ("error=x&error_description=请拨打010-12345678联系管理员",
                  "error=x&error_description=请拨打010-12345678联系管理员&state=guessed"):
        response = client.get(f"/login/oidc/callback?{query}")
        page = follow_message(client, response)
        assert "010-12345678" not in page and "登录请求已失效" in page
    assert logged_in_id(client) is None


def test_an_admin_account_is_not_linked_by_username_alone(client, db, provider, district):
    """At a provider where people choose their preferred_username, a username alone must not hand
    over an admin's account: its first link needs the provider's verified e-mail to be the account's."""
    from fazhi_flow.sso.matching import PRIVILEGED_UNVERIFIED

    admin = zhang(db, district)
    admin.set_roles(["admin"])
    db.session.commit()
    for account in ({"sub": "attacker-1", "preferred_username": "zhangwei", "email": "a@evil.example",
                     "email_verified": False},
                    {"sub": "attacker-2", "preferred_username": "zhangwei", "email": "zhangwei@zy.example.gov.cn",
                     "email_verified": False},
                    {"sub": "attacker-3", "preferred_username": "zhangwei", "email": "a@evil.example",
                     "email_verified": True}):
        provider.account = account
        page = follow_message(client, oidc_login(client, provider))
        assert PRIVILEGED_UNVERIFIED in page and logged_in_id(client) is None
        db.session.expire_all()
        assert admin.sso_subject is None
    provider.account = {"sub": SUB, "preferred_username": "zhangwei", "email": "ZhangWei@zy.example.gov.cn",
                        "email_verified": True}
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == admin.id
    db.session.expire_all()
    assert admin.sso_subject == SUB


def test_an_unreachable_provider_gives_a_message(client, db, provider, district, app, monkeypatch):
    monkeypatch.setitem(app.config, "OIDC_ISSUER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setitem(app.config, "OIDC_TIMEOUT", 2)
    response = client.get("/login/oidc")
    assert response.status_code == 303
    assert oidc.UNREACHABLE in follow_message(client, response)


def test_the_button_and_routes_exist_only_when_configured(client, db, provider, app, monkeypatch):
    monkeypatch.setitem(app.config, "OIDC_BUTTON_LABEL", "赫山区政务统一身份认证")
    page = client.get("/login").get_data(as_text=True)
    assert "赫山区政务统一身份认证" in page and 'href="/login/oidc"' in page
    monkeypatch.setitem(app.config, "OIDC_ISSUER", "")
    page = client.get("/login").get_data(as_text=True)
    assert "/login/oidc" not in page and "统一身份认证" not in page
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def test_the_page_asked_for_is_reached_and_a_foreign_one_is_not(client, db, provider, district):
    zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    assert 'href="/login/oidc?next=/inbox/"' in client.get("/login?next=/inbox/").get_data(as_text=True)
    assert oidc_login(client, provider, start="/login/oidc?next=/inbox/").headers["Location"] == "/inbox/"
    client.post("/logout")
    assert oidc_login(client, provider, start="/login/oidc?next=//evil.example/").headers["Location"] == "/"


def test_sso_login_is_not_sent_to_change_the_password(client, db, provider, district):
    user = zhang(db, district, must_change_password=True)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert client.get("/").headers["Location"] == "/tasks/"
    assert logged_in_id(client) == user.id


def test_password_login_disabled_points_to_single_sign_on(client, db, provider, district):
    user = zhang(db, district, password_login_disabled=True)
    page = client.post("/login", data={"username": "zhangwei", "password": "secret-Pass1"}).get_data(as_text=True)
    assert "该账号不能使用密码登录，请点击“统一身份认证登录”" in page
    assert logged_in_id(client) is None
    assert last_audit(db, "auth.login_failed").detail == {"reason": "password_login_disabled"}
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == user.id
    # No local password to change: the link is gone and the page refuses.
    assert "修改密码" not in client.get("/tasks/").get_data(as_text=True)
    assert client.get("/password").status_code == 403


def test_longest_username_and_subject(client, db, provider, district):
    username, sub = "z" * 60, "s" * 255
    user = person(db, district["hs"], district["units"]["430903"], username, "甲" * 60)
    db.session.commit()
    provider.account = {"sub": sub, "preferred_username": username.upper()}
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == user.id
    client.post("/logout")
    provider.account = {"sub": sub + "x", "preferred_username": username}
    assert NO_MATCH in follow_message(client, oidc_login(client, provider))


def test_a_token_request_refused_by_the_provider(client, db, provider, district, app, monkeypatch):
    """A wrong client secret in the settings: the provider refuses the code exchange."""
    zhang(db, district)
    monkeypatch.setitem(app.config, "OIDC_CLIENT_SECRET", "not-the-secret")
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    page = follow_message(client, oidc_login(client, provider))
    assert oidc.BAD_TOKEN in page
    assert provider.token_requests[-1]["client"] is False
    assert logged_in_id(client) is None


def test_only_the_newest_attempt_is_kept_in_the_session(client, db, provider, district):
    """Clicking the button again and again must not grow the session cookie past what browsers keep."""
    user = zhang(db, district)
    provider.account = {"sub": SUB, "preferred_username": "zhangwei"}
    first = client.get("/login/oidc").headers["Location"]
    for _ in range(30):
        client.get("/login/oidc")
    with client.session_transaction() as session:
        assert len([k for k in session if k.startswith("_state_")]) == 1
    cookie = client.get_cookie("session")
    assert cookie is not None and len(cookie.value) < 1500
    # An abandoned attempt no longer completes; the newest does.
    stale = urlsplit(requests.get(first, allow_redirects=False, timeout=10).headers["Location"])
    assert "登录请求已失效" in follow_message(client, client.get(f"{stale.path}?{stale.query}"))
    assert oidc_login(client, provider).headers["Location"] == "/"
    assert logged_in_id(client) == user.id
