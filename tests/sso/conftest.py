"""Fixtures of the single sign-on tests: a real slapd and a real OpenID Connect provider for the session,
and the session app pointed at them for one test."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from .people import person, two_regions
from .servers import Provider, ProviderServer, make_certificates, slapd_missing, start_slapd

CLIENT_ID = "fazhi-flow-hs"
CALLBACK = "http://localhost/login/oidc/callback"  # the test client's host


@pytest.fixture(scope="session")
def directory(tmp_path_factory):
    missing = slapd_missing()
    if missing:
        # tests/conftest.py turns this skip into a failure in CI.
        pytest.skip(f"the LDAP tests need OpenLDAP's slapd: {missing}")
    started = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def tls_directory(tmp_path_factory):
    """A second slapd with a certificate from a private CA: StartTLS on ldap://, and ldaps://."""
    missing = slapd_missing()
    if missing:
        pytest.skip(f"the LDAP tests need OpenLDAP's slapd: {missing}")
    folder = tmp_path_factory.mktemp("slapd-tls")
    files = make_certificates(folder)
    started = start_slapd(folder, tls=files)
    started.ca_file = str(files["ca"])
    yield started
    started.stop()


@pytest.fixture(scope="session")
def _provider_server():
    with ProviderServer(Provider(client_id=CLIENT_ID, client_secret="hs-secret-" + "x" * 20,
                                 redirect_uri=CALLBACK)) as provider:
        yield provider


@pytest.fixture()
def provider(_provider_server, app, monkeypatch):
    """The provider, with no one signed in and no misbehaviour; the app configured to use it."""
    _provider_server.account = {}
    _provider_server.tamper = {}
    _provider_server.token_requests.clear()
    _provider_server.authorize_requests.clear()
    for key, value in {"OIDC_ISSUER": _provider_server.url, "OIDC_CLIENT_ID": CLIENT_ID,
                       "OIDC_CLIENT_SECRET": _provider_server.client_secret}.items():
        monkeypatch.setitem(app.config, key, value)
    return _provider_server


@pytest.fixture()
def ldap_config(directory, app, monkeypatch):
    """Point the app at the directory, by DN template; returns a setter for other settings."""
    from .servers import PEOPLE

    def configure(**settings):
        for key, value in settings.items():
            monkeypatch.setitem(app.config, key, value)

    configure(LDAP_URL=directory.url, LDAP_USER_DN=f"uid={{username}},{PEOPLE}", LDAP_TIMEOUT=5)
    return configure


def oidc_login(client, provider, start="/login/oidc"):
    """The whole flow over HTTP: the app's redirect, the provider's authorization page (fetched with
    requests, as a browser would), then the callback, which exchanges the code with the provider."""
    first = client.get(start)
    assert first.status_code == 302, first.get_data(as_text=True)[:300]
    authorize = first.headers["Location"]
    assert authorize.startswith(provider.url + "/authorize?"), authorize
    answer = requests.get(authorize, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    callback = urlsplit(answer.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK
    return client.get(f"{callback.path}?{callback.query}")


def follow_message(client, response) -> str:
    """The page a refused login lands on (the login page with the flashed message)."""
    assert response.status_code in (302, 303), response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.fixture()
def district(db):
    """赫山区 and 资阳区 with their 司法局, committed."""
    hs, zy, units = two_regions(db)
    db.session.commit()
    return {"hs": hs, "zy": zy, "units": units}


def zhang(db, district, **columns):
    """张伟, a liaison of 资阳区司法局 (committed): the account both OpenID providers' logins match."""
    user = person(db, district["zy"], district["units"]["430902"], "zhangwei", "张伟",
                  email="zhangwei@zy.example.gov.cn", **columns)
    db.session.commit()
    return user
