"""CSRF, security headers, error pages, escaping, GET never changes state."""
from sqlalchemy import select

from fazhi_flow.models import Contribution

from .conftest import PASSWORD


def _token(page: str) -> str:
    marker = 'name="csrf_token" type="hidden" value="'
    if marker not in page:
        marker = 'name="csrf_token" value="'
    return page.split(marker, 1)[1].split('"', 1)[0]


def test_post_without_csrf_token_is_refused(csrf_app, world, db):
    # The second app has its own engine: read what we need, then end our transaction (SQLite locks).
    username, cid, version = world.liaison.username, world.contribution.id, world.contribution.version
    db.session.commit()
    client = csrf_app.test_client()
    r = client.post("/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 400
    text = r.get_data(as_text=True)
    assert "安全校验" in text and "Traceback" not in text
    # With the token from the form it works.
    token = _token(client.get("/login").get_data(as_text=True))
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    # A logged-in user's POST without the token changes nothing.
    r = client.post(f"/tasks/{cid}", data={"body": "被篡改", "version": version})
    assert r.status_code == 400
    r = client.post(f"/tasks/{cid}/submit", data={"version": version})
    assert r.status_code == 400
    # With the page's token the same save goes through.
    token = _token(client.get(f"/tasks/{cid}").get_data(as_text=True))
    r = client.post(f"/tasks/{cid}", data={"body": "正常保存", "version": version, "csrf_token": token})
    assert r.status_code == 302
    db.session.expire_all()
    c = db.session.get(Contribution, cid)
    assert (c.body, c.state) == ("正常保存", "draft")


def test_security_headers(as_user, world, client):
    r = client.get("/login")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"]
    as_user(world.liaison)
    r = client.get("/tasks/")
    assert r.headers["Cache-Control"] == "no-store"
    page = r.get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page and " onclick" not in page


def test_error_pages_are_chinese_and_never_show_tracebacks(app, db, world, extra_app):
    username = world.liaison.username
    db.session.commit()
    client = app.test_client()
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "页面不存在" in r.get_data(as_text=True)
    r = client.get("/logout")
    assert r.status_code == 405 and "操作方式不正确" in r.get_data(as_text=True)

    broken = extra_app(PROPAGATE_EXCEPTIONS=False, MAX_CONTENT_LENGTH=1000)

    @broken.route("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    c = broken.test_client()
    r = c.get("/boom")
    text = r.get_data(as_text=True)
    assert r.status_code == 500 and "系统出错了" in text
    assert "secret internal detail" not in text and "Traceback" not in text
    c.post("/login", data={"username": username, "password": PASSWORD})
    # The editor accepts more (it answers above the kept text); any other form gets the 413 page.
    r = c.post("/password", data={"current_password": "字" * 5000})
    assert r.status_code == 413 and "超过了大小限制" in r.get_data(as_text=True)


def test_get_requests_never_change_state(as_user, world, db):
    client = as_user(world.liaison)
    before = (world.contribution.state, world.contribution.version)
    for url in (f"/tasks/{world.contribution.id}/recall", f"/review/{world.contribution.id}/approve",
                f"/review/{world.contribution.id}/return", f"/tasks/{world.contribution.id}/unit-approve",
                "/inbox/read-all"):
        assert client.get(url).status_code == 405, url
    client.get(f"/tasks/{world.contribution.id}/submit")  # only shows the confirmation
    db.session.expire_all()
    c = db.session.get(Contribution, world.contribution.id)
    assert (c.state, c.version) == before


def test_output_is_escaped_everywhere(as_user, world, db, factory):
    from fazhi_flow.services import contributions as svc

    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    world.contribution.body = f"第一段{evil}\n第二段"
    world.section.guidance = evil
    db.session.commit()
    svc.submit_contribution(world.contribution, world.liaison)
    svc.return_contribution(world.contribution, world.reviewer, comment=evil, paragraph=1)
    db.session.commit()
    client = as_user(world.liaison)
    client.post(f"/tasks/{world.contribution.id}", data={"body": f"第一段{evil}改\n第二段", "version": world.contribution.version,
                                                         "action": "save"})
    pages = [f"/tasks/{world.contribution.id}", "/tasks/", f"/tasks/{world.contribution.id}/history?a=1&b=draft", "/inbox/"]
    for url in pages:
        text = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in text and "<img src=x" not in text, url
    text = client.get(f"/tasks/{world.contribution.id}").get_data(as_text=True)
    assert "&lt;script&gt;" in text


def test_login_required_everywhere(client, world):
    for url in ("/tasks/", f"/tasks/{world.contribution.id}", "/review/", f"/review/{world.contribution.id}",
                "/inbox/", "/tasks/unit-queue", "/password"):
        r = client.get(url)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), url
    assert db_unchanged(world)


def db_unchanged(world):
    return world.contribution.state == "draft"


def test_forms_ignore_fields_a_role_may_not_set(as_user, world, db):
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{world.contribution.id}", data={
        "body": "正常内容", "version": world.contribution.version, "action": "save",
        "state": "approved", "unit_id": world.other_unit.id, "reviewer": world.liaison.id,
    })
    assert r.status_code == 302
    db.session.expire_all()
    c = db.session.scalar(select(Contribution).where(Contribution.id == world.contribution.id))
    assert (c.body, c.state, c.unit_id) == ("正常内容", "draft", world.unit.id)
