"""The people page's single sign-on settings: switching the local password off, a reset keeping it off,
dropping a binding, and another district's account out of reach."""
from __future__ import annotations

import pytest

from fazhi_flow.testing import PASSWORD, FreshUserClient, login

from .people import last_audit, logged_in_id, person, two_regions


@pytest.fixture()
def office(db):
    hs, zy, units = two_regions(db)
    admin = person(db, hs, None, "hs_admin", "赫山区管理员")
    admin.set_roles(["admin"])
    liaison = person(db, hs, units["430903"], "hs_sfj", "赫山司法局联络员", email="sfj@hs.example.gov.cn")
    other = person(db, zy, units["430902"], "zy_sfj", "资阳司法局联络员")
    db.session.commit()
    return {"admin": admin, "liaison": liaison, "other": other, "unit": units["430903"]}


def _form(office, **extra):
    liaison = office["liaison"]
    return {"name": liaison.name, "unit": str(office["unit"].id), "roles": ["liaison"], "email": liaison.email,
            **extra}


def test_switch_off_survives_a_password_reset(app, client, db, office):
    liaison = office["liaison"]
    login(client, office["admin"])
    page = client.get(f"/admin/users/{liaison.id}/edit").get_data(as_text=True)
    assert "停用本地密码登录" in page and "本系统尚未配置统一身份认证" in page
    response = client.post(f"/admin/users/{liaison.id}/edit", data=_form(office, password_login_disabled="y"))
    assert response.status_code == 303
    db.session.expire_all()
    assert liaison.password_login_disabled is True
    row = last_audit(db, "user.update")
    assert row.actor_id == office["admin"].id and row.detail == {
        "changed": {"password_login_disabled": [False, True]}}
    assert client.post(f"/admin/users/{liaison.id}/reset-password").status_code == 200
    db.session.expire_all()
    assert liaison.password_login_disabled is True and liaison.must_change_password is True
    other_browser = FreshUserClient(app, app.response_class, use_cookies=True)
    page = other_browser.post("/login", data={"username": "hs_sfj", "password": PASSWORD}).get_data(as_text=True)
    assert "该账号只能通过统一身份认证登录，但本系统尚未配置统一身份认证" in page
    assert logged_in_id(other_browser) is None
    # Switched on again, the old password is gone (reset), so the form still refuses, with the usual words.
    client.post(f"/admin/users/{liaison.id}/edit", data=_form(office))
    db.session.expire_all()
    assert liaison.password_login_disabled is False
    page = other_browser.post("/login", data={"username": "hs_sfj", "password": PASSWORD}).get_data(as_text=True)
    assert "用户名或密码不正确。" in page


def test_a_binding_is_shown_and_can_be_dropped(client, db, office, app, monkeypatch):
    monkeypatch.setitem(app.config, "LDAP_URL", "ldap://127.0.0.1:1")
    liaison = office["liaison"]
    liaison.sso_subject = "ldap:5f2c3d7e-hs-0001"
    db.session.commit()
    login(client, office["admin"])
    page = client.get(f"/admin/users/{liaison.id}/edit").get_data(as_text=True)
    assert "已关联统一身份认证账号（标识：ldap:5f2c3d7e-hs-0001）" in page and "本系统尚未配置" not in page
    # Saving without the tick keeps it.
    client.post(f"/admin/users/{liaison.id}/edit", data=_form(office))
    db.session.expire_all()
    assert liaison.sso_subject == "ldap:5f2c3d7e-hs-0001"
    client.post(f"/admin/users/{liaison.id}/edit", data=_form(office, unbind_sso="y"))
    db.session.expire_all()
    assert liaison.sso_subject is None
    assert last_audit(db, "user.update").detail == {"changed": {"sso_bound": [True, False]}}
    assert "尚未关联统一身份认证账号" in client.get(f"/admin/users/{liaison.id}/edit").get_data(as_text=True)


def test_another_districts_account_is_not_found(client, db, office):
    other = office["other"]
    other.sso_subject = "zy-subject"
    db.session.commit()
    login(client, office["admin"])
    assert client.get(f"/admin/users/{other.id}/edit").status_code == 404
    response = client.post(f"/admin/users/{other.id}/edit", data={
        "name": other.name, "unit": "0", "roles": ["liaison"], "password_login_disabled": "y", "unbind_sso": "y"})
    assert response.status_code == 404
    db.session.expire_all()
    assert other.password_login_disabled is False and other.sso_subject == "zy-subject"
