"""The admin's cycle pages, outline, assignments and reminder settings act within the admin's region.

Two sibling counties (赫山区, 资阳区) both have a unit "gaj" and a 2025 cycle in collecting. The admin of
赫山区 sees and changes only 赫山区's; every id of 资阳区's objects, in a URL or a form, answers 404 and
changes nothing; the happy paths still work with several regions in the installation."""
from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section, Unit, User
from fazhi_flow.models.reminder import ExtensionRequest, OutboxMessage, ReminderPolicy, WebhookTarget
from fazhi_flow.testing import FreshUserClient, login
from fazhi_flow.timeutil import local_today

# 资阳区's names are distinctive, so a page showing any of them is caught by a plain text search.
ZY_MARK = "资阳专属"
BODY = "全年办理行政复议案件{{fy_cases}}件，行政诉讼应诉{{ys_cases}}件，较上年增长。"


def _cycle(db, factory, county, title, marker, reviewer):
    cycle = ReportCycle(year=2025, owner=county.region, region=county.region.name, title=title,
                        due=date(2026, 1, 10), issuers=f"中共{county.region.name}委员会", state="collecting")
    db.session.add(cycle)
    db.session.flush()
    top = factory.section(cycle, f"{marker}主要举措和成效", code="measures", position=0)
    leaf = factory.section(cycle, f"{marker}严格规范公正文明执法", parent=top, code="enforce", position=0,
                           reviewers=[reviewer], guidance="写明" + "具体做法" * 200)
    assignment = factory.assignment(leaf, county.gaj)
    contribution = factory.contribution(assignment, state="draft", body=BODY)
    return SimpleNamespace(cycle=cycle, top=top, leaf=leaf, assignment=assignment, contribution=contribution)


@pytest.fixture()
def world(two_regions, factory, db):
    w = two_regions
    zy = w.zy
    # 资阳区's people and units carry the mark; its gaj keeps the code "gaj", as 赫山区's does.
    zy.gaj.name = f"{ZY_MARK}公安分局"
    zy.reviewer.name = f"{ZY_MARK}审核人"
    w.hs.c = _cycle(db, factory, w.hs, "赫山区2025年法治政府建设年度报告", "", w.hs.reviewer)
    w.zy.c = _cycle(db, factory, w.zy, f"{ZY_MARK}2025年法治政府建设年度报告", ZY_MARK, zy.reviewer)
    for county in (w.hs, w.zy):
        county.request = ExtensionRequest(assignment=county.c.assignment, requested_by_id=county.liaison.id,
                                          reason="材料需要公安部门会签", current_due=date(2026, 1, 10),
                                          requested_due=date(2026, 1, 20), status="pending")
        county.robot = WebhookTarget(name=f"{county.region.name}公安群", kind="wecom",
                                     url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                                     unit_id=county.gaj.id, active=True)
        county.cycle_robot = WebhookTarget(name=f"{county.region.name}全体群", kind="dingtalk",
                                           url="https://oapi.dingtalk.com/robot/send?access_token=t",
                                           cycle_id=county.c.cycle.id, active=True)
        db.session.add_all([county.request, county.robot, county.cycle_robot])
        db.session.flush()
        county.message = OutboxMessage(channel="email", user_id=county.liaison.id, address="ll@example.test",
                                       subject=f"{county.region.name}催报：请提交材料", body="正文",
                                       cause="reminder", status="dead", last_error="连接超时")
        county.robot_message = OutboxMessage(channel="webhook", webhook_id=county.robot.id, address=county.robot.url,
                                             subject=f"{county.region.name}机器人催报", body="正文",
                                             cause="reminder", status="dead", last_error="连接超时")
        db.session.add_all([county.message, county.robot_message])
    zy.robot.name = f"{ZY_MARK}公安群"
    zy.message.subject = f"{ZY_MARK}催报：请提交材料"
    zy.robot_message.subject = f"{ZY_MARK}机器人催报"
    db.session.commit()
    return w


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _dump(db, region_id):
    """资阳区's rows that any of these pages could change, column by column."""
    db.session.expire_all()
    cycles = db.session.scalars(select(ReportCycle).where(ReportCycle.region_id == region_id)
                                .order_by(ReportCycle.id)).all()
    ids = [c.id for c in cycles]
    sections = db.session.scalars(select(Section).where(Section.cycle_id.in_(ids)).order_by(Section.id)).all()
    rows = []
    for row in [*cycles, *sections,
                *db.session.scalars(select(Assignment).join(Section).where(Section.cycle_id.in_(ids))
                                    .order_by(Assignment.id)),
                *db.session.scalars(select(Contribution).where(Contribution.cycle_id.in_(ids))
                                    .order_by(Contribution.id)),
                *db.session.scalars(select(ExtensionRequest).order_by(ExtensionRequest.id)),
                *db.session.scalars(select(WebhookTarget).order_by(WebhookTarget.id)),
                *db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)),
                *db.session.scalars(select(ReminderPolicy).order_by(ReminderPolicy.id))]:
        rows.append((type(row).__name__, {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}))
    rows.append(("reviewers", [[u.id for u in s.reviewers] for s in sections]))
    return rows


def _cross_region_requests(w):
    """Every page of this area, each with 资阳区's ids (and plausible fields for the POSTs)."""
    zy = w.zy
    cid, sid, top = zy.c.cycle.id, zy.c.leaf.id, zy.c.top.id
    kid, rid = zy.c.contribution.id, zy.request.id
    return [
        ("GET", f"/admin/cycles/{cid}", {}),
        ("GET", f"/admin/cycles/{cid}/edit", {}),
        ("POST", f"/admin/cycles/{cid}/edit", {"title": "改名", "issuers": "甲"}),
        ("GET", f"/admin/cycles/{cid}/open", {}),
        ("POST", f"/admin/cycles/{cid}/open", {"late": "keep"}),
        ("POST", f"/admin/cycles/{cid}/compile", {"compile-reason": "强制汇总"}),
        ("GET", f"/admin/cycles/{cid}/reopen-collection", {}),
        ("POST", f"/admin/cycles/{cid}/reopen-collection", {"late": "keep", "reopen-reason": "再征集"}),
        ("GET", f"/admin/cycles/{cid}/contributions", {}),
        ("GET", f"/admin/cycles/{cid}/contributions?state=draft", {}),
        ("GET", f"/admin/cycles/{cid}/outline", {}),
        ("POST", f"/admin/cycles/{cid}/sections", {"new-title": "新增章节", "new-parent": "0"}),
        ("GET", f"/admin/cycles/{cid}/assignments", {}),
        ("GET", f"/admin/sections/{sid}/edit", {}),
        ("POST", f"/admin/sections/{sid}/edit", {"title": "改名"}),
        ("POST", f"/admin/sections/{top}/move", {"direction": "down"}),
        ("GET", f"/admin/sections/{sid}/delete", {}),
        ("POST", f"/admin/sections/{top}/delete", {}),
        ("GET", f"/admin/sections/{sid}/assignments", {}),
        ("POST", f"/admin/sections/{sid}/assignments", {f"role-{zy.gaj.id}": ""}),
        ("GET", f"/admin/contributions/{kid}/reopen", {}),
        ("POST", f"/admin/contributions/{kid}/reopen", {"reason": "重新修改"}),
        ("GET", f"/admin/contributions/{kid}/unit-decision", {}),
        ("POST", f"/admin/contributions/{kid}/unit-decision", {"event": "unit_return", "return-reason": "退回"}),
        ("POST", "/admin/cycles/new/clone", {"c-source": str(cid), "c-year": "2026", "confirm": "1"}),
        ("POST", "/admin/cycles/new/clone", {"c-source": str(cid), "c-year": "2026"}),
        ("GET", f"/reminders/cycles/{cid}/policy", {}),
        ("POST", f"/reminders/cycles/{cid}/policy", {"enabled": "on", "before_due_days": "3", "send_time": "09:00"}),
        ("POST", f"/reminders/cycles/{cid}/webhooks", {"name": "群", "kind": "wecom", "owner": "cycle",
                                                       "url": "https://example.test/hook"}),
        ("POST", f"/reminders/webhooks/{zy.robot.id}/remove", {}),
        ("POST", f"/reminders/webhooks/{zy.cycle_robot.id}/remove", {}),
        ("POST", f"/reminders/extensions/{rid}/decide", {"decision": "grant"}),
        ("POST", f"/reminders/extensions/{rid}/withdraw", {}),
        ("GET", f"/reminders/cycles/{cid}/chase", {}),
        ("POST", f"/reminders/cycles/{cid}/chase", {"scope": "units", "unit_id": str(zy.gaj.id)}),
        ("POST", f"/reminders/outbox/{zy.message.id}/retry", {}),
        ("POST", f"/reminders/outbox/{zy.robot_message.id}/retry", {}),
    ]


def test_every_page_with_another_regions_ids_answers_404_and_changes_nothing(app, db, world):
    before = _dump(db, world.zy.region.id)
    client = _client(app, world.hs.admin)
    wrong = []
    for method, url, data in _cross_region_requests(world):
        response = client.open(url, method=method, data=data)
        if response.status_code != 404 or ZY_MARK in response.get_data(as_text=True):
            wrong.append((method, url, response.status_code))
    assert wrong == []
    assert _dump(db, world.zy.region.id) == before


def test_lists_show_only_the_admins_region(app, db, world):
    client = _client(app, world.hs.admin)
    pages = {url: client.get(url) for url in (
        "/admin/cycles", "/admin/cycles/new", f"/admin/cycles/new?source={world.zy.c.cycle.id}",
        f"/admin/cycles/{world.hs.c.cycle.id}", f"/admin/cycles/{world.hs.c.cycle.id}/assignments",
        f"/admin/sections/{world.hs.c.leaf.id}/assignments", f"/admin/cycles/{world.hs.c.cycle.id}/contributions"
        "?state=draft", f"/reminders/cycles/{world.hs.c.cycle.id}/policy", "/reminders/extensions",
        f"/reminders/cycles/{world.hs.c.cycle.id}/chase", "/reminders/outbox", "/reminders/outbox?status=dead")}
    for url, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code == 200, url
        assert ZY_MARK not in html and "资阳区" not in html, url
    assert "赫山区2025年法治政府建设年度报告" in pages["/admin/cycles"].get_data(as_text=True)
    # The new-cycle page proposes the region's own name and offers only its own cycles to copy.
    new = pages["/admin/cycles/new"].get_data(as_text=True)
    assert 'value="赫山区"' in new and "赫山区 2025年" in new
    sheet = pages[f"/admin/sections/{world.hs.c.leaf.id}/assignments"].get_data(as_text=True)
    assert "赫山公安分局" in sheet and "赫山区审核人" in sheet
    policy_page = pages[f"/reminders/cycles/{world.hs.c.cycle.id}/policy"].get_data(as_text=True)
    assert "赫山区公安群" in policy_page and "赫山区全体群" in policy_page
    outbox = pages["/reminders/outbox?status=dead"].get_data(as_text=True)
    assert "赫山区催报：请提交材料" in outbox and "赫山区机器人催报" in outbox
    assert "材料需要公安部门会签" in pages["/reminders/extensions"].get_data(as_text=True)


def test_forms_naming_another_regions_unit_or_reviewer_are_refused(app, db, world):
    hs, zy = world.hs, world.zy
    client = _client(app, hs.admin)
    before = _dump(db, zy.region.id)
    sheet = f"/admin/sections/{hs.c.leaf.id}/assignments"
    own = {f"role-{hs.gaj.id}": "lead", "reviewers": str(hs.reviewer.id)}
    # 资阳区's gaj (same code) as a unit, 资阳区's reviewer as a reviewer: as if they did not exist.
    assert client.post(sheet, data={**own, f"role-{zy.gaj.id}": "support"}).status_code == 404
    assert client.post(sheet, data={**own, "reviewers": [str(hs.reviewer.id), str(zy.reviewer.id)]}
                       ).status_code == 404
    robots = f"/reminders/cycles/{hs.c.cycle.id}/webhooks"
    assert client.post(robots, data={"name": "公安群", "kind": "wecom", "owner": "unit", "unit_id": str(zy.gaj.id),
                                     "url": "https://example.test/hook"}).status_code == 404
    chase = f"/reminders/cycles/{hs.c.cycle.id}/chase"
    assert client.post(chase, data={"scope": "units", "unit_id": [str(hs.gaj.id), str(zy.gaj.id)]}
                       ).status_code == 404
    db.session.expire_all()
    assert [u.id for u in db.session.get(Section, hs.c.leaf.id).reviewers] == [hs.reviewer.id]
    assert db.session.scalar(select(func.count(Assignment.id)).where(Assignment.section_id == hs.c.leaf.id)) == 1
    assert db.session.scalar(select(func.count(WebhookTarget.id))) == 4
    assert _dump(db, zy.region.id) == before
    # The same forms with the region's own unit and reviewer work.
    response = client.post(sheet, data={f"role-{hs.gaj.id}": "lead", f"role-{hs.office.id}": "support",
                                        "reviewers": str(hs.reviewer.id)})
    assert response.status_code == 303
    assert db.session.scalar(select(func.count(Assignment.id)).where(Assignment.section_id == hs.c.leaf.id)) == 2
    assert client.post(robots, data={"name": "公安群二", "kind": "wecom", "owner": "unit", "unit_id": str(hs.gaj.id),
                                     "url": "https://example.test/hook"}).status_code == 302
    assert db.session.scalar(select(WebhookTarget).where(WebhookTarget.name == "公安群二")).unit_id == hs.gaj.id


def test_services_refuse_another_regions_objects(db, world):
    from fazhi_flow.errors import NotFound
    from fazhi_flow.services import assignments, clone, reminders

    hs, zy = world.hs, world.zy
    with pytest.raises(NotFound):
        assignments.set_reviewers(hs.c.leaf, hs.admin, [zy.reviewer.id])
    with pytest.raises(NotFound):
        assignments.set_section_assignments(hs.c.leaf, hs.admin, {zy.gaj.id: assignments.UnitChoice("lead")})
    with pytest.raises(NotFound):
        clone.check_target(zy.c.cycle, hs.admin, 2026)
    with pytest.raises(NotFound):
        reminders.add_webhook(hs.admin, "群", "wecom", "https://example.test/h", unit_id=zy.gaj.id)
    with pytest.raises(NotFound):
        reminders.add_webhook(hs.admin, "群", "wecom", "https://example.test/h", cycle_id=zy.c.cycle.id)
    with pytest.raises(NotFound):
        reminders.remove_webhook(hs.admin, zy.robot)
    with pytest.raises(NotFound):
        reminders.decide_extension(zy.request, hs.admin, True)
    with pytest.raises(NotFound):
        reminders.retry_message(hs.admin, zy.message)
    with pytest.raises(NotFound):
        reminders.send_manual_reminder(zy.c.cycle, hs.admin, all_overdue=True)
    db.session.rollback()


def test_retry_all_dead_requeues_only_the_admins_region(app, db, world):
    client = _client(app, world.hs.admin)
    assert client.post("/reminders/outbox/retry-dead").status_code == 302
    db.session.expire_all()
    statuses = {m.subject: m.status for m in db.session.scalars(select(OutboxMessage))}
    assert statuses[f"{ZY_MARK}催报：请提交材料"] == statuses[f"{ZY_MARK}机器人催报"] == "dead"
    assert statuses["赫山区催报：请提交材料"] != "dead" and statuses["赫山区机器人催报"] != "dead"


def test_stuck_warnings_count_only_the_regions_reviewers(db, world):
    from fazhi_flow.services.stuck import stuck_messages

    hs = world.hs
    hs.c.leaf.reviewers = []
    hs.reviewer.active = False  # 资阳区's reviewer stays active, but never reviews 赫山区's material
    db.session.commit()
    messages = stuck_messages(hs.c.cycle)
    assert any("没有启用的审核人" in m and "赫山公安分局" in m for m in messages)
    assert not any("没有启用的审核人" in m for m in stuck_messages(world.zy.c.cycle))


def test_new_cycle_from_template_and_clone_belong_to_the_admins_region(app, db, world):
    hs, zy = world.hs, world.zy
    # 资阳区 already has its 2026 report: 赫山区 may still have one.
    zy_2026 = ReportCycle(year=2026, owner=zy.region, region=zy.region.name, title="资阳区2026年报告")
    db.session.add(zy_2026)
    db.session.commit()
    client = _client(app, hs.admin)
    response = client.post("/admin/cycles/new/clone", data={"c-source": str(hs.c.cycle.id), "c-year": "2026",
                                                             "confirm": "1"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    copy = db.session.scalar(select(ReportCycle).where(ReportCycle.region_id == hs.region.id,
                                                       ReportCycle.year == 2026))
    assert copy.region == "赫山区" and copy.cloned_from_id == hs.c.cycle.id
    assert {a.unit_id for s in copy.sections for a in s.assignments} == {hs.gaj.id}
    # A second copy to the same year of the same region is refused, naming it; nothing written.
    again = client.post("/admin/cycles/new/clone", data={"c-source": str(hs.c.cycle.id), "c-year": "2026",
                                                          "confirm": "1"})
    assert "赫山区2026年度的年度报告已存在" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ReportCycle.id)).where(ReportCycle.year == 2026)) == 2

    response = client.post("/admin/cycles/new/template", data={
        "t-year": "2027", "t-region": "益阳市赫山区", "t-title": "", "t-title_year": "2027"})
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    made = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2027))
    assert (made.region_id, made.region) == (hs.region.id, "益阳市赫山区")
    assert db.session.scalar(select(func.count(Section.id)).where(Section.cycle_id == made.id)) > 5
    # 资阳区's admin creating its 2027 report gets its own, beside 赫山区's.
    other = _client(app, zy.admin)
    assert other.post("/admin/cycles/new/template", data={"t-year": "2027", "t-region": "益阳市资阳区"}
                      ).status_code == 303
    assert db.session.scalar(select(ReportCycle.region_id).where(ReportCycle.region == "益阳市资阳区")) == zy.region.id
    assert db.session.scalar(select(func.count(Unit.id)).where(Unit.code == "gaj")) == 2


def test_publish_deadline_on_the_edit_form(app, db, world):
    hs = world.hs
    client = _client(app, hs.admin)
    url = f"/admin/cycles/{hs.c.cycle.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert "发布截止日期" in page and "留空则为次年4月1日（2026年4月1日）" in page
    form = {"title": hs.c.cycle.title, "issuers": "中共赫山区委员会", "due": "2026-01-10"}
    assert client.post(url, data={**form, "publish_deadline": "2026-03-20"}).status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, hs.c.cycle.id)
    assert cycle.publish_deadline == date(2026, 3, 20) == cycle.publish_deadline_effective
    for bad, message in (("2031-03-20", "发布截止日期2031年3月20日与2025年度报告不相符"),
                         ("3月20日", "日期格式应为 年-月-日")):
        response = client.post(url, data={**form, "publish_deadline": bad})
        assert response.status_code == 400 and message in response.get_data(as_text=True), bad
        db.session.expire_all()
        assert db.session.get(ReportCycle, hs.c.cycle.id).publish_deadline == date(2026, 3, 20)
    assert client.post(url, data={**form, "publish_deadline": ""}).status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, hs.c.cycle.id)
    assert cycle.publish_deadline is None and cycle.publish_deadline_effective == date(2026, 4, 1)
    assert "2026年4月1日（默认：次年4月1日）" in client.get(f"/admin/cycles/{cycle.id}").get_data(as_text=True)


def test_own_region_pages_still_work(app, db, world):
    hs = world.hs
    client = _client(app, hs.admin)
    # A liaison of 赫山区 asks for an extension; its admin decides it; the liaisons are told.
    hs.request.status = "withdrawn"
    db.session.commit()
    liaison = _client(app, hs.liaison)
    wanted = local_today() + timedelta(days=30)
    asked = liaison.post(f"/reminders/assignments/{hs.c.assignment.id}/extension",
                         data={"requested_due": wanted.isoformat(), "reason": "需要会签"})
    assert asked.status_code == 302
    request = db.session.scalar(select(ExtensionRequest).where(ExtensionRequest.status == "pending",
                                                               ExtensionRequest.assignment_id == hs.c.assignment.id))
    assert client.post(f"/reminders/extensions/{request.id}/decide", data={"decision": "grant"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Assignment, hs.c.assignment.id).due == wanted
    # Outline edits and a manual 催报 of the region's own unit.
    assert client.post(f"/admin/cycles/{hs.c.cycle.id}/sections",
                       data={"new-title": "加强行政复议工作", "new-parent": "0"}).status_code == 303
    assert client.post(f"/reminders/cycles/{hs.c.cycle.id}/chase",
                       data={"scope": "units", "unit_id": str(hs.gaj.id), "note": "请于本周内提交"}
                       ).status_code == 302
    assert client.post(f"/reminders/outbox/{world.hs.message.id}/retry").status_code == 302
    assert db.session.get(User, hs.admin.id).region_id == hs.region.id


def test_template_cycle_printed_name_defaults_to_the_region_and_never_lands_in_another(app, db, world):
    hs, zy = world.hs, world.zy
    client = _client(app, hs.admin)
    assert client.post("/admin/cycles/new/template", data={"t-year": "2028", "t-region": ""}).status_code == 303
    made = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2028))
    assert (made.region_id, made.region) == (hs.region.id, "赫山区")
    # Naming the sibling county as the printed name does not make 赫山区's admin write into 资阳区.
    before = _dump(db, zy.region.id)
    response = client.post("/admin/cycles/new/template", data={"t-year": "2029", "t-region": "资阳区"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "地区名称“资阳区”已被其他地区（资阳区）使用" in html
    for taken in ("430902", "益阳市资阳区"):  # its code; the name its reports print
        if taken == "益阳市资阳区":
            zy.c.cycle.region = taken
            db.session.commit()
            before = _dump(db, zy.region.id)
        response = client.post("/admin/cycles/new/template", data={"t-year": "2029", "t-region": taken})
        assert response.status_code == 400 and "已被其他地区（资阳区）使用" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ReportCycle.id)).where(
        ReportCycle.year == 2029, ReportCycle.region_id == zy.region.id)) == 0
    assert _dump(db, zy.region.id) == before
