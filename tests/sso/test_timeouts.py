"""A provider or directory that accepts the connection and then never answers: the login page says so
within the configured timeout instead of hanging the worker."""
from __future__ import annotations

import socket
import time

import pytest

from fazhi_flow.sso import ldap as sso_ldap
from fazhi_flow.sso import oidc

from .conftest import follow_message
from .people import logged_in_id


@pytest.fixture()
def silent_port():
    """A port whose connections the kernel accepts (backlog) but nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_silent_provider_times_out(client, db, app, provider, monkeypatch, silent_port):
    monkeypatch.setitem(app.config, "OIDC_ISSUER", f"http://127.0.0.1:{silent_port}")
    monkeypatch.setitem(app.config, "OIDC_TIMEOUT", 1)
    started = time.monotonic()
    response = client.get("/login/oidc")
    assert time.monotonic() - started < 5
    assert oidc.UNREACHABLE in follow_message(client, response)


def test_a_silent_directory_times_out(client, db, app, ldap_config, silent_port):
    ldap_config(LDAP_URL=f"ldap://127.0.0.1:{silent_port}", LDAP_TIMEOUT=1)
    started = time.monotonic()
    with app.test_request_context(), pytest.raises(sso_ldap.LdapUnavailable):
        sso_ldap.authenticate("zhangwei", "Ldap-pass-2024")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    page = client.post("/login", data={"username": "zhangwei", "password": "Ldap-pass-2024"}).get_data(as_text=True)
    assert time.monotonic() - started < 5
    assert "暂时无法连接统一身份认证（LDAP）服务器" in page
    assert logged_in_id(client) is None
