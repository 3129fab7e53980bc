"""Every admin page needs the admin role on the server; POSTs need a CSRF token; GET changes nothing."""
import re

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import AuditEvent, Section, Unit

from .conftest import login


def admin_urls(o):
    return [
        "/admin/", "/admin/cycles", "/admin/cycles/new", f"/admin/cycles/{o.cycle.id}",
        f"/admin/cycles/{o.cycle.id}/edit", f"/admin/cycles/{o.cycle.id}/open",
        f"/admin/cycles/{o.cycle.id}/outline", f"/admin/cycles/{o.cycle.id}/assignments",
        f"/admin/cycles/{o.cycle.id}/contributions", f"/admin/sections/{o.leaf.id}/edit",
        f"/admin/sections/{o.leaf.id}/delete", f"/admin/sections/{o.leaf.id}/assignments",
        "/admin/units", "/admin/units/new", f"/admin/units/{o.units[0].id}/edit", "/admin/users",
        "/admin/users/new", f"/admin/users/{o.liaison.id}/edit", "/admin/import",
        "/admin/import/template-units.xlsx", "/admin/import/template-users.xlsx",
    ]


def test_every_page_renders_for_the_admin_and_changes_nothing(admin_client, office, db):
    for url in admin_urls(office):
        response = admin_client.get(url)
        assert response.status_code in (200, 302), url
        if response.mimetype == "text/html":
            assert "Traceback" not in response.get_data(as_text=True)
    # Only the login was audited: no GET changed anything.
    assert {a for (a,) in db.session.execute(select(AuditEvent.action))} == {"auth.login"}
    assert db.session.scalar(select(func.count(Section.id))) == 2


@pytest.mark.parametrize("role", ["liaison", "reviewer", "leader", "unit_head"])
def test_other_roles_get_403(client, office, factory, db, role):
    user = factory.user(role, unit=office.units[1], username=f"x_{role}")
    db.session.commit()
    login(client, user)
    for url in admin_urls(office):
        assert client.get(url).status_code == 403, url
    response = client.post(f"/admin/cycles/{office.cycle.id}/sections", data={"new-title": "偷加的章节"})
    assert response.status_code == 403
    response = client.post("/admin/units/new", data={"code": "evil", "name": "冒充单位", "kind": "other",
                                                     "parent": "0"})
    assert response.status_code == 403
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "evil")) == 0
    assert db.session.scalar(select(func.count(Section.id))) == 2


def test_anonymous_is_sent_to_login(client, office):
    response = client.get("/admin/cycles")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.post("/admin/units/new", data={"code": "x1", "name": "某单位"})
    assert response.status_code in (302, 400)


def test_post_without_csrf_token_is_refused(admin_client, office, db, csrf_on):
    response = admin_client.post("/admin/units/new", data={"code": "newu", "name": "新单位", "kind": "other",
                                                           "parent": "0"})
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True) or "安全校验" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "newu")) == 0
    # With the token from the page it works.
    page = admin_client.get("/admin/units/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = admin_client.post("/admin/units/new", data={"csrf_token": token, "code": "newu", "name": "新单位",
                                                           "kind": "other", "parent": "0"})
    assert response.status_code == 303
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "newu")) == 1


def test_state_changing_routes_refuse_get(admin_client, office):
    for url in [f"/admin/cycles/{office.cycle.id}/compile", f"/admin/sections/{office.leaf.id}/move",
                f"/admin/users/{office.liaison.id}/reset-password", f"/admin/users/{office.liaison.id}/deactivate",
                f"/admin/cycles/{office.cycle.id}/sections", "/admin/import/confirm"]:
        assert admin_client.get(url).status_code == 405, url
