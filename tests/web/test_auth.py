"""Login, logout, password change, throttling, audit."""
from datetime import timedelta

from sqlalchemy import select

from fazhi_flow.models import AuditEvent, LoginThrottle
from fazhi_flow.services import login_throttle

from .conftest import PASSWORD, login


def _actions(db):
    return [a.action for a in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_login_and_home_by_role(client, world, db):
    r = login(client, world.liaison)
    assert r.headers["Location"] == "/"
    assert client.get("/").headers["Location"] == "/tasks/"
    assert "auth.login" in _actions(db)[-1] or _actions(db)[-1] == "auth.login"


def test_reviewer_home_is_queue(client, world):
    login(client, world.reviewer)
    assert client.get("/").headers["Location"] == "/review/"


def test_anonymous_home_goes_to_login_or_public(client, db, app):
    location = client.get("/").headers["Location"]
    assert location in ("/login", "/public/", "/reports/") or location.startswith("/")
    assert client.get("/tasks/").status_code == 302


def test_bad_password_is_refused_and_audited(client, world, db):
    r = client.post("/login", data={"username": world.liaison.username, "password": "wrong"})
    assert r.status_code == 200
    assert "用户名或密码不正确" in r.get_data(as_text=True)
    r = client.post("/login", data={"username": "nobody-here", "password": "wrong"})
    assert "用户名或密码不正确" in r.get_data(as_text=True)
    assert _actions(db).count("auth.login_failed") == 2
    assert client.get("/tasks/").status_code == 302


def test_empty_and_long_login_input(client, db):
    r = client.post("/login", data={"username": "", "password": ""})
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "请输入用户名" in text and "请输入密码" in text
    r = client.post("/login", data={"username": "张" * 500, "password": "x" * 5000})
    assert r.status_code == 200 and "用户名过长" in r.get_data(as_text=True)


def test_open_redirect_is_ignored(client, world):
    r = client.post("/login?next=//evil.example/x", data={"username": world.liaison.username,
                                                         "password": PASSWORD})
    assert r.headers["Location"] == "/"
    client.post("/logout")
    r = client.post("/login?next=/inbox/", data={"username": world.liaison.username, "password": PASSWORD})
    assert r.headers["Location"] == "/inbox/"


def test_throttle_slows_guessing_then_lets_the_real_user_in(client, world, db):
    name = world.liaison.username
    for _ in range(login_throttle.POLICIES["pair"].free):
        client.post("/login", data={"username": name, "password": "guess"})
    client.post("/login", data={"username": name, "password": "guess"})
    # Now even the right password is not checked until the delay has passed.
    r = client.post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 429
    assert "请" in r.get_data(as_text=True) and "后再试" in r.get_data(as_text=True)
    assert "auth.login_throttled" in _actions(db)
    # The delay is short: move the clock past it and the real user gets in.
    for row in db.session.scalars(select(LoginThrottle)):
        row.blocked_until = row.blocked_until - timedelta(hours=1) if row.blocked_until else None
    db.session.commit()
    r = client.post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 302
    keys = {row.key for row in db.session.scalars(select(LoginThrottle))}
    assert not any(k.startswith(("pair:", "acct:")) for k in keys)


def test_account_wide_delay_is_capped(app):
    policy = login_throttle.POLICIES["acct"]
    assert login_throttle.delay_for("acct", 1000) == policy.cap <= 60
    assert login_throttle.delay_for("pair", 1000) == login_throttle.POLICIES["pair"].cap
    assert login_throttle.delay_for("pair", 3) == 0


def test_logout_invalidates_the_old_cookie(client, world, db, app):
    login(client, world.liaison)
    cookie = client.get_cookie("session")
    assert client.get("/tasks/").status_code == 200
    r = client.get("/logout")
    assert r.status_code == 405  # GET never logs out
    r = client.post("/logout")
    assert r.headers["Location"] == "/login"
    from .conftest import FreshUserClient

    other = FreshUserClient(app, app.response_class)
    other.set_cookie(cookie.key, cookie.value)
    assert other.get("/tasks/").status_code == 302
    assert "auth.logout" in _actions(db)


def test_forced_password_change(client, world, db):
    world.liaison.must_change_password = True
    db.session.commit()
    r = login(client, world.liaison)
    assert r.headers["Location"] == "/password"
    assert client.get("/tasks/").headers["Location"] == "/password"
    r = client.post("/password", data={"current": PASSWORD, "new": "12345678", "confirm": "12345678"})
    assert "太容易被猜到" in r.get_data(as_text=True)
    r = client.post("/password", data={"current": PASSWORD, "new": "new-Pass-2025", "confirm": "other"})
    assert "两次输入的新密码不一致" in r.get_data(as_text=True)
    r = client.post("/password", data={"current": "wrong", "new": "new-Pass-2025", "confirm": "new-Pass-2025"})
    assert "当前密码不正确" in r.get_data(as_text=True)
    r = client.post("/password", data={"current": PASSWORD, "new": "new-Pass-2025", "confirm": "new-Pass-2025"})
    assert r.status_code == 302
    assert client.get("/tasks/").status_code == 200  # still logged in here, with the new token
    db.session.refresh(world.liaison)
    assert not world.liaison.must_change_password
    assert world.liaison.check_password("new-Pass-2025")


def test_deactivated_user_is_logged_out(client, world, db):
    login(client, world.liaison)
    world.liaison.active = False
    world.liaison.rotate_session_token()
    db.session.commit()
    assert client.get("/tasks/").status_code == 302
