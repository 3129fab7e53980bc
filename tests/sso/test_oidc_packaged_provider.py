"""OpenID Connect login against an independent, packaged provider (``oidc-provider-mock``, an OpenID
provider server built on Authlib's authorization-server components), over real HTTP.

tests/sso/test_oidc.py runs the same login against tests/sso/servers.py, a provider written alongside
these tests; a second implementation written by others catches what both of ours might share (a
misread discovery field, claims placed where only our provider puts them, an error answer of another
shape). The provider here has a registered client (secret and redirect URI checked), requires a
nonce, signs its ID tokens with its own RS256 key and shows its own authorization form, which the
tests fill in with requests as a browser would.

The packaged provider does not check PKCE (it neither stores the code_challenge nor compares the
code_verifier), so here the app's PKCE is checked on the app's side: the challenge it sends is the
S256 of the verifier it keeps; that a wrong verifier is refused is shown in test_oidc.py.
"""
from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from fazhi_flow.sso import oidc
from fazhi_flow.sso.matching import NO_MATCH, OTHER_SUBJECT

from .conftest import CALLBACK, follow_message, zhang
from .people import last_audit, logged_in_id, person, user_count

oidc_provider_mock = pytest.importorskip(
    "oidc_provider_mock", reason="the packaged-provider tests need oidc-provider-mock (the `test` extra)")

# The provider (0.3.x) signs ID tokens through Authlib's get_jwt_config hook, which newer Authlib
# releases deprecate; the warning is raised in its server thread, where the suite's warnings-as-errors
# would turn every token request into a server error.
pytestmark = pytest.mark.filterwarnings(r"ignore:get_jwt_config\(self, grant\) is deprecated:DeprecationWarning")

SUB = "hs-ids-00042"
STATE_PREFIX = "_state_fazhi_"  # where Authlib's Flask client keeps one attempt in the session


@pytest.fixture(scope="session")
def _packaged_server():
    """The packaged provider on a free port, with this app registered as a confidential client
    (RFC 7591 registration: only its redirect URI, only its secret)."""
    with oidc_provider_mock.run_server_in_thread(require_client_registration=True,
                                                 require_nonce=True) as server:
        url = f"http://localhost:{server.server_port}"
        registered = requests.post(f"{url}/oauth2/clients", json={"redirect_uris": [CALLBACK]}, timeout=10)
        registered.raise_for_status()
        client = registered.json()
        yield {"url": url, "client_id": client["client_id"], "client_secret": client["client_secret"]}


@pytest.fixture()
def packaged(_packaged_server, app, monkeypatch):
    """The app configured to use the packaged provider; ``put_user`` sets a person's claims there."""
    url = _packaged_server["url"]
    for key, value in {"OIDC_ISSUER": url, "OIDC_CLIENT_ID": _packaged_server["client_id"],
                       "OIDC_CLIENT_SECRET": _packaged_server["client_secret"],
                       "OIDC_SCOPES": "openid profile email"}.items():
        monkeypatch.setitem(app.config, key, value)

    def put_user(sub, **claims):
        answer = requests.put(f"{url}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text

    return {**_packaged_server, "put_user": put_user}


def _authorize_url(client) -> str:
    first = client.get("/login/oidc")
    assert first.status_code == 302, first.get_data(as_text=True)[:300]
    return first.headers["Location"]


def _on_the_form(authorize: str, form: dict) -> requests.Response:
    """What a browser does on the provider's authorization page: load it, then submit one of its forms
    (they post back to the page's own address)."""
    page = requests.get(authorize, timeout=10)
    assert page.status_code == 200 and 'name="sub"' in page.text, page.text[:300]
    return requests.post(authorize, data=form, allow_redirects=False, timeout=10)


def _back_to_the_app(client, answer: requests.Response):
    assert answer.status_code == 302, answer.text[:300]
    callback = urlsplit(answer.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK
    return client.get(f"{callback.path}?{callback.query}")


def packaged_login(client, packaged, sub: str):
    """The whole flow: the app's redirect, the provider's form signed in as ``sub``, the callback
    (which exchanges the code at the provider's token endpoint and verifies the ID token)."""
    return _back_to_the_app(client, _on_the_form(_authorize_url(client), {"sub": sub}))


def _attempt(client) -> dict:
    with client.session_transaction() as session:
        attempts = [value["data"] for key, value in session.items() if key.startswith(STATE_PREFIX)]
    assert len(attempts) == 1
    return attempts[0]


def test_discovery_and_the_authorization_request(client, db, packaged, district):
    """The provider's discovery document is what the app follows, and the request carries S256 PKCE
    (the challenge computed here from the verifier the app keeps), a nonce and the state."""
    discovery = requests.get(packaged["url"] + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == packaged["url"]
    authorize = _authorize_url(client)
    assert authorize.startswith(discovery["authorization_endpoint"] + "?")
    asked = {key: values[0] for key, values in parse_qs(urlsplit(authorize).query).items()}
    attempt = _attempt(client)
    verifier = attempt["code_verifier"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    assert 43 <= len(verifier) <= 128  # RFC 7636 §4.1
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"] == expected
    assert asked["response_type"] == "code" and asked["client_id"] == packaged["client_id"]
    assert asked["redirect_uri"] == CALLBACK and set(asked["scope"].split()) >= {"openid", "profile", "email"}
    assert asked["nonce"] == attempt["nonce"] and asked["state"]


def test_first_login_by_username_binds_the_subject_then_the_subject_is_used(client, db, packaged, district):
    user = zhang(db, district)
    packaged["put_user"](SUB, preferred_username="ZhangWei", email="someone@example.org", email_verified=False)
    response = packaged_login(client, packaged, SUB)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert logged_in_id(client) == user.id
    db.session.expire_all()
    assert user.sso_subject == SUB
    assert last_audit(db, "auth.login").detail == {"method": "oidc"}
    # Renamed at the provider: the bound subject still finds the account.
    client.post("/logout")
    assert logged_in_id(client) is None
    packaged["put_user"](SUB, preferred_username="zhang.wei.2027")
    assert packaged_login(client, packaged, SUB).headers["Location"] == "/"
    assert logged_in_id(client) == user.id


def test_a_verified_email_matches_an_unverified_one_does_not(client, db, packaged, district):
    lina = person(db, district["hs"], district["units"]["430903"], "li.na", "李娜", email="LiNa@hs.example.gov.cn")
    db.session.commit()
    sub = "lina-" + "9" * 40
    packaged["put_user"](sub, preferred_username="lina", email="lina@hs.example.gov.cn", email_verified=False)
    assert NO_MATCH in follow_message(client, packaged_login(client, packaged, sub))
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert lina.sso_subject is None
    packaged["put_user"](sub, preferred_username="lina", email="lina@hs.example.gov.cn", email_verified=True)
    assert packaged_login(client, packaged, sub).headers["Location"] == "/"
    assert logged_in_id(client) == lina.id
    db.session.expire_all()
    assert lina.sso_subject == sub


def test_another_subject_with_the_same_username_is_refused(client, db, packaged, district):
    user = zhang(db, district, sso_subject=SUB)
    packaged["put_user"]("newcomer-1", preferred_username="zhangwei", email=user.email, email_verified=True)
    page = follow_message(client, packaged_login(client, packaged, "newcomer-1"))
    assert OTHER_SUBJECT in page
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject == SUB
    assert last_audit(db, "auth.login_failed").detail == {"method": "oidc", "reason": "subject_mismatch"}


def test_an_unknown_person_gets_the_message_and_nobody_is_created(client, db, packaged, district):
    zhang(db, district)
    before = user_count(db)
    packaged["put_user"]("liuyang-1", preferred_username="liuyang", email="liuyang@example.org",
                         email_verified=True)
    assert NO_MATCH in follow_message(client, packaged_login(client, packaged, "liuyang-1"))
    # Someone the provider knows nothing about (it makes up {"email": sub}, unverified).
    assert NO_MATCH in follow_message(client, packaged_login(client, packaged, "zhangwei@zy.example.gov.cn"))
    assert logged_in_id(client) is None
    assert user_count(db) == before
    assert last_audit(db, "auth.login_failed").detail == {"method": "oidc", "reason": "no_match"}


def test_a_nonce_other_than_the_one_sent_is_refused(client, db, packaged, district):
    """The provider's genuinely signed ID token carries the nonce of the request; an attempt that
    expects another one (a token injected into someone else's login) is refused."""
    user = zhang(db, district)
    packaged["put_user"](SUB, preferred_username="zhangwei")
    answer = _on_the_form(_authorize_url(client), {"sub": SUB})
    with client.session_transaction() as session:
        key = next(k for k in session if k.startswith(STATE_PREFIX))
        entry = dict(session[key])
        entry["data"] = {**entry["data"], "nonce": "n-" + "0" * 30}
        session[key] = entry
    response = _back_to_the_app(client, answer)
    assert oidc.BAD_TOKEN in follow_message(client, response)
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject is None


def test_a_token_request_refused_by_the_provider(client, db, packaged, district, app, monkeypatch):
    """The provider checks the registered client's secret at its token endpoint: a wrong one is
    answered invalid_client, which the app shows as a Chinese message, not a server error."""
    user = zhang(db, district)
    packaged["put_user"](SUB, preferred_username="zhangwei")
    monkeypatch.setitem(app.config, "OIDC_CLIENT_SECRET", packaged["client_secret"] + "-wrong")
    response = packaged_login(client, packaged, SUB)
    assert oidc.BAD_TOKEN in follow_message(client, response)
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject is None
    assert last_audit(db, "auth.login_failed").detail == {"method": "oidc", "reason": "token_invalid"}


def test_access_denied_on_the_providers_form(client, db, packaged, district):
    """The person presses Deny: the provider answers access_denied and the app refuses with a Chinese
    message, shows none of the provider's English words and logs nobody in.

    This provider leaves the state out of its error redirect (RFC 6749 §4.1.2.1 asks for it), so the
    app cannot tell the answer from a crafted link and asks the person to start again (STATE_LOST);
    a provider that returns the state gets DENIED (test_oidc.py)."""
    user = zhang(db, district)
    answer = _on_the_form(_authorize_url(client), {"action": "deny"})
    returned = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert returned["error"] == ["access_denied"]
    response = _back_to_the_app(client, answer)
    page = follow_message(client, response)
    expected = oidc.DENIED if "state" in returned else "登录请求已失效或不是从本系统发起的"
    assert expected in page
    assert returned["error_description"][0] not in page
    assert logged_in_id(client) is None
    db.session.expire_all()
    assert user.sso_subject is None
    reason = "provider_error" if "state" in returned else "state_mismatch"
    assert last_audit(db, "auth.login_failed").detail == {"method": "oidc", "reason": reason}
