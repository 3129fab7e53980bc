"""Cycle files per region: a file for one district never changes another; every change is listed
before anything is written (service, web preview); bad input names its key and writes nothing."""
import io
import re

import pytest
import yaml
from sqlalchemy import func, select

from fazhi_flow.limits import column_length
from fazhi_flow.models import (Assignment, AuditEvent, Contribution, Indicator, Notification, Region, ReportCycle,
                               Rule, Section, Unit, User, UserRole)
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.services.importer import CycleFileError, import_cycle, preview_cycle

LONG_UNIT_NAME = "赫" * column_length(Unit.name)


def _hs_file(**cycle):
    """赫山区's 2025 cycle: its own unit "gaj", a liaison, a section citing a figure."""
    doc = {
        "cycle": {"title": "益阳市赫山区2025年法治政府建设年度报告", "year": 2025, "region": "430903",
                  "due": "2026-01-10"} | cycle,
        "units": [{"code": "gaj", "name": "赫山公安分局", "kind": "judicial"},
                  {"code": "sfj", "name": LONG_UNIT_NAME}],
        "users": [{"username": "hs_gaj2", "name": "冯刚", "unit": "gaj", "roles": ["liaison"],
                   "email": "fenggang@hs.example.cn"}],
        "outline": [{"code": "measures", "title": "推进法治政府建设的主要举措和成效", "reviewers": ["hs_reviewer"],
                     "children": [{"code": "measures.police", "title": "严格规范公正文明执法", "lead": ["gaj"],
                                   "support": ["sfj"],
                                   "indicators": [{"code": "cases", "name": "办理行政案件", "unit": "件"}],
                                   "rules": [{"expr": "cases >= 0"}]}]}],
    }
    return doc


def _zy_file():
    """资阳区's file: the same unit code "gaj" with another name (the issue's 公安静海分局 case)."""
    return {
        "cycle": {"title": "益阳市资阳区2025年法治政府建设年度报告", "year": 2025, "region": "430902"},
        "units": [{"code": "gaj", "name": "公安静海分局", "kind": "judicial"},
                  {"code": "sfj", "name": "资阳区司法局"}],
        "users": [{"username": "zy_gaj2", "name": "静海联络员", "unit": "gaj", "roles": ["liaison"]},
                  {"username": "zy_rev2", "name": "资阳审核人", "roles": ["reviewer"]}],
        "outline": [{"code": "measures", "title": "推进法治政府建设的主要举措和成效", "reviewers": ["zy_rev2"],
                     "children": [{"code": "measures.police", "title": "严格规范公正文明执法", "lead": ["gaj"],
                                   "indicators": [{"code": "cases", "name": "办理行政案件", "unit": "件"}]}]}],
    }


def _text(doc):
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _rows(db, model, *where):
    cols = list(model.__table__.columns)
    return [tuple(r) for r in db.session.execute(select(*cols).where(*where).order_by(model.id))]


def _dump_region(db, region_id):
    """Every row of one region that a foreign file could change: units, users and their roles, cycles,
    sections, assignments, material (tasks), indicators, rules, in-app notices and outgoing messages."""
    db.session.expire_all()
    users = select(User.id).where(User.region_id == region_id)
    cycles = select(ReportCycle.id).where(ReportCycle.region_id == region_id)
    return {
        "unit": _rows(db, Unit, Unit.region_id == region_id),
        "user": _rows(db, User, User.region_id == region_id),
        "user_role": _rows(db, UserRole, UserRole.user_id.in_(users)),
        "cycle": _rows(db, ReportCycle, ReportCycle.region_id == region_id),
        "section": _rows(db, Section, Section.cycle_id.in_(cycles)),
        "assignment": _rows(db, Assignment, Assignment.section_id.in_(select(Section.id).where(
            Section.cycle_id.in_(cycles)))),
        "contribution": _rows(db, Contribution, Contribution.cycle_id.in_(cycles)),
        "indicator": _rows(db, Indicator, Indicator.cycle_id.in_(cycles)),
        "rule": _rows(db, Rule, Rule.cycle_id.in_(cycles)),
        "notification": _rows(db, Notification, Notification.user_id.in_(users)),
        "outbox": _rows(db, OutboxMessage, OutboxMessage.user_id.in_(users)),
        "region": _rows(db, Region, Region.id == region_id),
    }


def _whole(db):
    db.session.expire_all()
    models = (Region, Unit, User, UserRole, ReportCycle, Section, Assignment, Indicator, Rule, Contribution,
              AuditEvent, Notification)
    return {m.__tablename__: _rows(db, m) for m in models}


@pytest.fixture()
def hs_collecting(two_regions, db):
    """赫山区's 2025 cycle imported, opened (notices to its liaisons) and a draft citing {{cases}}."""
    from fazhi_flow.services.contributions import save_draft
    from fazhi_flow.services.cycles import open_cycle

    world = two_regions
    cycle = import_cycle(_text(_hs_file()), world.hs.admin).cycle
    open_cycle(cycle, world.hs.admin)
    db.session.flush()
    contribution = db.session.scalar(select(Contribution).join(Unit, Unit.id == Contribution.unit_id)
                                     .where(Contribution.cycle_id == cycle.id, Unit.code == "gaj"))
    liaison = db.session.scalar(select(User).where(User.username == "hs_gaj2"))
    save_draft(contribution, liaison, "全年办理行政案件{{cases}}件，同比下降3.2%。")
    db.session.commit()
    return world


def _upload(client, text):
    return client.post("/admin/cycles/new/file", data={"f-file": (io.BytesIO(text.encode()), "cycle.yaml")},
                       content_type="multipart/form-data")


def _hidden(page):
    return dict(re.findall(r'name="(f-[a-z_]+)" type="hidden" value="([^"]*)"', page))


def _confirm(client, preview):
    assert preview.status_code == 200, preview.get_data(as_text=True)[:2000]
    return client.post("/admin/cycles/new/file/confirm", data=_hidden(preview.get_data(as_text=True)),
                       content_type="multipart/form-data")


# ------------------------------------------------------------------ a file for B never changes A


@pytest.mark.parametrize("via", ["cli", "web", "service"])
def test_region_b_file_leaves_region_a_byte_for_byte(hs_collecting, db, runner, as_user, tmp_path, via):
    world = hs_collecting
    before = _dump_region(db, world.hs.region.id)
    assert before["notification"] and before["contribution"]  # A has tasks and messages to lose
    if via == "cli":
        path = tmp_path / "zy.yaml"
        path.write_text(_text(_zy_file()), encoding="utf-8")
        out = runner.invoke(args=["fazhi", "import-cycle", "--yes", "--region", "430902", str(path)])
        assert out.exit_code == 0, out.output
    elif via == "web":
        client = as_user(world.zy.admin)
        response = _confirm(client, _upload(client, _text(_zy_file())))
        assert response.status_code in (200, 303), response.get_data(as_text=True)[:2000]
    else:
        import_cycle(_text(_zy_file()), world.zy.admin)
        db.session.commit()
    assert _dump_region(db, world.hs.region.id) == before
    gaj = {u.region_id: u.name for u in db.session.scalars(select(Unit).where(Unit.code == "gaj"))}
    assert gaj == {world.hs.region.id: "赫山公安分局", world.zy.region.id: "公安静海分局"}
    zy_cycle = db.session.scalar(select(ReportCycle).where(ReportCycle.region_id == world.zy.region.id))
    assert zy_cycle.title == "益阳市资阳区2025年法治政府建设年度报告"
    new_users = {u.username: u.region_id for u in db.session.scalars(
        select(User).where(User.username.in_(["zy_gaj2", "zy_rev2"])))}
    assert new_users == {"zy_gaj2": world.zy.region.id, "zy_rev2": world.zy.region.id}
    # The new liaison belongs to 资阳's gaj, not 赫山's.
    liaison = db.session.scalar(select(User).where(User.username == "zy_gaj2"))
    assert liaison.unit.region_id == world.zy.region.id


def test_unit_code_only_in_another_region_is_a_new_unit_here(two_regions, db):
    world = two_regions
    db.session.add(Unit(region=world.zy.region, code="nsj", name="资阳区农业农村局"))
    db.session.commit()
    doc = _hs_file()
    doc["units"].append({"code": "nsj", "name": "赫山区农业农村局"})
    result = import_cycle(_text(doc), world.hs.admin)
    db.session.commit()
    names = {(u.region_id, u.name) for u in db.session.scalars(select(Unit).where(Unit.code == "nsj"))}
    assert names == {(world.zy.region.id, "资阳区农业农村局"), (world.hs.region.id, "赫山区农业农村局")}
    assert "新建单位 nsj 赫山区农业农村局（类型 政府部门）" in result.lines()


# ------------------------------------------------------------------ bad input: key named, nothing written


def _refused(db, text, actor, region=None):
    before = _whole(db)
    with pytest.raises(CycleFileError) as refused:
        import_cycle(text, actor, region=region)
    db.session.rollback()
    assert _whole(db) == before
    return refused.value.errors


def test_a_region_the_actor_may_not_manage_is_refused(two_regions, db):
    world = two_regions
    errors = _refused(db, _text(_zy_file()), world.hs.admin)
    assert errors == ["cycle.region：您只能导入本地区（赫山区）的年度报告，文件指明的地区是资阳区（430902）"]
    # Named by name instead of code: the same.
    doc = _zy_file()
    doc["cycle"]["region"] = "资阳区"
    assert _refused(db, _text(doc), world.hs.admin) == errors


def test_a_new_region_needs_a_system_administrator(two_regions, db):
    world = two_regions
    doc = _hs_file()
    doc["cycle"]["region"] = {"code": "430921", "name": "南县", "full_name": "益阳市南县", "level": "county",
                              "parent": "430900"}
    doc["cycle"]["title"] = "南县2025年法治政府建设年度报告"
    doc["outline"][0]["reviewers"] = []
    errors = _refused(db, _text(doc), world.hs.admin)
    assert errors == ["cycle.region：地区“南县”（430921）不存在；只有系统管理员可以新建地区"]

    result = import_cycle(_text(doc), world.sysadmin)
    db.session.commit()
    nan = db.session.scalar(select(Region).where(Region.code == "430921"))
    assert (nan.name, nan.level, nan.parent_id) == ("南县", "county", world.city.id)
    assert nan.is_below(world.city)
    assert result.cycle.region_id == nan.id and result.cycle.region == "益阳市南县"
    assert {u.region_id for u in db.session.scalars(select(Unit).where(Unit.code.in_(["gaj", "sfj"])))} \
        == {world.hs.region.id, world.zy.region.id, nan.id}
    assert result.lines()[0] == "新建地区 南县（430921）（级别 区县；上级 益阳市）"


def test_unit_code_existing_only_in_another_region_cannot_be_referred_to(two_regions, db):
    world = two_regions
    db.session.add(Unit(region=world.zy.region, code="nsj", name="资阳区农业农村局"))
    db.session.commit()
    doc = _hs_file()
    doc["units"][1]["parent"] = "nsj"
    doc["outline"][0]["children"][0]["support"] = ["nsj"]
    errors = _refused(db, _text(doc), world.hs.admin)
    assert any(e.startswith("units[1].parent：本地区没有单位代码“nsj”") for e in errors), errors
    assert any(e.startswith("outline[0].children[0].support：本地区没有单位代码“nsj”") for e in errors), errors


def test_user_assigned_to_a_unit_of_another_region_is_refused(two_regions, db):
    world = two_regions
    db.session.add(Unit(region=world.zy.region, code="nsj", name="资阳区农业农村局"))
    db.session.commit()
    doc = _hs_file()
    doc["users"][0]["unit"] = "nsj"
    errors = _refused(db, _text(doc), world.hs.admin)
    assert any(e.startswith("users[0].unit：本地区没有单位代码“nsj”") for e in errors), errors


def test_username_of_another_region_is_refused_by_its_key(two_regions, db):
    world = two_regions
    doc = _hs_file()
    doc["users"] += [{"username": "hs_a", "name": "甲", "roles": ["reviewer"]},
                     {"username": "hs_b", "name": "乙", "roles": ["reviewer"]},
                     {"username": "zy_gaj", "name": "资阳联络员", "unit": "gaj", "roles": ["liaison"]}]
    errors = _refused(db, _text(doc), world.hs.admin)
    assert errors == ["users[3].username：用户名“zy_gaj”已被其他地区的用户使用（用户名在全系统唯一），请换一个"]
    zy_liaison = db.session.scalar(select(User).where(User.username == "zy_gaj"))
    assert zy_liaison.unit_id == world.zy.gaj.id and zy_liaison.name == "资阳区公安联络员"


def test_reviewer_of_another_region_is_refused(two_regions, db):
    world = two_regions
    doc = _hs_file()
    doc["outline"][0]["reviewers"] = ["zy_reviewer"]
    errors = _refused(db, _text(doc), world.hs.admin)
    assert errors == ["outline[0].reviewers：用户“zy_reviewer”属于其他地区，不能审核本地区的材料"]


def test_parent_loop_among_regions_defined_in_the_file(two_regions, db):
    doc = _hs_file()
    doc["cycle"]["region"] = {"code": "430981", "name": "沅江市", "level": "county", "parent": {
        "code": "430999", "name": "某市", "level": "city", "parent": {"code": "430981", "name": "沅江市"}}}
    errors = _refused(db, _text(doc), None)
    assert errors == ["cycle.region.parent.parent.code：地区的上级关系形成了循环：430981 → 430999 → 430981"]


def test_parent_loop_with_existing_regions(two_regions, db):
    """The file puts the city under one of its own counties."""
    doc = _hs_file()
    doc["cycle"]["region"] = {"code": "430903", "name": "赫山区", "level": "county", "parent": {
        "code": "430900", "name": "益阳市", "level": "city", "parent": "430903"}}
    errors = _refused(db, _text(doc), None)
    assert "cycle.region.parent.parent：地区的上级关系形成了循环：益阳市 → 赫山区 → 益阳市" in errors


def test_region_given_and_named_by_the_file_must_agree(two_regions, db):
    world = two_regions
    errors = _refused(db, _text(_zy_file()), None, region=world.hs.region)
    assert errors == ["cycle.region：文件指明的地区资阳区（430902）与指定的地区赫山区（430903）不一致"]


def test_several_regions_and_a_name_that_is_none_of_them(two_regions, db):
    doc = _hs_file()
    doc["cycle"]["region"] = "某某县"
    errors = _refused(db, _text(doc), None)
    assert errors[0].startswith("cycle.region：系统中有多个地区，没有代码或名称为“某某县”的地区")


def test_older_file_in_a_single_region_installation_maps_onto_it(db):
    region = Region(code="000000", name="益阳市赫山区", level="county")
    db.session.add(region)
    db.session.commit()
    doc = _hs_file(region="益阳市赫山区")
    doc["outline"][0]["reviewers"] = []
    result = import_cycle(_text(doc))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Region)) == 1
    assert (result.cycle.region_id, result.cycle.region) == (region.id, "益阳市赫山区")
    assert {u.region_id for u in db.session.scalars(select(Unit))} == {region.id}
    assert not import_cycle(_text(doc)).changed


# ------------------------------------------------------------------ every change listed, before writing


def test_preview_lists_every_change_and_writes_nothing(hs_collecting, db):
    world = hs_collecting
    doc = _hs_file(title="益阳市赫山区2025年度法治政府建设情况报告")
    doc["units"][0]["name"] = "赫山区公安分局"
    doc["users"][0]["email"] = "fg@hs.example.cn"
    police = doc["outline"][0]["children"][0]
    police["title"] = "严格规范公正文明执法，提升执法质效"
    police["support"] = []
    police["indicators"][0]["name"] = "办理行政案件数"
    police["indicators"].append({"code": "rate", "name": "行政复议纠错率", "unit": "%", "type": "percent"})
    police["rules"] = [{"expr": "rate <= 100", "severity": "warning"}]
    doc["outline"].append({"code": "next", "title": "下一年度推进法治政府建设的主要安排", "lead": ["sfj"]})
    text = _text(doc)
    before = _whole(db)
    preview = preview_cycle(text, world.hs.admin)
    assert _whole(db) == before
    lines = preview.lines()
    assert ("修改年度报告 益阳市赫山区2025年法治政府建设年度报告：标题 益阳市赫山区2025年法治政府建设年度报告 → "
            "益阳市赫山区2025年度法治政府建设情况报告") in lines
    assert "修改单位 gaj 赫山公安分局：名称 赫山公安分局 → 赫山区公安分局" in lines
    assert "修改用户 hs_gaj2 冯刚：电子邮箱 fenggang@hs.example.cn → fg@hs.example.cn" in lines
    assert ("修改章节 measures.police 严格规范公正文明执法：标题 严格规范公正文明执法 → "
            "严格规范公正文明执法，提升执法质效") in lines
    assert f"删除任务分配 measures.police × sfj {LONG_UNIT_NAME}" in lines
    assert "修改统计指标 cases 办理行政案件：名称 办理行政案件 → 办理行政案件数" in lines
    assert "新建统计指标 rate 行政复议纠错率（所属章节 measures.police；计量单位 %）" in lines
    assert any(line.startswith("修改校验规则 measures.police") and "cases >= 0 → rate <= 100" in line for line in lines)
    assert "新建章节 next 下一年度推进法治政府建设的主要安排" in lines
    assert "新建任务分配 next × sfj " + LONG_UNIT_NAME + "（承办方式 牵头）" in lines
    assert preview.summary() == ("新建：章节1个、任务分配1个、统计指标1个；修改：年度报告1个、单位1个、用户1个、章节1个、"
                                 "统计指标1个、校验规则1个；删除：任务分配1个")
    # The import makes exactly the changes the preview listed.
    result = import_cycle(text, world.hs.admin)
    db.session.commit()
    assert result.lines() == lines
    removed = _text(_hs_file() | {"outline": [doc["outline"][1]]})
    with pytest.raises(CycleFileError) as refused:  # 赫山's gaj has written material: kept
        preview_cycle(removed, world.hs.admin)
    assert "已有报送材料" in refused.value.errors[0]


def test_preview_of_removals(two_regions, db):
    world = two_regions
    import_cycle(_text(_hs_file()), world.hs.admin)
    db.session.commit()
    doc = _hs_file()
    doc["outline"] = [{"code": "next", "title": "下一年度推进法治政府建设的主要安排", "lead": ["sfj"]}]
    lines = preview_cycle(_text(doc), world.hs.admin).lines()
    assert "删除章节 measures 推进法治政府建设的主要举措和成效" in lines
    assert "删除统计指标 cases 办理行政案件" in lines
    assert "删除任务分配 measures.police × gaj 赫山公安分局" in lines
    assert "删除校验规则 measures.police 严格规范公正文明执法（规则 cases >= 0）" not in lines
    assert "删除校验规则 measures.police 严格规范公正文明执法" in lines


# ------------------------------------------------------------------ the web preview


def test_web_upload_previews_then_confirm_writes(two_regions, db, as_user):
    world = two_regions
    client = as_user(world.hs.admin)
    before = _whole(db)
    preview = _upload(client, _text(_hs_file()))
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200, page[:2000]
    assert "确认导入" in page and "地区：赫山区（430903）" in page
    assert "<td>修改</td><td>单位</td><td>gaj 赫山公安分局</td>" in page and "类型 政府部门 → 政法机关" in page
    assert f"<td>新建</td><td>单位</td><td>sfj {LONG_UNIT_NAME}</td>" in page
    assert "<td>新建</td><td>用户</td><td>hs_gaj2 冯刚</td>" in page and "一次性密码在导入后显示一次" in page
    assert _whole(db) == before  # nothing written before the confirmation
    response = _confirm(client, preview)
    assert response.status_code == 200  # the new user's one-time password, shown once
    assert "hs_gaj2" in response.get_data(as_text=True)
    cycle = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025))
    assert cycle.region_id == world.hs.region.id
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "cycle.import"))
    assert audit is not None


def test_web_confirm_refuses_when_the_changes_are_no_longer_those_shown(two_regions, db, as_user):
    world = two_regions
    client = as_user(world.hs.admin)
    preview = _upload(client, _text(_hs_file()))
    # Meanwhile somebody else creates the unit "sfj" with another name.
    db.session.add(Unit(region=world.hs.region, code="sfj", name="区司法局"))
    db.session.commit()
    before = _whole(db)
    response = _confirm(client, preview)
    page = response.get_data(as_text=True)
    assert response.status_code == 409, page[:2000]
    assert "在预览后有变化，未导入" in page and f"名称 区司法局 → {LONG_UNIT_NAME[:60]}" in page
    assert _whole(db) == before
    # Confirming the new list writes it.
    again = client.post("/admin/cycles/new/file/confirm", data=_hidden(page), content_type="multipart/form-data")
    assert again.status_code == 200, again.get_data(as_text=True)[:2000]
    assert db.session.scalar(select(Unit.name).where(Unit.region_id == world.hs.region.id, Unit.code == "sfj")) \
        == LONG_UNIT_NAME


def test_web_upload_for_another_region_is_refused_with_the_key(two_regions, db, as_user):
    world = two_regions
    client = as_user(world.hs.admin)
    before = _whole(db)
    response = _upload(client, _text(_zy_file()))
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page[:2000]
    assert "cycle.region：您只能导入本地区（赫山区）的年度报告" in page
    assert _whole(db) == before


def test_web_confirm_with_a_changed_payload_writes_nothing(two_regions, db, as_user):
    world = two_regions
    client = as_user(world.hs.admin)
    fields = _hidden(_upload(client, _text(_hs_file())).get_data(as_text=True))
    before = _whole(db)
    fields["f-payload"] = fields["f-payload"][:-8] + "AAAAAAAA"
    response = client.post("/admin/cycles/new/file/confirm", data=fields, content_type="multipart/form-data")
    assert response.status_code == 400 and "请重新上传" in response.get_data(as_text=True)
    assert _whole(db) == before


def test_settings_of_other_features_are_listed(two_regions, db):
    world = two_regions
    import_cycle(_text(_hs_file()), world.hs.admin)
    db.session.commit()
    doc = _hs_file(reminder_policy={"send_time": "08:30"}, share_approved_figures=True)
    lines = preview_cycle(_text(doc), world.hs.admin).lines()
    cycle_lines = [line for line in lines if line.startswith("修改年度报告")]
    assert cycle_lines == ["修改年度报告 益阳市赫山区2025年法治政府建设年度报告：催报设置 send_time 09:00 → 08:30；"
                           "联络员可查看已通过的统计数据 否 → 是"]


def test_web_large_file_is_chosen_again_to_confirm(two_regions, db, as_user, monkeypatch):
    from fazhi_flow.web.admin import cycle_import

    monkeypatch.setattr(cycle_import, "MAX_PAYLOAD", 10)  # as if the text were too large for a form field
    world = two_regions
    client = as_user(world.hs.admin)
    text = _text(_hs_file())
    page = _upload(client, text).get_data(as_text=True)
    assert "请再次选择同一个文件" in page
    fields = _hidden(page)
    assert fields["f-payload"] == ""
    before = _whole(db)
    missing = client.post("/admin/cycles/new/file/confirm", data=fields, content_type="multipart/form-data")
    assert missing.status_code == 400 and "请再次选择同一个年度报告定义文件" in missing.get_data(as_text=True)
    assert _whole(db) == before
    chosen = client.post("/admin/cycles/new/file/confirm", content_type="multipart/form-data",
                         data=fields | {"f-file": (io.BytesIO(text.encode()), "cycle.yaml")})
    assert chosen.status_code == 200, chosen.get_data(as_text=True)[:2000]
    assert db.session.scalar(select(ReportCycle.region_id).where(ReportCycle.year == 2025)) == world.hs.region.id
