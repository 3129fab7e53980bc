"""Proxy headers are believed only from the proxy's own address; out-of-range numeric settings stop the
start; statement parameters never reach an error message (and so never a log line)."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, StatementError

from fazhi_flow import create_app
from fazhi_flow.proxies import TrustedProxyFix


def _echo(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ.get('REMOTE_ADDR')}|{environ['wsgi.url_scheme']}".encode()]


def _call(app, remote, forwarded):
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/", headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"},
                             environ_base={"REMOTE_ADDR": remote}).get_environ()
    return b"".join(app(environ, lambda *a: None)).decode()


def test_forwarded_headers_count_only_from_a_trusted_proxy():
    app = TrustedProxyFix(_echo, "127.0.0.1,::1,10.0.0.0/24", 1)
    assert _call(app, "127.0.0.1", "198.51.100.7") == "198.51.100.7|https"
    assert _call(app, "10.0.0.9", "198.51.100.7") == "198.51.100.7|https"
    # A caller reaching the port directly cannot claim to be the server itself.
    assert _call(app, "203.0.113.5", "127.0.0.1") == "203.0.113.5|http"


def test_metrics_refuse_a_spoofed_loopback_address(app, monkeypatch):
    monkeypatch.setenv("FAZHI_TRUSTED_PROXIES", "1")
    proxied = create_app("testing")
    client = proxied.test_client()
    spoofed = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"},
                         environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert spoofed.status_code == 404
    through_proxy = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"},
                               environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert through_proxy.status_code == 200


@pytest.mark.parametrize("key,value", [
    ("TRUSTED_PROXIES", "-1"), ("TRUSTED_PROXIES", "6"), ("SESSION_IDLE_MINUTES", "0"),
    ("SESSION_ABSOLUTE_HOURS", "-5"), ("SCHEDULER_STALE_SECONDS", "0"), ("DEVICE_COOKIE_DAYS", "0"),
    ("TRUSTED_PROXY_IPS", "10.0.0.300"),
])
def test_out_of_range_settings_stop_the_start(app, monkeypatch, key, value):
    monkeypatch.setenv(f"FAZHI_{key}", value)
    with pytest.raises(RuntimeError, match=f"FAZHI_{key}"):
        create_app("testing")


def test_statement_parameters_stay_out_of_error_messages(app, db):
    secret = "草稿正文不应出现在日志中-7f3a"
    with pytest.raises((DBAPIError, StatementError)) as caught:
        db.session.execute(text("INSERT INTO no_such_table (body) VALUES (:body)"), {"body": secret})
    db.session.rollback()
    assert secret not in str(caught.value)
    assert db.engine.hide_parameters is True
