"""The reviewer's queue, review page, decisions and bulk approval; the unit head's queue."""
from datetime import timedelta

from sqlalchemy import select

from fazhi_flow.models import Contribution, TransitionLog
from fazhi_flow.services import contributions as svc


def _fresh(db, cid):
    db.session.expire_all()
    return db.session.get(Contribution, cid)


def _submitted(factory, world, db, title, unit=None, body="第一段\n第二段", reviewers=None):
    section = factory.section(world.cycle, title, reviewers=reviewers if reviewers is not None else [world.reviewer])
    c = factory.contribution(factory.assignment(section, unit or world.unit), body=body)
    liaison = world.liaison if (unit or world.unit) == world.unit else None
    svc.submit_contribution(c, liaison or factory.user("liaison", unit=unit))
    db.session.commit()
    return c


def test_queue_is_oldest_first_filtered_and_only_mine(as_user, world, factory, db):
    first = _submitted(factory, world, db, "甲章节")
    second = _submitted(factory, world, db, "乙章节", unit=world.other_unit)
    first.submitted_at = second.submitted_at - timedelta(days=2)
    not_mine = _submitted(factory, world, db, "丙章节", reviewers=[world.outsider_reviewer])
    db.session.commit()
    client = as_user(world.reviewer)
    text = client.get("/review/").get_data(as_text=True)
    body = text.split("<tbody>")[1]
    assert body.index("甲章节") < body.index("乙章节")
    assert "丙章节" not in text and "2天" in body
    text = client.get(f"/review/?unit={world.other_unit.id}").get_data(as_text=True)
    assert "乙章节" in text and "甲章节" not in text.split("<tbody>")[1]
    text = client.get(f"/review/?section={first.section_id}&cycle={world.cycle.id}").get_data(as_text=True)
    assert "甲章节" in text.split("<tbody>")[1] and "乙章节" not in text.split("<tbody>")[1]
    assert client.get("/review/?unit=abc&section=--1").status_code == 200
    # The other reviewer may not act on it.
    r = client.post(f"/review/{not_mine.id}/approve", data={"version": not_mine.version})
    assert r.status_code == 403
    assert _fresh(db, not_mine.id).state == "submitted"


def test_return_needs_a_comment_and_can_point_at_a_paragraph(as_user, world, db):
    c = world.contribution
    svc.save_draft(c, world.liaison, "第一段\n第二段\n第三段")
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    client = as_user(world.reviewer)
    r = client.post(f"/review/{c.id}/return", data={"version": c.version, "comment": "  "})
    assert r.status_code == 400 and "必须填写意见" in r.get_data(as_text=True)
    r = client.post(f"/review/{c.id}/return", data={"version": c.version, "comment": "改", "paragraph": "9"})
    assert r.status_code == 400 and "段落编号应在1到3之间" in r.get_data(as_text=True)
    assert _fresh(db, c.id).state == "submitted"
    r = client.post(f"/review/{c.id}/return", data={"version": c.version, "comment": "请补充数字", "paragraph": "2"})
    assert r.status_code == 302
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.event == "return")).one()
    assert log.comment == "请补充数字" and log.context == {"paragraph": 2}
    page = as_user(world.liaison).get(f"/tasks/{c.id}").get_data(as_text=True)
    assert "请补充数字" in page and "第2段" in page


def test_review_page_shows_diff_and_earlier_comments_then_approve(as_user, world, db):
    c = world.contribution
    svc.save_draft(c, world.liaison, "第一段\n旧的第二段")
    svc.submit_contribution(c, world.liaison)
    svc.return_contribution(c, world.reviewer, comment="第二段不够具体")
    svc.save_draft(c, world.liaison, "第一段\n新的第二段，共检查42次")
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    client = as_user(world.reviewer)
    text = client.get(f"/review/{c.id}").get_data(as_text=True)
    assert "第1版 → 第2版" in text and "<ins>" in text and "第二段不够具体" in text
    r = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": ""})
    assert r.status_code == 302
    assert _fresh(db, c.id).state == "approved"


def test_stale_decision_is_refused(as_user, world, db):
    c = world.contribution
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    seen = c.version
    svc.recall_contribution(c, world.liaison)
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    client = as_user(world.reviewer)
    r = client.post(f"/review/{c.id}/approve", data={"version": seen},
                    headers={"Referer": f"http://localhost/review/{c.id}"})
    assert r.status_code == 303
    assert "有了变化" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert _fresh(db, c.id).state == "submitted"


def test_who_may_not_review(as_user, world, db):
    c = world.contribution
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    for user in (world.liaison, world.other_liaison, world.unit_head, world.own_unit_reviewer,
                 world.outsider_reviewer, world.admin):
        r = as_user(user).post(f"/review/{c.id}/approve", data={"version": c.version})
        assert r.status_code == 403, user.name
    assert _fresh(db, c.id).state == "submitted"
    assert as_user(world.other_liaison).get(f"/review/{c.id}").status_code == 403


def test_bulk_approve_after_confirmation(as_user, world, factory, db):
    a = _submitted(factory, world, db, "甲章节")
    b = _submitted(factory, world, db, "乙章节", unit=world.other_unit)
    client = as_user(world.reviewer)
    r = client.get(f"/review/bulk?ids={a.id}&ids={b.id}&ids=xyz")
    text = r.get_data(as_text=True)
    assert "确认通过这 2 份材料" in text and "甲章节" in text and "乙章节" in text
    assert _fresh(db, a.id).state == "submitted"  # GET only shows the list
    r = client.post("/review/bulk", data={"ids": [a.id, b.id], f"v{a.id}": a.version, f"v{b.id}": b.version})
    assert r.status_code == 302
    assert _fresh(db, a.id).state == "approved" and _fresh(db, b.id).state == "approved"


def test_bulk_approve_is_all_or_nothing(as_user, world, factory, db):
    a = _submitted(factory, world, db, "甲章节")
    b = _submitted(factory, world, db, "乙章节")
    versions = {a.id: a.version, b.id: b.version}
    svc.recall_contribution(b, world.liaison)
    db.session.commit()
    client = as_user(world.reviewer)
    r = client.post("/review/bulk", data={"ids": [a.id, b.id], f"v{a.id}": versions[a.id],
                                          f"v{b.id}": versions[b.id]})
    assert r.status_code == 302
    assert "没有通过任何材料" in client.get("/review/").get_data(as_text=True)
    assert _fresh(db, a.id).state == "submitted"
    assert as_user(world.reviewer).get("/review/bulk").status_code == 302


def test_unit_head_queue_and_decisions(as_user, factory, db):
    w = factory.world(unit_head_review=True)
    db.session.commit()
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    assert w.contribution.state == "unit_review"
    client = as_user(w.unit_head)
    assert client.get("/").headers["Location"] == "/tasks/unit-queue"
    assert w.section.title in client.get("/tasks/unit-queue").get_data(as_text=True)
    page = client.get(f"/tasks/{w.contribution.id}/unit-review").get_data(as_text=True)
    assert "同意报送" in page and "退回修改" in page
    r = client.post(f"/tasks/{w.contribution.id}/unit-return", data={"version": w.contribution.version, "comment": ""})
    assert r.status_code == 400 and "必须填写意见" in r.get_data(as_text=True)
    r = client.post(f"/tasks/{w.contribution.id}/unit-approve", data={"version": w.contribution.version})
    assert r.status_code == 302
    assert _fresh(db, w.contribution.id).state == "submitted"
    # Someone else's unit head, a liaison: refused.
    other_head = factory.user("unit_head", unit=w.other_unit)
    db.session.commit()
    assert as_user(other_head).get(f"/tasks/{w.contribution.id}/unit-review").status_code == 403
    assert as_user(w.liaison).get("/tasks/unit-queue").status_code == 403


def test_other_units_contribution_is_refused(as_user, world, db):
    client = as_user(world.other_liaison)
    for url in (f"/tasks/{world.contribution.id}", f"/tasks/{world.contribution.id}/history",
                f"/tasks/{world.contribution.id}/submit"):
        assert client.get(url).status_code == 403, url
    r = client.post(f"/tasks/{world.contribution.id}", data={"body": "入侵", "version": world.contribution.version})
    assert r.status_code == 403
    assert client.get("/tasks/999999").status_code == 404
    assert _fresh(db, world.contribution.id).body != "入侵"
    assert as_user(world.reviewer).get("/tasks/").status_code == 403
