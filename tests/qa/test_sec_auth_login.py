"""Login refusals confirm nothing, and a guesser behind the office NAT cannot lock colleagues out.

Colleagues behind one NAT share an address; 31 failures with random user names used to block the
whole office. A browser that has logged in successfully holds a signed device cookie for that
account and is throttled on its own counter (OWASP device cookies); untrusted browsers keep the
address and per-account limits.
"""
from sqlalchemy import select

from fazhi_flow.models import AuditEvent, LoginThrottle
from fazhi_flow.services import login_throttle

from fazhi_flow.extensions import db as _db

from .conftest import PASSWORD, FreshUserClient

DEVICE = "fazhi_device"


def _post(client, username, password, addr="203.0.113.5"):
    return client.post("/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def _fresh(app):
    return FreshUserClient(app, app.response_class)


def _device_client(app, user):
    """A browser that has logged in as ``user`` before and logged out again."""
    browser = _fresh(app)
    assert _post(browser, user.username, PASSWORD).status_code == 302
    assert browser.get_cookie(DEVICE) is not None
    browser.post("/logout")
    return browser


def _flood(app, count, addr="203.0.113.5", through_the_form=False):
    """``count`` failures with random user names from ``addr`` (recorded directly unless asked:
    each attempt through the form costs a password hash)."""
    guesser = _fresh(app)
    for n in range(count):
        if through_the_form:
            _post(guesser, f"random{n}", "guess", addr)
        else:
            login_throttle.record_failure(f"random{n}", addr)
    _db.session.commit()


def test_a_deactivated_account_gets_the_wrong_password_answer(client, world, db):
    world.liaison.active = False
    db.session.commit()
    right = _post(client, world.liaison.username, PASSWORD).get_data(as_text=True)
    wrong = _post(client, world.liaison.username, "not-it").get_data(as_text=True)
    assert "用户名或密码不正确" in right and "用户名或密码不正确" in wrong
    assert "停用" not in right
    reasons = [e.detail["reason"] for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "auth.login_failed").order_by(AuditEvent.id))]
    assert reasons == ["inactive", "bad_credentials"]  # the audit trail keeps the truth


def test_a_guesser_behind_the_nat_cannot_lock_out_known_browsers(app, world, db):
    colleague = _device_client(app, world.liaison)
    newcomer = _fresh(app)
    _flood(app, login_throttle.POLICIES["ip"].free + 1, through_the_form=True)
    _flood(app, 4)  # a longer delay, so that a slow test machine does not outlast it
    # A browser that never logged in shares the address's fate ...
    assert _post(newcomer, world.other_liaison.username, PASSWORD).status_code == 429
    # ... the colleague's own browser is counted on its own.
    response = _post(colleague, world.liaison.username, PASSWORD)
    assert response.status_code == 302 and colleague.get("/tasks/").status_code == 200


def test_a_device_cookie_counts_only_for_its_own_account(app, world, db):
    browser = _device_client(app, world.liaison)
    _flood(app, login_throttle.POLICIES["ip"].free + 5)
    assert _post(browser, world.other_liaison.username, PASSWORD).status_code == 429


def test_a_device_cookie_that_fails_too_often_is_locked(app, world, db):
    browser = _device_client(app, world.liaison)
    for _ in range(login_throttle.POLICIES["device"].free + 1):
        assert _post(browser, world.liaison.username, "guess").status_code == 200
    assert _post(browser, world.liaison.username, PASSWORD).status_code == 429
    keys = {row.key for row in db.session.scalars(select(LoginThrottle))}
    assert any(k.startswith("dev:") for k in keys)
    assert not any(k.startswith(("ip:", "acct:", "pair:")) for k in keys)  # nobody else is slowed


def test_untrusted_browsers_keep_the_per_account_limit(app, world, db):
    for n in range(login_throttle.POLICIES["acct"].free + 1):
        _post(_fresh(app), world.liaison.username, "guess", addr=f"198.51.100.{n + 1}")
    assert _post(_fresh(app), world.liaison.username, PASSWORD, addr="198.51.100.200").status_code == 429


def test_the_owner_at_a_known_browser_is_not_held_up_by_guessing_elsewhere(app, world, db):
    browser = _device_client(app, world.liaison)
    for n in range(login_throttle.POLICIES["acct"].free + 1):
        _post(_fresh(app), world.liaison.username, "guess", addr=f"198.51.100.{n + 1}")
    assert _post(browser, world.liaison.username, PASSWORD).status_code == 302


def test_a_forged_or_foreign_device_cookie_is_ignored(app, world, db):
    real = _device_client(app, world.liaison).get_cookie(DEVICE).value
    _flood(app, login_throttle.POLICIES["ip"].free + 5)
    for value in (real[:-3] + "abc", "eyJuIjoiMDAiLCJ1IjpbInVzZXIxIl19.x.y"):
        forger = _fresh(app)
        forger.set_cookie(DEVICE, value)
        assert _post(forger, world.liaison.username, PASSWORD).status_code == 429
    other_key = _fresh(app)
    from itsdangerous import URLSafeTimedSerializer

    other_key.set_cookie(DEVICE, URLSafeTimedSerializer("another-secret", salt="fazhi-device-cookie").dumps(
        {"n": "00", "u": [world.liaison.username.lower()]}))
    assert _post(other_key, world.liaison.username, PASSWORD).status_code == 429


def test_the_device_cookie_is_signed_long_lived_and_http_only(app, world, db):
    browser = _fresh(app)
    response = _post(browser, world.liaison.username, PASSWORD)
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(DEVICE + "="))
    assert "HttpOnly" in header and "Path=/" in header and "Max-Age=" in header
    max_age = int(header.split("Max-Age=")[1].split(";")[0])
    assert max_age == app.config["DEVICE_COOKIE_DAYS"] * 86400
    # A second account logging in from the same browser joins the same cookie: both are known there.
    browser.post("/logout")
    assert _post(browser, world.other_liaison.username, PASSWORD).status_code == 302
    browser.post("/logout")
    _flood(app, login_throttle.POLICIES["ip"].free + 5)
    for user in (world.liaison, world.other_liaison):
        assert _post(browser, user.username, PASSWORD).status_code == 302
        browser.post("/logout")
