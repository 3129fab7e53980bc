"""People, units and regions in a multi-region installation: an admin manages only their own region
(lists, forms, imports, cross-region ids → 404), role grant rules, and the system administrator's region
management (create, move with the paths below, loops refused, first admin), all audited and scoped."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from fazhi_flow import testing
from fazhi_flow.errors import DomainError, PermissionDenied
from fazhi_flow.models import AuditEvent, Region, Unit, User
from fazhi_flow.services import audit as audit_svc
from fazhi_flow.services import regions as region_svc
from fazhi_flow.services import users as user_svc
from fazhi_flow.testing import FreshUserClient, count_queries


@pytest.fixture()
def w(two_regions):
    return two_regions


@pytest.fixture()
def login_as(app, db):
    def _login(user):
        client = FreshUserClient(app, app.response_class, use_cookies=True)
        testing.login(client, user)
        return client

    return _login


def _dump(db, region):
    """Every unit and user row of ``region`` as plain tuples (to prove nothing changed)."""
    db.session.expire_all()
    units = db.session.execute(select(Unit.id, Unit.code, Unit.name, Unit.kind, Unit.parent_id, Unit.active)
                               .where(Unit.region_id == region.id).order_by(Unit.id)).all()
    users = db.session.execute(select(User.id, User.username, User.name, User.unit_id, User.active,
                                      User.password_hash, User.session_token, User.email)
                               .where(User.region_id == region.id).order_by(User.id)).all()
    roles = sorted((u.id, sorted(u.roles)) for u in db.session.scalars(select(User).where(User.region_id == region.id)))
    return units, users, roles


def _page(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    return response.get_data(as_text=True)


def _password(page):
    return re.search(r'<td class="pw">([^<]+)</td>', page).group(1)


# ------------------------------------------------------------------ lists


def test_lists_show_only_the_admins_region(w, login_as):
    client = login_as(w.hs.admin)
    users = _page(client.get("/admin/users"))
    assert "赫山区公安联络员" in users and "hs_reviewer" in users
    assert "资阳区" not in users and "zy_" not in users and "市督导" not in users
    units = _page(client.get("/admin/units?show=all"))
    assert "赫山公安分局" in units and "资阳公安分局" not in units and "市委依法治市办" not in units
    # The same code in both regions: one row here.
    assert units.count("<td>gaj</td>") == 1
    # Filtering by the other region's unit lists nobody.
    other = _page(client.get(f"/admin/users?unit={w.zy.gaj.id}"))
    assert "zy_gaj" not in other and "hs_gaj" not in other
    form = _page(client.get("/admin/users/new"))
    assert "赫山公安分局" in form and "资阳公安分局" not in form


# ------------------------------------------------------------------ cross-region ids


def test_another_regions_user_and_unit_ids_answer_404_and_change_nothing(w, login_as, db):
    client = login_as(w.hs.admin)
    before = _dump(db, w.zy.region)
    zy_user, zy_unit = w.zy.liaison.id, w.zy.gaj.id
    for method, url, data in [
        ("get", f"/admin/users/{zy_user}/edit", None),
        ("post", f"/admin/users/{zy_user}/edit", {"name": "改名", "unit": str(w.hs.gaj.id), "roles": ["liaison"]}),
        ("post", f"/admin/users/{zy_user}/deactivate", {}),
        ("post", f"/admin/users/{zy_user}/activate", {}),
        ("post", f"/admin/users/{zy_user}/reset-password", {}),
        ("get", f"/admin/units/{zy_unit}/edit", None),
        ("post", f"/admin/units/{zy_unit}/edit", {"name": "改名", "kind": "government", "parent": "0"}),
        ("post", f"/admin/units/{zy_unit}/deactivate", {}),
        ("post", f"/admin/units/{zy_unit}/activate", {}),
    ]:
        response = getattr(client, method)(url, data=data)
        assert response.status_code == 404, (method, url, response.status_code)
    assert _dump(db, w.zy.region) == before


def test_another_regions_ids_in_forms_answer_404(w, login_as, db):
    client = login_as(w.hs.admin)
    before_hs, before_zy = _dump(db, w.hs.region), _dump(db, w.zy.region)
    posts = [
        ("/admin/users/new", {"username": "hs_new", "name": "新人", "unit": str(w.zy.gaj.id), "roles": ["liaison"]}),
        (f"/admin/users/{w.hs.liaison.id}/edit", {"name": "赫山区公安联络员", "unit": str(w.zy.gaj.id),
                                                 "roles": ["liaison"]}),
        ("/admin/units/new", {"code": "pcs", "name": "派出所", "kind": "government", "parent": str(w.zy.gaj.id)}),
        (f"/admin/units/{w.hs.gaj.id}/edit", {"name": "赫山公安分局", "kind": "government",
                                             "parent": str(w.zy.office.id)}),
        # The city's office: a region above is another region too.
        (f"/admin/units/{w.hs.gaj.id}/edit", {"name": "赫山公安分局", "kind": "government",
                                             "parent": str(w.city_office.id)}),
    ]
    for url, data in posts:
        assert client.post(url, data=data).status_code == 404, url
    assert (_dump(db, w.hs.region), _dump(db, w.zy.region)) == (before_hs, before_zy)


def test_services_refuse_a_unit_of_another_region(w, db):
    with pytest.raises(DomainError, match="单位“资阳公安分局”不属于本地区"):
        user_svc.create_user(w.hs.admin, "hs_x", "某人", ["liaison"], w.zy.gaj)
    with pytest.raises(DomainError, match="单位“资阳公安分局”不属于本地区"):
        user_svc.update_user(w.hs.liaison, w.hs.admin, "某人", ["liaison"], w.zy.gaj, None, None)
    with pytest.raises(DomainError, match="上级单位“资阳公安分局”不属于本地区"):
        user_svc.create_unit(w.hs.admin, "pcs", "派出所", "government", w.zy.gaj)
    with pytest.raises(DomainError, match="上级单位“市委依法治市办”不属于本地区"):
        user_svc.update_unit(w.hs.gaj, w.hs.admin, "赫山公安分局", "government", w.city_office)
    # Another region's admin may not act on this region's accounts even through the service.
    with pytest.raises(PermissionDenied):
        user_svc.reset_password(w.hs.liaison, w.zy.admin)
    db.session.rollback()


# ------------------------------------------------------------------ creating in the region


def test_new_users_and_units_belong_to_the_admins_region(w, login_as, db):
    client = login_as(w.zy.admin)
    long_name = "资" * 100
    response = client.post("/admin/units/new", data={"code": "sfj", "name": long_name, "kind": "government",
                                                     "parent": "0"})
    assert response.status_code == 303
    unit = db.session.scalar(select(Unit).where(Unit.code == "sfj"))
    assert unit.region_id == w.zy.region.id and unit.name == long_name
    # 赫山区 may have its own "sfj" and its own unit of the same name.
    client_hs = login_as(w.hs.admin)
    assert client_hs.post("/admin/units/new", data={"code": "sfj", "name": long_name, "kind": "government",
                                                    "parent": "0"}).status_code == 303
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "sfj")) == 2
    page = _page(client.post("/admin/users/new", data={
        "username": "zy_sfj", "name": "张" * 60, "unit": str(unit.id), "roles": ["liaison"],
        "email": "zy_sfj@example.gov.cn"}))
    user = db.session.scalar(select(User).where(User.username == "zy_sfj"))
    assert user.region_id == w.zy.region.id and user.unit_id == unit.id and user.check_password(_password(page))
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.create"))
    assert event.detail["region_id"] == w.zy.region.id


def test_unit_codes_are_unique_per_region_with_a_clear_message(w, login_as, db):
    client = login_as(w.hs.admin)
    page = _page(client.post("/admin/units/new", data={"code": "GAJ", "name": "另一个公安局", "kind": "government",
                                                       "parent": "0"}), 400)
    assert "单位代码“GAJ”已存在于本地区" in page
    page = _page(client.post("/admin/units/new", data={"code": "jtj", "name": "赫山公安分局", "kind": "government",
                                                       "parent": "0"}), 400)
    assert "本地区已有名为“赫山公安分局”的单位" in page
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.region_id == w.hs.region.id)) == 2
    # Usernames stay unique over the whole system.
    page = _page(client.post("/admin/users/new", data={"username": "zy_gaj", "name": "重名", "unit": "0",
                                                       "roles": ["reviewer"]}), 400)
    assert "用户名“zy_gaj”已存在" in page


# ------------------------------------------------------------------ role grants


def test_role_grants(w, login_as, db):
    county = login_as(w.hs.admin)
    form = _page(county.get("/admin/users/new"))
    assert 'value="oversight"' not in form and 'value="sysadmin"' not in form
    page = _page(county.post("/admin/users/new", data={"username": "hs_du", "name": "督导甲", "unit": "0",
                                                       "roles": ["oversight"]}), 400)
    assert "“赫山区”没有下级地区，不能设置督导角色" in page
    page = _page(county.post("/admin/users/new", data={"username": "hs_sys", "name": "系统甲", "unit": "0",
                                                       "roles": ["sysadmin", "admin"]}), 400)
    assert "只有系统管理员可以授予或取消系统管理员角色" in page
    page = _page(county.post(f"/admin/users/{w.hs.reviewer.id}/edit", data={
        "name": w.hs.reviewer.name, "unit": str(w.hs.office.id), "roles": ["reviewer", "sysadmin"]}), 400)
    assert "只有系统管理员可以授予或取消系统管理员角色" in page
    assert db.session.scalar(select(func.count(User.id)).where(User.username.in_(["hs_du", "hs_sys"]))) == 0
    db.session.expire_all()
    assert w.hs.reviewer.roles == {"reviewer"}

    # The city has regions below: its admin may name an overseer (督导), and sees the choice.
    city = login_as(w.city_admin)
    assert 'value="oversight"' in _page(city.get("/admin/users/new"))
    _page(city.post("/admin/users/new", data={"username": "ys_du2", "name": "督导乙", "unit": "0",
                                             "roles": ["oversight"]}))
    overseer = db.session.scalar(select(User).where(User.username == "ys_du2"))
    assert overseer.roles == {"oversight"} and overseer.region_id == w.city.id

    # A system administrator's account: only system administrators manage it.
    for url in (f"/admin/users/{w.sysadmin.id}/edit", f"/admin/users/{w.sysadmin.id}/reset-password",
                f"/admin/users/{w.sysadmin.id}/deactivate"):
        response = city.post(url, data={"name": "x", "unit": "0", "roles": ["admin"]})
        assert response.status_code == 403, url
    db.session.expire_all()
    assert w.sysadmin.active and w.sysadmin.roles == {"sysadmin"}
    # A system administrator grants it.
    user, _ = user_svc.create_user(w.sysadmin, "sys2", "系统乙", ["sysadmin"], None, region=w.city)
    assert user.roles == {"sysadmin"}


# ------------------------------------------------------------------ import


def _csv(text):
    return ("\ufeff" + text).encode("utf-8")


def test_import_looks_up_unit_codes_in_the_admins_region_only(w, login_as, db):
    client = login_as(w.hs.admin)
    before = _dump(db, w.hs.region), _dump(db, w.zy.region)
    # "yfzsb" exists only in the city; "gaj" exists here (and in 资阳区).
    data = _csv("用户名,姓名,单位代码,角色\nhs_gaj2,李四,gaj,联络员\nhs_x,王五,yfzsb,联络员\nhs_d,赵六,,督导\n"
                "hs_s,孙七,,系统管理员\n")
    page = _page(client.post("/admin/import", data={"kind": "users", "file": (__import__("io").BytesIO(data),
                                                                               "users.csv")},
                             content_type="multipart/form-data"))
    assert "第3行：单位代码“yfzsb”不存在于本地区" in page
    assert "第4行：“赫山区”没有下级地区，不能设置督导角色" in page
    assert "第5行：只有系统管理员可以授予或取消系统管理员角色" in page
    preview = user_svc.parse_import("users", "users.csv", data, actor=w.hs.admin)
    assert not preview.ok and [r.line for r in preview.rows if r.errors] == [3, 4, 5]
    with pytest.raises(DomainError):
        user_svc.apply_import(w.hs.admin, preview)
    db.session.rollback()
    assert (_dump(db, w.hs.region), _dump(db, w.zy.region)) == before

    good = _csv("用户名,姓名,单位代码,角色\nhs_gaj2,李四,gaj,联络员\n")
    preview = user_svc.parse_import("users", "users.csv", good, actor=w.hs.admin)
    assert preview.ok
    # A preview checked for one region is never written by another region's admin.
    with pytest.raises(PermissionDenied):
        user_svc.apply_import(w.zy.admin, preview)
    db.session.rollback()
    result = user_svc.apply_import(w.hs.admin, preview)
    db.session.commit()
    created = db.session.scalar(select(User).where(User.username == "hs_gaj2"))
    assert result["users"] == ["hs_gaj2"] and created.unit_id == w.hs.gaj.id and created.region_id == w.hs.region.id


def test_import_units_per_region(w, login_as, db):
    client = login_as(w.zy.admin)
    before = _dump(db, w.hs.region), _dump(db, w.zy.region)
    data = _csv("代码,名称,类型,上级代码\ngaj,公安局二,政府部门,\npcs,派出所,政府部门,yfzsb\n")
    page = _page(client.post("/admin/import", data={"kind": "units", "file": (__import__("io").BytesIO(data),
                                                                               "units.csv")},
                             content_type="multipart/form-data"))
    assert "第2行：单位代码“gaj”已存在于本地区" in page
    assert "第3行：上级代码“yfzsb”既不在文件中，也不是本地区已有的单位" in page
    assert (_dump(db, w.hs.region), _dump(db, w.zy.region)) == before
    # A code 赫山区 has and 资阳区 has not is a new unit here; the parent is this region's gaj.
    db.session.add(Unit(region=w.hs.region, code="jtj", name="赫山交通局"))
    db.session.commit()
    data = _csv("代码,名称,类型,上级代码\njtj,资阳交通局,政府部门,gaj\n")
    response = client.post("/admin/import", data={"kind": "units", "file": (__import__("io").BytesIO(data),
                                                                            "units.csv")},
                           content_type="multipart/form-data")
    token = re.search(r'name="payload" type="hidden" value="([^"]+)"', _page(response)).group(1)
    response = client.post("/admin/import/confirm", data={"kind": "units", "filename": "units.csv",
                                                          "payload": token})
    assert response.status_code == 303
    unit = db.session.scalar(select(Unit).where(Unit.code == "jtj", Unit.region_id == w.zy.region.id))
    assert unit.parent_id == w.zy.gaj.id and unit.name == "资阳交通局"
    assert db.session.scalar(select(Unit.name).where(Unit.code == "jtj", Unit.region_id == w.hs.region.id)) == "赫山交通局"


# ------------------------------------------------------------------ regions: service


def test_regions_below_and_tree(w, db):
    province = region_svc.create_region(w.sysadmin, "430000", "湖南省", "province")
    region_svc.update_region(w.city, w.sysadmin, "益阳市", province)
    db.session.commit()
    assert province.path  # loaded: the count below is of the tree query alone
    with count_queries(db.engine) as queries:
        below = region_svc.regions_below(province)
    assert len(queries) == 1
    assert set(below) == {w.city.id, w.hs.region.id, w.zy.region.id}
    assert set(region_svc.regions_below(w.city, include_self=True)) == {w.city.id, w.hs.region.id, w.zy.region.id}
    assert region_svc.regions_below(w.hs.region) == []
    with count_queries(db.engine) as queries:
        tree = region_svc.region_tree()
    assert len(queries) == 1
    assert [(n.region.name, n.depth) for n in tree] == [("湖南省", 0), ("益阳市", 1), ("资阳区", 2), ("赫山区", 2)]
    assert [n.region.name for n in region_svc.region_tree(w.city)] == ["益阳市", "资阳区", "赫山区"]


def test_create_region_checks(w, db):
    cases = [
        (("4", "某地", "county", w.city), "地区代码“4”不合规"),
        (("430903", "另一个赫山", "county", w.city), "已有地区代码“430903”"),
        (("430904", "", "county", w.city), "地区名称不能为空"),
        (("430904", "某" * 101, "county", w.city), "地区名称不能超过100个字"),
        (("430904", "某区", "county", w.hs.region), "上级地区“赫山区”是区县级，区县级地区的上级必须是更高一级的地区"),
        (("439900", "某市", "city", w.city), "上级地区“益阳市”是市级，市级地区的上级必须是更高一级的地区"),
        (("430904", "某区", "town", w.city), "未知的地区级别“town”"),
    ]
    for args, message in cases:
        with pytest.raises(DomainError, match=message):
            region_svc.create_region(w.sysadmin, *args)
    with pytest.raises(PermissionDenied):
        region_svc.create_region(w.city_admin, "430904", "某区", "county", w.city)
    region = region_svc.create_region(w.sysadmin, "yy-test_1", "某" * 100, "county", w.city)
    db.session.commit()
    assert region.path == f"{w.city.path}{region.id}/" and region.is_below(w.city)


def test_moving_a_region_rewrites_the_paths_below_in_one_statement(w, db):
    province = region_svc.create_region(w.sysadmin, "430000", "湖南省", "province")
    other_city = region_svc.create_region(w.sysadmin, "430100", "长沙市", "city", province)
    db.session.commit()
    with count_queries(db.engine) as queries:
        region_svc.update_region(w.city, w.sysadmin, "益阳市", province)
    updates = [q for q in queries if q.lstrip().upper().startswith("UPDATE REGION")]
    # The region's parent, then one statement for the paths of the whole branch.
    assert len([q for q in updates if "path" in q.lower()]) == 1, updates
    db.session.commit()
    db.session.expire_all()
    base = f"/{province.id}/{w.city.id}/"
    assert w.city.path == base and w.hs.region.path == f"{base}{w.hs.region.id}/"
    assert w.zy.region.path == f"{base}{w.zy.region.id}/" and other_city.path == f"/{province.id}/{other_city.id}/"
    assert set(region_svc.regions_below(province)) == {other_city.id, w.city.id, w.hs.region.id, w.zy.region.id}
    # Moving a county to a sibling city keeps the others.
    region_svc.move_region(w.hs.region, w.sysadmin, other_city)
    db.session.commit()
    db.session.expire_all()
    assert w.hs.region.path == f"/{province.id}/{other_city.id}/{w.hs.region.id}/"
    assert w.zy.region.path == f"{base}{w.zy.region.id}/"
    events = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "region.update")).all()
    assert {"parent": [w.city.id, other_city.id]} in [e["changed"] for e in events]


def test_a_parent_loop_is_refused_naming_both_regions(w, db):
    province = region_svc.create_region(w.sysadmin, "430000", "湖南省", "province")
    region_svc.update_region(w.city, w.sysadmin, "益阳市", province)
    db.session.commit()
    paths = dict(db.session.execute(select(Region.id, Region.path)).all())
    with pytest.raises(DomainError, match="不能把“湖南省”移到“赫山区”之下：“赫山区”是它自己或它的下级地区，上级关系会形成循环"):
        region_svc.update_region(province, w.sysadmin, "湖南省", w.hs.region)
    with pytest.raises(DomainError, match="不能把“益阳市”移到“益阳市”之下"):
        region_svc.update_region(w.city, w.sysadmin, "益阳市", w.city)
    db.session.rollback()
    assert dict(db.session.execute(select(Region.id, Region.path)).all()) == paths


def test_deactivating_a_region_stops_its_accounts_and_activation_restores_them(w, db):
    with pytest.raises(DomainError, match="地区“益阳市”下还有启用的地区（资阳区、赫山区），请先停用它们"):
        region_svc.deactivate_region(w.city, w.sysadmin)
    user_svc.deactivate_user(w.hs.leader, w.hs.admin)  # stopped on its own before: stays stopped
    stopped = region_svc.deactivate_region(w.hs.region, w.sysadmin)
    db.session.commit()
    assert set(stopped) == {w.hs.admin.id, w.hs.reviewer.id, w.hs.liaison.id}
    assert not any(u.active for u in (w.hs.admin, w.hs.reviewer, w.hs.liaison, w.hs.leader))
    assert w.zy.admin.active
    with pytest.raises(DomainError, match="已经是停用状态"):
        region_svc.deactivate_region(w.hs.region, w.sysadmin)
    started = region_svc.activate_region(w.hs.region, w.sysadmin)
    db.session.commit()
    assert set(started) == set(stopped) and w.hs.admin.active and not w.hs.leader.active
    region_svc.deactivate_region(w.zy.region, w.sysadmin)
    region_svc.deactivate_region(w.hs.region, w.sysadmin)
    with pytest.raises(DomainError, match="不能停用自己所在的地区"):
        region_svc.deactivate_region(w.city, w.sysadmin)
    # A county under a stopped city cannot start before it.
    province = region_svc.create_region(w.sysadmin, "430000", "湖南省", "province")
    region_svc.update_region(w.city, w.sysadmin, "益阳市", province)
    region_svc.deactivate_region(w.city, None)  # the command line's operator
    with pytest.raises(DomainError, match="上级地区“益阳市”已停用，请先启用上级地区"):
        region_svc.activate_region(w.hs.region, None)


# ------------------------------------------------------------------ regions: pages


def test_region_pages_are_for_system_administrators_only(w, login_as, db):
    for user in (w.hs.admin, w.city_admin, w.oversight):
        client = login_as(user)
        for url in ("/admin/regions", "/admin/regions/new", f"/admin/regions/{w.hs.region.id}/edit",
                    f"/admin/regions/{w.hs.region.id}/first-admin"):
            assert client.get(url).status_code == 403, (user.username, url)
        assert client.post(f"/admin/regions/{w.zy.region.id}/deactivate").status_code == 403
        assert client.post(f"/admin/regions/{w.zy.region.id}/first-admin",
                           data={"username": "evil", "name": "x"}).status_code == 403
    db.session.expire_all()
    assert w.zy.region.active and db.session.scalar(select(User.id).where(User.username == "evil")) is None


def test_system_administrator_manages_regions_through_the_pages(w, login_as, db):
    client = login_as(w.sysadmin)
    assert client.get("/").headers["Location"].endswith("/admin/regions")
    page = _page(client.get("/admin/regions"))
    assert "益阳市" in page and "430903" in page and "区县" in page
    # Counts per region: 赫山区 has 2 units and 4 users.
    row = re.search(r"<td[^>]*>赫山区</td>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "4", "0"]
    # A system administrator who is no region's admin sees only the regions and the audit log.
    assert 'href="/admin/users"' not in page and 'href="/admin/audit"' in page
    form = _page(client.get(f"/admin/regions/new?parent={w.city.id}"))
    assert re.search(rf'<option selected value="{w.city.id}">益阳市（430900，市）</option>', form), form
    assert "赫山区（430903" not in form  # a county holds no regions
    edit = _page(client.get(f"/admin/regions/{w.city.id}/edit"))
    assert "市管理员（ys_admin）" in edit and 'value="%d"' % w.city.id not in edit.split("上级地区", 1)[1].split("</select>")[0]
    # Create a county under the city.
    response = client.post("/admin/regions/new", data={"code": "430921", "name": "南县", "level": "county",
                                                       "parent": str(w.city.id)})
    assert response.status_code == 303
    county = db.session.scalar(select(Region).where(Region.code == "430921"))
    assert county.parent_id == w.city.id and county.path == f"{w.city.path}{county.id}/"
    # A loop, a wrong level and an unknown parent id.
    province = region_svc.create_region(w.sysadmin, "430000", "湖南省", "province")
    region_svc.update_region(w.city, w.sysadmin, "益阳市", province)
    db.session.commit()
    page = _page(client.post(f"/admin/regions/{province.id}/edit", data={"name": "湖南省",
                                                                         "parent": str(county.id)}), 400)
    assert "不能把“湖南省”移到“南县”之下" in page
    page = _page(client.post("/admin/regions/new", data={"code": "430922", "name": "某区", "level": "county",
                                                         "parent": str(county.id)}), 400)
    assert "上级地区“南县”是区县级" in page
    assert client.post("/admin/regions/new", data={"code": "430923", "name": "某区", "level": "county",
                                                   "parent": "999999"}).status_code == 404
    assert client.get("/admin/regions/999999/edit").status_code == 404
    # The first admin: one-time password shown once, role admin, in that region, must change it.
    page = _page(client.post(f"/admin/regions/{county.id}/first-admin", data={
        "username": "nx_admin", "name": "南县管理员", "email": "nx@example.gov.cn"}))
    admin = db.session.scalar(select(User).where(User.username == "nx_admin"))
    assert admin.region_id == county.id and admin.roles == {"admin"} and admin.must_change_password
    assert admin.check_password(_password(page))
    page = _page(client.post(f"/admin/regions/{county.id}/first-admin", data={
        "username": "hs_admin", "name": "重名"}), 400)
    assert "用户名“hs_admin”已存在" in page
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == w.sysadmin.id)).all()
    assert {"region.create", "region.update", "region.first_admin", "user.create"} <= set(actions)


def test_region_deactivate_and_activate_buttons(w, login_as, db):
    client = login_as(w.sysadmin)
    response = client.post(f"/admin/regions/{w.zy.region.id}/deactivate", follow_redirects=True)
    assert "已停用地区“资阳区”，其4个用户账号同时停用。" in _page(response)
    db.session.expire_all()
    assert not w.zy.region.active and not w.zy.admin.active
    response = client.post(f"/admin/regions/{w.city.id}/deactivate", follow_redirects=True)
    assert "下还有启用的地区（赫山区）" in _page(response)
    response = client.post(f"/admin/regions/{w.zy.region.id}/activate", follow_redirects=True)
    assert "已启用地区“资阳区”，停用地区时停用的4个用户账号已恢复。" in _page(response)


# ------------------------------------------------------------------ audit scoping


def _rows(response):
    """The table body of the audit page (the filter's list names every action)."""
    return _page(response).split("<tbody>", 1)[1].split("</tbody>", 1)[0]


def test_audit_page_shows_only_the_viewers_scope(w, login_as, db):
    hs = login_as(w.hs.admin)
    zy = login_as(w.zy.admin)
    hs.post(f"/admin/users/{w.hs.liaison.id}/reset-password")
    zy.post(f"/admin/users/{w.zy.liaison.id}/reset-password")
    sysadmin = login_as(w.sysadmin)
    sysadmin.post("/admin/regions/new", data={"code": "430921", "name": "南县", "level": "county",
                                              "parent": str(w.city.id)})
    county = db.session.scalar(select(Region).where(Region.code == "430921"))
    sysadmin.post(f"/admin/regions/{county.id}/first-admin", data={"username": "nx_admin", "name": "南县管理员"})
    unknown = FreshUserClient(sysadmin.application, sysadmin.application.response_class, use_cookies=True)
    unknown.post("/login", data={"username": "nosuchperson", "password": "x" * 10})

    page = _rows(hs.get("/admin/audit"))
    assert "赫山区公安联络员（hs_gaj）" in page and "资阳区公安联络员" not in page
    assert "新建地区" not in page and "nx_admin" not in page and "nosuchperson" not in page
    page = _rows(sysadmin.get("/admin/audit"))
    assert "新建地区" in page and "设置地区管理员" in page and "nosuchperson" in page
    assert "hs_gaj" not in page and "zy_gaj" not in page
    # The city is the top region: its admin reads the rows of nobody's region, not the counties'.
    page = _rows(login_as(w.city_admin).get("/admin/audit"))
    assert "nosuchperson" in page and "hs_gaj" not in page and "新建地区" not in page
    csv_text = hs.get("/admin/audit/export.csv").get_data(as_text=True)
    assert "hs_gaj" in csv_text and "zy_gaj" not in csv_text
    # The new county's trail holds the creation of its admin (the row names the region), not the
    # region management around it.
    rows = audit_svc.page(audit_svc.AuditQuery(region_id=county.id)).rows
    assert [(r.action, r.actor_username) for r in rows] == [("user.create", "sysadmin")]


def test_audit_scope_of_targets_transitions_and_nobodys_rows(w, db):
    from datetime import date

    from fazhi_flow.models import ReportCycle, TransitionLog

    cycles = {}
    for county in (w.hs, w.zy):
        cycle = ReportCycle(year=2025, region=county.region.name, owner=county.region, title="2025年法治政府建设年度报告",
                            due=date(2026, 1, 10), issuers="x", issue_date=date(2026, 1, 6), state="collecting")
        db.session.add(cycle)
        db.session.flush()
        # Written by the city's overseer (another region): the cycle decides whose row it is.
        db.session.add(TransitionLog(cycle_id=cycle.id, event="open", from_state="setup", to_state="collecting",
                                     actor_id=w.oversight.id))
        cycles[county.region.id] = cycle
    audit_svc.record(w.oversight, "oversight.remind", f"region:{w.hs.region.id}", note="请按时发布")
    audit_svc.record(None, "auth.login_failed", "user:nosuchperson", reason="unknown_user")
    audit_svc.record(w.sysadmin, "region.update", f"region:{w.hs.region.id}", changed={"name": ["a", "b"]})
    db.session.commit()

    def seen(**scope):
        return sorted((r.action, r.target) for r in audit_svc.page(audit_svc.AuditQuery(**scope)).rows)

    hs_cycle = f"cycle:{cycles[w.hs.region.id].id}"
    assert seen(region_id=w.hs.region.id) == [("flow:cycle:open", hs_cycle),
                                              ("oversight.remind", f"region:{w.hs.region.id}")]
    assert seen(region_id=w.zy.region.id) == [("flow:cycle:open", f"cycle:{cycles[w.zy.region.id].id}")]
    # The overseer's own region holds what its people did, not the counties' transitions.
    assert seen(region_id=w.city.id) == [("oversight.remind", f"region:{w.hs.region.id}")]
    assert seen(system=True) == [("region.update", f"region:{w.hs.region.id}")]
    assert seen(unowned=True) == [("auth.login_failed", "user:nosuchperson")]
    assert len(seen()) == 5  # unscoped: the command line's operator
