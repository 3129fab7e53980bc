"""The liaison's task list and editor: save, conflicts, validation, submit, recall, history."""
from sqlalchemy import event

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Contribution
from fazhi_flow.services import contributions as svc


def _fresh(db, cid):
    db.session.expire_all()
    return db.session.get(Contribution, cid)


def test_task_list_shows_what_a_liaison_needs(as_user, world, db):
    svc.save_draft(world.contribution, world.liaison, "第一段\n第二段")
    svc.submit_contribution(world.contribution, world.liaison)
    svc.return_contribution(world.contribution, world.reviewer, comment="请补充执法检查的次数", paragraph=2)
    db.session.commit()
    text = as_user(world.liaison).get("/tasks/").get_data(as_text=True)
    assert world.section.path_label in text
    assert "已退回" in text and "牵头" in text
    assert "请补充执法检查的次数" in text and "第2段" in text
    assert "已逾期" in text or "还剩" in text or "今天截止" in text


def test_other_units_material_is_not_listed(as_user, world, factory, db):
    other_assignment = factory.assignment(world.section, world.other_unit, role="support")
    factory.contribution(other_assignment, body="他单位的秘密内容")
    db.session.commit()
    text = as_user(world.liaison).get("/tasks/").get_data(as_text=True)
    assert "他单位的秘密内容" not in text
    page = as_user(world.liaison).get(f"/tasks/{world.contribution.id}").get_data(as_text=True)
    assert "区市场监管局" in page and "配合" in page  # the other unit is named, its text is not shown
    assert "他单位的秘密内容" not in page


def test_save_draft(as_user, world, db):
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{world.contribution.id}",
                    data={"body": "一、新写的内容\r\n第二段", "version": world.contribution.version, "action": "save"})
    assert r.status_code == 302
    assert "草稿已保存" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert _fresh(db, world.contribution.id).body == "一、新写的内容\n第二段"


def test_conflicting_save_keeps_both_texts(as_user, world, factory, db):
    colleague = factory.user("liaison", unit=world.unit, name="同事小王")
    db.session.commit()
    loaded_version = world.contribution.version
    svc.save_draft(world.contribution, colleague, "同事先保存的内容", expected_version=loaded_version)
    db.session.commit()
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{world.contribution.id}",
                    data={"body": "我自己写的长段落", "version": loaded_version, "action": "save"})
    assert r.status_code == 409
    text = r.get_data(as_text=True)
    assert "同事小王" in text and "没有保存" in text
    assert "我自己写的长段落" in text          # my text is still in the textarea
    assert "同事先保存的内容" in text          # and the colleague's version is shown for comparison
    assert _fresh(db, world.contribution.id).body == "同事先保存的内容"  # nothing overwritten
    # Saving again from that page (which now carries the current version) is a deliberate replace.
    current = _fresh(db, world.contribution.id).version
    r = client.post(f"/tasks/{world.contribution.id}",
                    data={"body": "合并后的内容", "version": current, "action": "save"})
    assert r.status_code == 302
    assert _fresh(db, world.contribution.id).body == "合并后的内容"


def test_too_long_text_is_kept_on_screen(as_user, world, db):
    client = as_user(world.liaison)
    body = "很长" * (svc.MAX_BODY_CHARS // 2 + 10)
    r = client.post(f"/tasks/{world.contribution.id}", data={"body": body, "version": world.contribution.version})
    assert r.status_code == 400
    text = r.get_data(as_text=True)
    assert "正文过长" in text and body in text
    assert _fresh(db, world.contribution.id).body != body


def test_missing_or_odd_version_is_handled(as_user, world, db):
    client = as_user(world.liaison)
    for version in ("", "abc", "99999999999999999999"):
        r = client.post(f"/tasks/{world.contribution.id}", data={"body": "保留我", "version": version})
        assert r.status_code == 400, version
        assert "保留我" in r.get_data(as_text=True)


def test_submit_needs_confirmation_then_recall(as_user, world, db):
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{world.contribution.id}",
                    data={"body": "提交的内容", "version": world.contribution.version, "action": "submit"})
    assert r.headers["Location"].endswith(f"/tasks/{world.contribution.id}/submit")
    assert _fresh(db, world.contribution.id).state == "draft"
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "确认提交审核" in page and "提交的内容" in page
    c = _fresh(db, world.contribution.id)
    r = client.post(f"/tasks/{c.id}/submit", data={"version": c.version})
    assert r.status_code == 302
    c = _fresh(db, world.contribution.id)
    assert c.state == "submitted" and len(c.revisions) == 1
    page = client.get(f"/tasks/{c.id}").get_data(as_text=True)
    assert "撤回" in page and "保存草稿" not in page
    r = client.post(f"/tasks/{c.id}/recall", data={"version": c.version})
    assert _fresh(db, c.id).state == "draft"


def test_submit_with_stale_confirmation_is_refused(as_user, world, db):
    client = as_user(world.liaison)
    stale = world.contribution.version
    svc.save_draft(world.contribution, world.liaison, "后来又改了")
    db.session.commit()
    r = client.post(f"/tasks/{world.contribution.id}/submit", data={"version": stale},
                    headers={"Referer": f"http://localhost/tasks/{world.contribution.id}/submit"})
    assert r.status_code == 303
    assert _fresh(db, world.contribution.id).state == "draft"


def test_empty_submission_is_refused_kindly(as_user, world, db):
    world.contribution.body = ""
    db.session.commit()
    client = as_user(world.liaison)
    r = client.get(f"/tasks/{world.contribution.id}/submit")
    assert r.status_code == 302
    assert "材料内容为空" in client.get(r.headers["Location"]).get_data(as_text=True)


def test_history_and_diff_between_any_two_revisions(as_user, world, db):
    c = world.contribution
    svc.save_draft(c, world.liaison, "第一段\n第二段原来的样子")
    svc.submit_contribution(c, world.liaison)
    svc.return_contribution(c, world.reviewer, comment="第二段写具体些")
    svc.save_draft(c, world.liaison, "第一段\n第二段改成了更具体的样子\n第三段新加的")
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    client = as_user(world.liaison)
    text = client.get(f"/tasks/{c.id}/history?a=1&b=2").get_data(as_text=True)
    assert "第三段新加的" in text and "<ins>" in text and "<del>" in text
    assert "第二段写具体些" in text
    assert "请选择两个存在的版本" in client.get(f"/tasks/{c.id}/history?a=7&b=x").get_data(as_text=True)


def test_task_list_query_count_does_not_grow(as_user, world, factory, db, app):
    def count_queries(n_sections):
        for i in range(n_sections):
            section = factory.section(world.cycle, f"章节{i}", reviewers=[world.reviewer])
            factory.contribution(factory.assignment(section, world.unit))
        db.session.commit()
        client = as_user(world.liaison)
        seen = []
        listener = lambda *a, **k: seen.append(1)  # noqa: E731
        event.listen(_db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/tasks/").status_code == 200
        finally:
            event.remove(_db.engine, "before_cursor_execute", listener)
        return len(seen)

    few = count_queries(2)
    many = count_queries(12)
    assert many == few, (few, many)
