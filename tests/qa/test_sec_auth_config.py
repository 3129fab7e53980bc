"""Production settings: no trusted proxy unless told, a long secret key, a __Host- session cookie, HSTS."""
import pytest

from fazhi_flow import _load_config_module, create_app


@pytest.fixture()
def production(monkeypatch, tmp_path):
    """Build a production app (on a throwaway SQLite file) with the given environment."""
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    monkeypatch.setenv("FAZHI_SECRET_KEY", "s" * 32)
    monkeypatch.delenv("FAZHI_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("FAZHI_SESSION_COOKIE_SECURE", raising=False)

    def make(**env):
        for key, value in env.items():
            monkeypatch.setenv(f"FAZHI_{key}", value)
        return create_app("production")

    return make


def test_no_configuration_trusts_forwarded_headers_by_default(production):
    module = _load_config_module()
    assert all(cls.TRUSTED_PROXIES == 0 for cls in module.CONFIGS.values())
    assert production().config["TRUSTED_PROXIES"] == 0
    assert production(TRUSTED_PROXIES="1").config["TRUSTED_PROXIES"] == 1


def test_without_a_trusted_proxy_the_forwarded_address_is_ignored(production):
    from flask import request

    app = production()
    app.add_url_rule("/_address", "_address", lambda: request.remote_addr)
    response = app.test_client().get("/_address", headers={"X-Forwarded-For": "10.9.9.9"},
                                     environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.get_data(as_text=True) == "192.0.2.7"


@pytest.mark.parametrize("key", ["x", "short-but-not-default", "s" * 31, "密" * 10])
def test_production_refuses_a_short_secret_key(production, key):
    with pytest.raises(RuntimeError) as refused:
        production(SECRET_KEY=key)
    message = str(refused.value)
    assert "至少32字节" in message and "at least 32 bytes" in message
    assert "secrets.token_hex(32)" in message


def test_production_accepts_a_32_byte_key(production):
    assert production(SECRET_KEY="s" * 32).secret_key == "s" * 32
    assert production(SECRET_KEY="密" * 11).secret_key == "密" * 11  # 33 bytes in UTF-8


def _login_page_cookie(app, secure=True):
    client = app.test_client()
    response = client.get("/login", base_url="https://fazhi.example" if secure else "http://fazhi.example")
    return response, response.headers.get("Set-Cookie", "")


def test_production_session_cookie_has_the_host_prefix(production):
    response, cookie = _login_page_cookie(production())
    assert cookie.startswith("__Host-session=")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(part.startswith("domain=") for part in attributes)


def test_plain_http_production_keeps_a_prefix_free_cookie(production):
    """__Host- cookies need Secure; an operator who turned Secure off must still be able to log in."""
    _, cookie = _login_page_cookie(production(SESSION_COOKIE_SECURE="0"), secure=False)
    assert cookie.startswith("session=") and "secure" not in cookie.lower()


def test_hsts_in_production(production):
    response, _ = _login_page_cookie(production())
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_hsts_on_secure_requests_only_outside_production(client, db):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://fazhi.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
