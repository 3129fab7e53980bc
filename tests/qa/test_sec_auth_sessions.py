"""Sessions end on the server's clock: after SESSION_IDLE_MINUTES without a request and
SESSION_ABSOLUTE_HOURS after the login, whatever the cookie says. A cookie signed 30 days ago
(the attack run's finding) must not log anybody in.
"""
import time

import itsdangerous.timed
import pytest

from fazhi_flow.auth_loader import LOGIN_AT, SEEN_AT

from .conftest import FreshUserClient, login


def _serializer(app):
    return app.session_interface.get_signing_serializer(app)


def _session_of(app, client) -> dict:
    return dict(_serializer(app).loads(client.get_cookie("session").value))


def _replace_session(app, client, data: dict) -> None:
    client.set_cookie("session", _serializer(app).dumps(data))


def _aged(app, client, idle_minutes: float, since_login_hours: float) -> None:
    """Rewrite the client's (validly signed) session as if its clocks had run."""
    data = _session_of(app, client)
    moment = int(time.time())
    data[SEEN_AT] = moment - int(idle_minutes * 60)
    data[LOGIN_AT] = moment - int(since_login_hours * 3600)
    _replace_session(app, client, data)


@pytest.fixture()
def liaison_client(client, world):
    login(client, world.liaison)
    assert client.get("/tasks/").status_code == 200
    return client


def test_a_session_idle_past_the_limit_is_logged_out(liaison_client, app):
    _aged(app, liaison_client, idle_minutes=app.config["SESSION_IDLE_MINUTES"] + 1, since_login_hours=3)
    response = liaison_client.get("/tasks/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    page = liaison_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "登录已超时，请重新登录" in page and "请先登录" not in page
    # The expired session is gone for good, not only for that one request.
    assert liaison_client.get("/tasks/").status_code == 302


def test_a_recently_used_session_lives_on(liaison_client, app):
    _aged(app, liaison_client, idle_minutes=app.config["SESSION_IDLE_MINUTES"] - 5, since_login_hours=3)
    assert liaison_client.get("/tasks/").status_code == 200
    # ... and that request moved the idle clock forward.
    assert time.time() - _session_of(app, liaison_client)[SEEN_AT] < 60


def test_a_busy_session_still_ends_at_the_absolute_limit(liaison_client, app):
    _aged(app, liaison_client, idle_minutes=1, since_login_hours=app.config["SESSION_ABSOLUTE_HOURS"] + 0.1)
    assert liaison_client.get("/tasks/").status_code == 302


def test_the_limits_come_from_the_settings(liaison_client, app):
    _aged(app, liaison_client, idle_minutes=20, since_login_hours=1)
    assert liaison_client.get("/tasks/").status_code == 200
    app.config["SESSION_IDLE_MINUTES"] = 15
    try:
        _aged(app, liaison_client, idle_minutes=20, since_login_hours=1)
        assert liaison_client.get("/tasks/").status_code == 302
    finally:
        app.config["SESSION_IDLE_MINUTES"] = 120


def test_a_session_without_its_clocks_is_refused(liaison_client, app):
    """Cookies made before the limits existed (or by a forger who left the stamps out)."""
    data = _session_of(app, liaison_client)
    data.pop(LOGIN_AT), data.pop(SEEN_AT)
    _replace_session(app, liaison_client, data)
    assert liaison_client.get("/tasks/").status_code == 302


def test_a_cookie_signed_thirty_days_ago_does_not_work(liaison_client, app, monkeypatch):
    """Even with stamps that look fresh, a signature older than the absolute limit is refused."""
    data = _session_of(app, liaison_client)
    month_ago = time.time() - 30 * 86400
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: month_ago)
    old_cookie = _serializer(app).dumps(data)
    monkeypatch.undo()
    other = FreshUserClient(app, app.response_class)
    other.set_cookie("session", old_cookie)
    assert other.get("/tasks/").status_code == 302
    # The same contents signed now are accepted: it is the signature's age that is refused.
    other.set_cookie("session", _serializer(app).dumps(data))
    assert other.get("/tasks/").status_code == 200


def test_a_remember_cookie_does_not_outlive_the_session(client, world, app):
    """Remember-me is not offered; a remember cookie carries no login time, so it logs nobody in."""
    from flask_login.utils import _cookie_digest

    with app.test_request_context():
        user_id = world.liaison.get_id()
        value = f"{user_id}|{_cookie_digest(user_id)}"
    client.set_cookie(app.config.get("REMEMBER_COOKIE_NAME", "remember_token"), value)
    assert client.get("/tasks/").status_code == 302


def test_a_save_after_the_timeout_keeps_the_typed_text(liaison_client, app, world, db):
    cid, before = world.contribution.id, world.contribution.body
    db.session.commit()
    _aged(app, liaison_client, idle_minutes=app.config["SESSION_IDLE_MINUTES"] + 1, since_login_hours=3)
    typed = "超时之后才点保存的一段文字。"
    response = liaison_client.post(f"/tasks/{cid}", data={"body": typed, "version": "1"})
    assert response.status_code == 401 and typed in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(world.contribution), cid).body == before
