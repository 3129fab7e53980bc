"""Nobody stuck: import, the overview, 任务分配 and 开始征集 name every section whose material nobody could
submit, agree to or approve; ``import-cycle --strict`` refuses such a file and writes nothing."""
from sqlalchemy import func, select

from fazhi_flow.models import ReportCycle, Section, Unit, User
from fazhi_flow.services.importer import CycleFileError, import_cycle
from fazhi_flow.services.stuck import stuck_messages, stuck_warnings

from .conftest import login

# The only reviewer works for the lead unit of 化解矛盾纠纷: nobody may approve the 司法局's material there.
STUCK_FILE = """
cycle: {title: 测试县2025年法治政府建设年度报告, year: 2025, region: 测试县, unit_head_review: true}
units: [{code: sfj, name: 县司法局}, {code: town1, name: 城关镇, kind: township}]
users:
  - {username: rev, name: 审核员甲, unit: sfj, roles: [reviewer]}
  - {username: sfj1, name: 联络员甲, unit: sfj, roles: [liaison]}
  - {username: head1, name: 负责人甲, unit: sfj, roles: [unit_head]}
outline:
  - title: 主要举措和成效
    children:
      - {code: mediation, title: 化解矛盾纠纷, lead: [sfj], support: [town1], reviewers: [rev]}
"""
CLEAN_FILE = STUCK_FILE.replace("unit_head_review: true", "unit_head_review: false").replace(
    "unit: sfj, roles: [reviewer]", "roles: [reviewer]").replace(", support: [town1]", "")


def _cli(runner, tmp_path, text, *options):
    path = tmp_path / "cycle.yaml"
    path.write_text(text, encoding="utf-8")
    return runner.invoke(args=["fazhi", "import-cycle", *options, str(path)], catch_exceptions=False)


def test_import_names_section_and_reason(db):
    result = import_cycle(STUCK_FILE)
    messages = result.warnings
    section = "一、主要举措和成效 › （一）化解矛盾纠纷"
    assert any(section in m and "县司法局" in m and "审核员甲" in m and "都属于县司法局" in m for m in messages)
    # The support unit is not the reviewer's own: the reviewer may approve its material.
    assert not any("城关镇" in m and "审核人" in m for m in messages)
    assert any("城关镇" in m and "没有启用的联络员" in m for m in messages)
    assert any("城关镇" in m and "单位负责人" in m for m in messages)
    assert not any("县司法局" in m and ("联络员账号" in m or "单位负责人账号" in m) for m in messages)


def test_clean_file_has_no_warnings(db):
    assert import_cycle(CLEAN_FILE).warnings == []


def test_strict_refuses_and_writes_nothing(db, runner, tmp_path):
    try:
        import_cycle(STUCK_FILE, strict=True)
    except CycleFileError as exc:
        assert any("化解矛盾纠纷" in e for e in exc.errors)
    else:
        raise AssertionError("strict import accepted a file nobody could approve")
    db.session.rollback()
    result = _cli(runner, tmp_path, STUCK_FILE, "--strict")
    assert result.exit_code == 1
    assert "化解矛盾纠纷" in result.output and "不能审核本单位的材料" in result.output
    assert db.session.scalar(select(func.count()).select_from(ReportCycle)) == 0
    assert db.session.scalar(select(func.count()).select_from(Unit)) == 0
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_without_strict_cli_warns_and_imports(db, runner, tmp_path):
    result = _cli(runner, tmp_path, STUCK_FILE, "--yes")
    assert result.exit_code == 0, result.output
    assert "警告" in result.output and "化解矛盾纠纷" in result.output
    assert db.session.scalar(select(func.count()).select_from(ReportCycle)) == 1
    assert _cli(runner, tmp_path, CLEAN_FILE, "--strict", "--yes").exit_code == 0


def test_eligible_reviewer_rules(db, factory):
    """Named reviewers decide; inactive or role-less named reviewers do not count; no names = anyone."""
    w = factory.world()
    assert stuck_messages(w.cycle) == []
    w.reviewer.active = False
    db.session.flush()
    messages = stuck_messages(w.cycle)
    assert len(messages) == 1 and "已停用或不再是审核人" in messages[0] and w.section.title in messages[0]
    w.section.reviewers = []
    db.session.flush()
    # Any other active reviewer may now approve (outsider_reviewer); the unit's own reviewer may not.
    assert stuck_messages(w.cycle) == []
    w.outsider_reviewer.active = False
    db.session.flush()
    # Only the unit's own reviewer is left, and nobody approves their own unit's material.
    messages = stuck_messages(w.cycle)
    assert len(messages) == 1 and "现有审核人都属于区司法局" in messages[0]
    w.own_unit_reviewer.active = False
    db.session.flush()
    assert "系统中没有启用的审核人" in stuck_messages(w.cycle)[0]


def test_pages_warn(client, db, factory):
    w = factory.world(state="setup", unit_head_review=True)
    w.section.reviewers = [w.own_unit_reviewer]
    w.unit_head.active = False
    db.session.commit()
    login(client, w.admin)
    urls = (f"/admin/cycles/{w.cycle.id}", f"/admin/cycles/{w.cycle.id}/assignments",
            f"/admin/cycles/{w.cycle.id}/open")
    for url in urls:
        page = client.get(url).get_data(as_text=True)
        assert "严格规范执法" in page and "本单位审核人" in page and "不能审核本单位的材料" in page, url
        assert "没有启用的单位负责人账号" in page, url
    w.section.reviewers = [w.reviewer]
    w.unit_head.active = True
    db.session.commit()
    for url in urls:
        assert "无人能办理" not in client.get(url).get_data(as_text=True), url
    assert [x.kind for x in stuck_warnings(w.cycle)] == []


def test_opening_anyway_repeats_the_warning(client, db, factory):
    w = factory.world(state="setup")
    w.section.reviewers = [w.own_unit_reviewer]
    db.session.commit()
    login(client, w.admin)
    page = client.post(f"/admin/cycles/{w.cycle.id}/open", data={"late": "keep"}, follow_redirects=True).get_data(as_text=True)
    assert "已开始征集" in page and "仍有1项材料无人能办理" in page and "不能审核本单位的材料" in page


def test_cli_open_prints_the_warnings(runner, db, factory):
    w = factory.world(state="setup")
    w.section.reviewers = [w.own_unit_reviewer]
    db.session.commit()
    result = runner.invoke(args=["fazhi", "transition", "--user", w.admin.username, "--cycle", str(w.cycle.id),
                                 "open"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "警告" in result.output and "严格规范执法" in result.output


def test_web_upload_warns(client, db, factory):
    import io

    admin = factory.user("admin", name="管理员")
    db.session.commit()
    login(client, admin)
    response = client.post("/admin/cycles/new/file", data={"f-file": (io.BytesIO(STUCK_FILE.encode()), "cycle.yaml")},
                           content_type="multipart/form-data", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "请注意" in page and "化解矛盾纠纷" in page and "都属于县司法局" in page
