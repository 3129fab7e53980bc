"""``fazhi-flow check``'s single sign-on lines, against the real provider and slapd of these tests."""
from __future__ import annotations

import pytest

from fazhi_flow.sso.checks import LDAP_NAME, OIDC_NAME, check_ldap, check_oidc

from .conftest import CLIENT_ID
from .servers import PEOPLE, READER_DN, free_port

LEVELS = ("OK", "警告", "错误")


def _run(fn, config, env_name="production"):
    lines = []
    fn(lambda level, name, text: lines.append((level, name, text)), LEVELS, config, env_name, 3)
    assert len(lines) == 1
    return lines[0]


def test_oidc_lines(provider):
    assert _run(check_oidc, {})[0] == "OK"
    level, name, text = _run(check_oidc, {"OIDC_ISSUER": provider.url})
    assert (level, name) == ("错误", OIDC_NAME) and "FAZHI_OIDC_CLIENT_ID" in text
    config = {"OIDC_ISSUER": provider.url + "/", "OIDC_CLIENT_ID": CLIENT_ID}
    # Reachable, but plain HTTP in production: a warning; in development fine.
    level, _, text = _run(check_oidc, config)
    assert level == "警告" and "不是 https" in text
    assert _run(check_oidc, config, "development")[0] == "OK"
    level, _, text = _run(check_oidc, {**config, "OIDC_ISSUER": f"http://127.0.0.1:{free_port()}"})
    assert level == "错误" and "无法读取" in text
    # The discovery document names another issuer than the one configured.
    level, _, text = _run(check_oidc, {**config, "OIDC_ISSUER": provider.url.replace("127.0.0.1", "localhost")})
    assert level == "错误" and "不一致" in text


def test_ldap_lines(app, directory):
    with app.app_context():
        assert _run(check_ldap, {})[0] == "OK"
        template = {"LDAP_URL": directory.url, "LDAP_USER_DN": f"uid={{username}},{PEOPLE}", "LDAP_TIMEOUT": 3}
        level, name, text = _run(check_ldap, template)
        assert (level, name) == ("警告", LDAP_NAME) and "明文" in text
        assert _run(check_ldap, template, "development")[0] == "OK"
        level, _, text = _run(check_ldap, {**template, "LDAP_USER_DN": f"uid=someone,{PEOPLE}"})
        assert level == "错误" and "{username}" in text
        search = {"LDAP_URL": directory.url, "LDAP_BIND_DN": READER_DN, "LDAP_BIND_PASSWORD": directory.reader_password,
                  "LDAP_SEARCH_BASE": PEOPLE, "LDAP_SEARCH_FILTER": "(uid={username})", "LDAP_TIMEOUT": 3}
        assert _run(check_ldap, search, "development")[0] == "OK"
        level, _, text = _run(check_ldap, {**search, "LDAP_BIND_PASSWORD": "wrong"}, "development")
        assert level == "错误" and "服务账号登录被拒绝" in text
        level, _, text = _run(check_ldap, {**search, "LDAP_SEARCH_BASE": ""})
        assert level == "错误" and "FAZHI_LDAP_SEARCH_BASE" in text
        level, _, text = _run(check_ldap, {**template, "LDAP_URL": f"ldap://127.0.0.1:{free_port()}"})
        assert level == "错误" and "无法连接" in text
        level, _, text = _run(check_ldap, {**template, "LDAP_URL": "http://127.0.0.1:389"})
        assert level == "错误" and "ldap://" in text


@pytest.mark.filterwarnings(r"ignore:ssl.match_hostname\(\) is deprecated:DeprecationWarning")
def test_ldap_tls_lines(app, tls_directory):
    with app.app_context():
        config = {"LDAP_URL": tls_directory.url, "LDAP_USER_DN": f"uid={{username}},{PEOPLE}", "LDAP_TIMEOUT": 3,
                  "LDAP_START_TLS": True, "LDAP_CA_FILE": tls_directory.ca_file}
        level, _, text = _run(check_ldap, config)
        assert level == "OK" and "StartTLS" in text
        assert _run(check_ldap, {**config, "LDAP_URL": tls_directory.ldaps_url, "LDAP_START_TLS": False})[0] == "OK"
        # The server's certificate is not trusted without the private CA.
        level, _, text = _run(check_ldap, {**config, "LDAP_CA_FILE": ""})
        assert level == "错误" and "证书" in text
