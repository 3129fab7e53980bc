"""The admin pages on the one handler path: every route declares the admin rule, and each kind of
refusal answers as it always did (the page with what was typed, a 303 back to the button's page, the
open page as 200, the compile refusal as 409), with nothing written."""
from __future__ import annotations

import io
import re
from pathlib import Path

from sqlalchemy import func, select

from fazhi_flow.models import Section, Unit
from fazhi_flow.web.handler import POLICY_ATTR


def _flashes(client):
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))


def test_every_admin_route_declares_the_admin_rule(app):
    admin_views = {name: view for name, view in app.view_functions.items()
                   if name.startswith("admin.") and name != "admin.static"}
    assert len(admin_views) >= 30
    # The system administrator's region pages, and the audit log both read (each its own rows).
    others = {name: "region.manage" for name in admin_views if name.startswith("admin.region")}
    others.update({"admin.audit": "audit.view", "admin.audit_export": "audit.view"})
    undeclared = [name for name, view in admin_views.items()
                  if getattr(view, POLICY_ATTR, None) != others.get(name, "admin.manage")]
    assert undeclared == []


def test_a_refused_move_goes_back_to_the_section_with_the_message(admin_client, office, db):
    response = admin_client.post(f"/admin/sections/{office.top.id}/move", data={"direction": "outdent"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/cycles/{office.cycle.id}/outline#s{office.top.id}")
    assert any("一级章节不能再升级" in message for _, message in _flashes(admin_client))
    db.session.expire_all()
    assert office.top.parent_id is None


def test_refused_account_and_cycle_buttons_go_back_to_their_page(admin_client, office, db):
    response = admin_client.post(f"/admin/users/{office.admin.id}/deactivate")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/users/{office.admin.id}/edit")
    assert [m for c, m in _flashes(admin_client) if c == "error" and "不能停用自己的账号" in m]
    db.session.expire_all()
    assert office.admin.active
    # Collection cannot be reopened before it was ever compiled.
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/reopen-collection", data={"reopen-reason": "x"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/admin/cycles/{office.cycle.id}")
    db.session.expire_all()
    assert office.cycle.state == "setup"


def test_a_refused_open_shows_the_open_page_as_before(admin_client, office, db):
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "还没有任何任务分配" in page and "开始征集" in page
    db.session.expire_all()
    assert office.cycle.state == "setup"


def test_a_refused_delete_shows_the_delete_page_again(admin_client, office, db):
    office.cycle.state = "compiling"
    db.session.commit()
    response = admin_client.post(f"/admin/sections/{office.leaf.id}/delete")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "严格规范执法" in page and "提纲只能在筹备中或征集中修改" in page
    assert db.session.scalar(select(func.count(Section.id))) == 2


def test_a_refused_section_edit_keeps_what_was_typed(admin_client, office, db):
    office.cycle.state = "published"
    db.session.commit()
    response = admin_client.post(f"/admin/sections/{office.leaf.id}/edit", data={
        "title": "改过的标题", "guidance": "我刚写的说明", "word_limit": "800"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "我刚写的说明" in page and "改过的标题" in page
    db.session.expire_all()
    assert office.leaf.title == "严格规范执法"


def _staged(app) -> list[Path]:
    folder = Path(app.instance_path) / "import-staging"
    return sorted(folder.glob("*")) if folder.exists() else []


def test_import_confirm_keeps_the_staged_file_when_refused_and_drops_it_when_done(app, admin_client, office, db):
    for path in _staged(app):
        path.unlink()
    text = "代码,名称,类型,上级代码\nxfj,区信访局,政府部门,\n"
    page = admin_client.post("/admin/import", data={"kind": "units", "file": (io.BytesIO(text.encode()), "u.csv")},
                             content_type="multipart/form-data").get_data(as_text=True)
    fields = dict(re.findall(r'name="(kind|filename|payload)" type="hidden" value="([^"]*)"', page))
    assert len(_staged(app)) == 2
    # Somebody adds the same code before the confirmation: refused, nothing written, file kept.
    db.session.add(Unit(code="xfj", name="先到的单位", kind="other"))
    db.session.commit()
    response = admin_client.post("/admin/import/confirm", data=fields)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/import")
    assert any("未导入任何数据" in m for _, m in _flashes(admin_client))
    assert len(_staged(app)) == 2
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "xfj")) == 1
    # Once the code is free again the same confirmation goes through and the staged file goes.
    db.session.delete(db.session.scalar(select(Unit).where(Unit.code == "xfj")))
    db.session.commit()
    response = admin_client.post("/admin/import/confirm", data=fields)
    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/units")
    assert _staged(app) == []
    assert db.session.scalar(select(Unit.name).where(Unit.code == "xfj")) == "区信访局"


def test_a_broken_cycle_file_lists_every_problem(admin_client, office, db):
    data = "cycle:\n  title: 测试\n  year: 一九\nunits: 5\n".encode()
    response = admin_client.post("/admin/cycles/new/file", data={"f-file": (io.BytesIO(data), "c.yaml")},
                                 content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "文件有误，未导入任何内容" in page
    assert 'class="errors"' in page
