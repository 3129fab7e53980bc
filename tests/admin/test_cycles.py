"""Creating cycles (template, file, clone), opening, reopening material, compiling."""
import io
import re

from sqlalchemy import func, select

from fazhi_flow.models import (AuditEvent, Contribution, Notification, ReportCycle, Section,
                               TransitionLog)
from fazhi_flow.services.contributions import approve_contribution, submit_contribution


def test_create_from_the_standard_template(admin_client, office, db):
    response = admin_client.post("/admin/cycles/new/template", data={
        "t-year": "2025", "t-region": "某某区", "t-title": "2025年法治政府建设年度报告",
        "t-due": "2026-01-10", "t-issuers": "中共某某区委员会\n某某区人民政府"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    cycle = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025))
    titles = [s.title for s in cycle.sections if s.parent_id is None]
    assert "推进法治政府建设的主要举措和成效" in titles and None in titles  # the opening paragraph
    assert cycle.issuer_list == ["中共某某区委员会", "某某区人民政府"] and cycle.state == "setup"
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "cycle.create")) == 1


def test_duplicate_or_bad_template_input_keeps_what_was_typed(admin_client, office, db):
    data = {"t-year": "2024", "t-region": "某某区", "t-title": "我输入的标题", "t-due": "2025-01-10"}
    response = admin_client.post("/admin/cycles/new/template", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "已经存在" in page and "我输入的标题" in page
    response = admin_client.post("/admin/cycles/new/template", data={**data, "t-year": "二〇二五", "t-region": "x"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "我输入的标题" in page
    assert db.session.scalar(select(func.count(ReportCycle.id))) == 1


GOOD_FILE = """
cycle: {title: 2025年法治政府建设年度报告, year: 2025, region: 上传区, due: 2026-01-10}
units:
  - {code: gaj, name: 公安分局, kind: judicial}
outline:
  - code: measures
    title: 主要举措和成效
    children:
      - {code: measures.enforce, title: 严格规范执法, lead: [gaj]}
"""

def _confirm_upload(client, preview):
    """Confirm on the preview page an upload shows (nothing is written before)."""
    assert preview.status_code == 200, preview.get_data(as_text=True)[:2000]
    fields = dict(re.findall(r'name="(f-[a-z_]+)" type="hidden" value="([^"]*)"', preview.get_data(as_text=True)))
    return client.post("/admin/cycles/new/file/confirm", data=fields, content_type="multipart/form-data")


def test_create_from_an_uploaded_file(admin_client, office, db):
    preview = admin_client.post("/admin/cycles/new/file", data={
        "f-file": (io.BytesIO(GOOD_FILE.encode()), "cycle.yaml")}, content_type="multipart/form-data")
    assert db.session.scalar(select(ReportCycle).where(ReportCycle.region == "上传区")) is None
    response = _confirm_upload(admin_client, preview)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    cycle = db.session.scalar(select(ReportCycle).where(ReportCycle.region == "上传区"))
    assert sorted(s.code for s in cycle.sections) == ["measures", "measures.enforce"]


def test_a_broken_file_shows_its_errors_and_writes_nothing(admin_client, office, db):
    bad = GOOD_FILE.replace("lead: [gaj]", "lead: [nosuch]").replace("year: 2025", "year: 2025, colour: red")
    response = admin_client.post("/admin/cycles/new/file", data={
        "f-file": (io.BytesIO(bad.encode()), "cycle.yaml")}, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "nosuch" in page and "colour" in page
    assert db.session.scalar(select(func.count(ReportCycle.id))) == 1
    response = admin_client.post("/admin/cycles/new/file", data={
        "f-file": (io.BytesIO("\xff\xfe".encode("latin-1")), "cycle.yaml")}, content_type="multipart/form-data")
    assert response.status_code == 400 and "UTF-8" in response.get_data(as_text=True)


def test_outline_routes(admin_client, office, db):
    cycle = office.cycle
    response = admin_client.post(f"/admin/cycles/{cycle.id}/sections", data={
        "new-parent": str(office.top.id), "new-title": "优化营商环境", "new-word_limit": "600"})
    assert response.status_code == 303
    new = db.session.scalar(select(Section).where(Section.title == "优化营商环境"))
    assert new.parent_id == office.top.id and new.position == 1 and new.word_limit == 600
    assert admin_client.post(f"/admin/sections/{new.id}/move", data={"direction": "up"}).status_code == 303
    db.session.expire_all()
    assert (new.position, office.leaf.position) == (0, 1)
    # A refused move is a flash, not an error page.
    response = admin_client.post(f"/admin/sections/{office.top.id}/move", data={"direction": "outdent"},
                                 follow_redirects=True)
    assert "一级章节不能再升级" in response.get_data(as_text=True)
    # Bad input keeps what was typed.
    response = admin_client.post(f"/admin/sections/{new.id}/edit", data={
        "title": "新的标题", "guidance": "我写的说明", "word_limit": "-5"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "我写的说明" in page and "字数上限应为1至100000" in page
    response = admin_client.post(f"/admin/sections/{new.id}/delete")
    assert response.status_code == 303
    assert db.session.get(Section, new.id) is None


def world_collecting(factory, db, office):
    cycle = office.cycle
    factory.assignment(office.leaf, office.units[0])
    factory.assignment(office.leaf, office.units[1], role="support")
    db.session.commit()
    return cycle


def test_open_cycle_creates_material_and_notifies_liaisons(admin_client, office, factory, db):
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/open").get_data(as_text=True)
    assert "2个单位" not in page  # nothing assigned yet
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open", follow_redirects=True)
    assert "还没有任何任务分配" in response.get_data(as_text=True)
    world_collecting(factory, db, office)
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/open").get_data(as_text=True)
    assert "2个单位" in page and "区市场监管局" in page  # the unit without a liaison is named
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "keep"})
    assert response.status_code == 303
    db.session.expire_all()
    assert office.cycle.state == "collecting"
    assert db.session.scalar(select(func.count(Contribution.id))) == 2
    assert db.session.scalar(select(func.count(Notification.id)).where(Notification.user_id == office.liaison.id)) >= 1


def test_reopen_an_approved_contribution_needs_a_reason(admin_client, office, factory, db):
    world_collecting(factory, db, office)
    admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "keep"})
    db.session.expire_all()
    contribution = db.session.scalar(select(Contribution).where(Contribution.unit_id == office.units[0].id))
    contribution.body = "全年办理行政复议案件52件。"
    submit_contribution(contribution, office.liaison)
    approve_contribution(contribution, office.reviewer)
    db.session.commit()
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/contributions").get_data(as_text=True)
    assert "重新打开" in page
    response = admin_client.post(f"/admin/contributions/{contribution.id}/reopen", data={"reason": "  "})
    assert response.status_code == 400 and "请填写理由" in response.get_data(as_text=True)
    db.session.expire_all()
    assert contribution.state == "approved"
    response = admin_client.post(f"/admin/contributions/{contribution.id}/reopen", data={"reason": "请补充复议纠错率"})
    assert response.status_code == 303
    db.session.expire_all()
    assert contribution.state == "returned"
    log = db.session.scalar(select(TransitionLog).where(TransitionLog.event == "reopen"))
    assert log.comment == "请补充复议纠错率" and log.actor_id == office.admin.id


def test_compile_needs_a_reason_when_material_is_missing(admin_client, office, factory, db):
    world_collecting(factory, db, office)
    admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "keep"})
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/compile", data={"compile-reason": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "未通过审核" in page
    db.session.expire_all()
    assert office.cycle.state == "collecting"
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/compile",
                                 data={"compile-reason": "镇里材料延期，先行汇总"})
    assert response.status_code == 303
    db.session.expire_all()
    assert office.cycle.state == "compiling" and len(office.cycle.forced_missing) == 2
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/reopen-collection",
                                 data={"reopen-reason": "补充材料", "late": "keep"})
    db.session.expire_all()
    assert office.cycle.state == "collecting"


def test_cycle_settings_edit(admin_client, office, db):
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/edit", data={
        "title": "新标题", "due": "2025-02-01", "issuers": "甲\n\n乙", "unit_head_review": "y"})
    assert response.status_code == 303
    db.session.expire_all()
    assert (office.cycle.title, office.cycle.issuer_list, office.cycle.unit_head_review) == ("新标题", ["甲", "乙"], True)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/edit", data={"title": "", "due": "2025-13-01"})
    assert response.status_code == 400


def test_clone_an_earlier_cycle(admin_client, office, factory, db):
    factory.assignment(office.leaf, office.units[0])
    db.session.commit()
    data = {"c-source": str(office.cycle.id), "c-year": "2025", "c-title": "2025年法治政府建设年度报告"}
    response = admin_client.post("/admin/cycles/new/clone", data=data)
    assert response.status_code == 200 and "确认复制并创建" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ReportCycle.id))) == 1  # only previewed
    response = admin_client.post("/admin/cycles/new/clone", data={**data, "confirm": "1"})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    clone = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025))
    assert clone.state == "setup" and {s.code for s in clone.sections} == {"measures", "enforce"}
    response = admin_client.post("/admin/cycles/new/clone", data={
        "c-source": str(office.cycle.id), "c-year": "2025", "c-title": "再来一次"})
    assert response.status_code == 400 and "再来一次" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ReportCycle.id))) == 2
