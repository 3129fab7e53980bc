"""Units and users: create, change, deactivate, reset passwords; import from CSV and XLSX."""
import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from fazhi_flow.models import AuditEvent, Unit, User

from .conftest import login


def one_time_password(page):
    return re.search(r'<td class="pw">([^<]+)</td>', page).group(1)


def test_create_user_shows_a_one_time_password_that_must_be_changed(admin_client, new_client, office, db):
    response = admin_client.post("/admin/users/new", data={
        "username": "gaj_ll", "name": "王五", "unit": str(office.units[1].id), "roles": ["liaison"],
        "email": "wangwu@example.gov.cn"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "只显示这一次" in page
    password = one_time_password(page)
    user = db.session.scalar(select(User).where(User.username == "gaj_ll"))
    assert user.must_change_password and user.check_password(password) and user.roles == {"liaison"}
    other = new_client()
    login(other, user, password)
    response = other.get("/admin/cycles")
    assert response.status_code == 302 and "password" in response.headers["Location"]


def test_user_form_errors_keep_input(admin_client, office, db):
    response = admin_client.post("/admin/users/new", data={
        "username": "sfj_ll", "name": "重名的人", "unit": "0", "roles": ["liaison"], "email": "not-an-email"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "已存在" in page and "必须属于某个单位" in page and "重名的人" in page
    response = admin_client.post("/admin/users/new", data={"username": "ab", "name": "", "unit": "0"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "请至少选择一个角色" in page and "请填写姓名" in page
    assert db.session.scalar(select(func.count(User.id))) == 3


def test_deactivate_ends_the_users_session(admin_client, new_client, office, db):
    liaison_client = login(new_client(), office.liaison)
    assert liaison_client.get("/").status_code in (200, 302)
    response = admin_client.post(f"/admin/users/{office.liaison.id}/deactivate")
    assert response.status_code == 303
    db.session.expire_all()
    assert not office.liaison.active
    # The old cookie no longer logs anybody in.
    response = liaison_client.get("/admin/cycles")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert admin_client.post(f"/admin/users/{office.admin.id}/deactivate", follow_redirects=True) \
        .get_data(as_text=True).count("不能停用自己的账号") == 1
    assert admin_client.post(f"/admin/users/{office.liaison.id}/activate").status_code == 303
    db.session.expire_all()
    assert office.liaison.active


def test_reset_password(admin_client, new_client, office, db):
    liaison_client = login(new_client(), office.liaison)
    token = office.liaison.session_token
    response = admin_client.post(f"/admin/users/{office.liaison.id}/reset-password")
    password = one_time_password(response.get_data(as_text=True))
    db.session.expire_all()
    assert office.liaison.must_change_password and office.liaison.check_password(password)
    assert office.liaison.session_token != token
    assert liaison_client.get("/admin/cycles").status_code == 302
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "user.reset_password")) == 1


def test_edit_user_roles_and_unit(admin_client, office, db):
    response = admin_client.post(f"/admin/users/{office.liaison.id}/edit", data={
        "name": "联络员甲", "unit": str(office.units[0].id), "roles": ["liaison", "unit_head"], "email": ""})
    assert response.status_code == 303
    db.session.expire_all()
    assert office.liaison.roles == {"liaison", "unit_head"}
    response = admin_client.post(f"/admin/users/{office.admin.id}/edit", data={
        "name": "管理员甲", "unit": "0", "roles": ["reviewer"]})
    assert response.status_code == 400 and "不能取消自己的管理员角色" in response.get_data(as_text=True)


def test_units_create_rename_deactivate(admin_client, office, factory, db):
    response = admin_client.post("/admin/units/new", data={"code": "rsj", "name": "区人社局", "kind": "government",
                                                           "parent": "0"})
    assert response.status_code == 303
    unit = db.session.scalar(select(Unit).where(Unit.code == "rsj"))
    response = admin_client.post("/admin/units/new", data={"code": "rsj", "name": "区人社局", "kind": "government",
                                                           "parent": "0"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "单位代码“rsj”已存在" in page and "已有名为“区人社局”的单位" in page
    response = admin_client.post(f"/admin/units/{unit.id}/edit", data={"name": "区人力资源和社会保障局",
                                                                      "kind": "government", "parent": str(unit.id)})
    assert response.status_code in (200, 400)  # itself is not offered as a parent
    response = admin_client.post(f"/admin/units/{unit.id}/edit", data={"name": "区人力资源和社会保障局",
                                                                      "kind": "government", "parent": "0"})
    assert response.status_code == 303
    db.session.expire_all()
    assert unit.name == "区人力资源和社会保障局"
    # A unit with work in a running cycle cannot be deactivated; its users go with it otherwise.
    factory.assignment(office.leaf, office.units[0])
    db.session.commit()
    page = admin_client.post(f"/admin/units/{office.units[0].id}/deactivate", follow_redirects=True).get_data(as_text=True)
    assert "仍有任务分配" in page
    db.session.expire_all()
    assert office.units[0].active and office.liaison.active
    person = factory.user("liaison", unit=unit, username="rsj_ll")
    db.session.commit()
    assert admin_client.post(f"/admin/units/{unit.id}/deactivate").status_code == 303
    db.session.expire_all()
    assert not unit.active and not person.active


def csv_bytes(text, encoding="utf-8"):
    return io.BytesIO(text.encode(encoding))


def upload(client, kind, data, name):
    return client.post("/admin/import", data={"kind": kind, "file": (data, name)},
                       content_type="multipart/form-data")


def confirm(client, page):
    fields = dict(re.findall(r'name="(kind|filename|payload)" type="hidden" value="([^"]*)"', page))
    return client.post("/admin/import/confirm", data=fields)


def test_import_units_from_gbk_csv_with_preview_then_confirm(admin_client, office, db):
    text = "代码,名称,类型,上级代码\nxfj,区信访局,政府部门,\nxfj2,信访接待中心,其他,xfj\n"
    response = upload(admin_client, "units", csv_bytes(text, "gb18030"), "单位.csv")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "检查通过" in page and "信访接待中心" in page
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code.like("xfj%"))) == 0  # preview writes nothing
    response = confirm(admin_client, page)
    assert response.status_code == 303
    child = db.session.scalar(select(Unit).where(Unit.code == "xfj2"))
    assert child.parent.code == "xfj" and child.kind == "other"
    # The staged file is used once.
    assert confirm(admin_client, page).status_code == 303
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code.like("xfj%"))) == 2


def test_import_with_one_bad_row_writes_nothing(admin_client, office, db):
    text = ("代码,名称,类型,上级代码\nok1,好单位,政府部门,\nsfj,重复代码,政府部门,\n"
            "ok2,另一个,火星机关,\nok3,坏上级,其他,nosuch\nok1,好单位二,其他,\n")
    page = upload(admin_client, "units", csv_bytes(text), "units.csv").get_data(as_text=True)
    assert "不会导入任何数据" in page
    for message in ["第3行：单位代码“sfj”已存在", "第4行：未知的单位类型“火星机关”", "第5行：上级代码“nosuch”",
                    "第6行：单位代码“ok1”与第2行重复"]:
        assert message in page, message
    assert "确认导入" not in page
    assert db.session.scalar(select(func.count(Unit.id))) == 4


def test_import_users_from_xlsx(admin_client, office, db):
    book = Workbook()
    sheet = book.active
    sheet.append(["用户名", "姓名", "单位代码", "角色", "邮箱", "电话"])
    sheet.append(["scj_ll", "赵六", "scjgj", "联络员、单位负责人", "zl@example.gov.cn", 7371234567])
    sheet.append(["sh2", "钱七", "yfzqb", "审核人", None, None])
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    page = upload(admin_client, "users", out, "用户.xlsx").get_data(as_text=True)
    assert "检查通过" in page, page[:3000]
    response = confirm(admin_client, page)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and page.count('class="pw"') == 2
    user = db.session.scalar(select(User).where(User.username == "scj_ll"))
    assert user.roles == {"liaison", "unit_head"} and user.unit.code == "scjgj" and user.phone == "7371234567"
    assert user.must_change_password


def test_import_user_rows_errors(admin_client, office, db):
    text = "用户名,姓名,单位代码,角色\nsfj_ll,甲,sfj,联络员\nnew1,,nosuch,联络员\nnew2,乙,,联络员\nnew3,丙,,校长\n"
    page = upload(admin_client, "users", csv_bytes(text), "u.csv").get_data(as_text=True)
    for message in ["第2行：用户名“sfj_ll”已存在", "第3行：单位代码“nosuch”不存在", "第3行：姓名不能为空",
                    "第4行：联络员必须属于某个单位", "第5行：无法识别的角色：校长"]:
        assert message in page, message
    assert db.session.scalar(select(func.count(User.id))) == 3


@pytest.mark.parametrize("name,data,message", [
    ("x.csv", b"  \n", "文件是空的"),
    ("x.xls", b"\xd0\xcf\x11\xe0 old excel", "另存为.xlsx"),
    ("x.xlsx", b"PK\x03\x04broken", "文件可能已损坏"),
    ("x.pdf", b"%PDF-1.4", "只支持.xlsx或.csv"),
    ("x.csv", "名字,电话\n甲,1\n".encode(), "缺少必需的列"),
])
def test_import_rejects_odd_files(admin_client, office, name, data, message):
    response = upload(admin_client, "units", io.BytesIO(data), name)
    assert message in response.get_data(as_text=True)


def test_import_templates_download(admin_client, office):
    response = admin_client.get("/admin/import/template-users.xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    assert [c.value for c in sheet[1]] == ["用户名", "姓名", "单位代码", "角色", "邮箱", "电话"]
