"""The command line takes --region: a year is looked up within the region (two regions both have a 2025
cycle), another region's ids are not found, an unknown code exits 2 with a Chinese message."""
import pytest
import yaml
from sqlalchemy import func, select

from fazhi_flow.models import AuditEvent, Contribution, ReportCycle, Unit, User
from fazhi_flow.services.importer import import_cycle


def _file(region, title, unit_name, liaison):
    return yaml.safe_dump({
        "cycle": {"title": title, "year": 2025, "region": region},
        "units": [{"code": "gaj", "name": unit_name, "kind": "judicial"}],
        "users": [{"username": liaison, "name": "联络员", "unit": "gaj", "roles": ["liaison"]}],
        "outline": [{"code": "police", "title": "严格规范公正文明执法", "lead": ["gaj"]}],
    }, allow_unicode=True, sort_keys=False)


@pytest.fixture()
def two_cycles(two_regions, db):
    """Both counties have a 2025 cycle in setup, each with its unit "gaj"."""
    world = two_regions
    world.hs.cycle = import_cycle(_file("430903", "赫山区2025年法治政府建设年度报告", "赫山公安分局", "hs_gaj2")).cycle
    world.zy.cycle = import_cycle(_file("430902", "资阳区2025年法治政府建设年度报告", "资阳公安分局", "zy_gaj2")).cycle
    db.session.commit()
    return world


def _run(runner, *args):
    return runner.invoke(args=["fazhi", *args])


@pytest.mark.parametrize("args", [
    ("status", "2025"),
    ("export", "2025", "--format", "txt", "-o", "out.txt"),
    ("create-user", "newbie", "--name", "新用户", "--role", "reviewer"),
    ("transition", "--user", "hs_admin", "--cycle", "2025", "open"),
    ("import-cycle", "cycle.yaml"),
    ("audit", "--since", "2025-01-01"),
    ("remind", "--dry-run"),
])
def test_unknown_region_code_exits_2_with_a_message(two_cycles, db, runner, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cycle.yaml").write_text(_file("430903", "x", "y", "z"), encoding="utf-8")
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    out = _run(runner, *args, "--region", "999999")
    assert out.exit_code == 2, out.output
    assert "找不到地区代码“999999”" in out.output
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_year_is_looked_up_within_the_region(two_cycles, runner):
    world = two_cycles
    both = _run(runner, "status", "2025")
    assert both.exit_code == 2 and "--region" in both.output
    assert f"{world.hs.cycle.id}（赫山区 430903" in both.output and f"{world.zy.cycle.id}（资阳区 430902" in both.output
    hs = _run(runner, "status", "2025", "--region", "430903")
    assert hs.exit_code == 0 and "赫山区2025年法治政府建设年度报告" in hs.output and "资阳" not in hs.output
    zy = _run(runner, "status", "2025", "--region", "430902")
    assert zy.exit_code == 0 and "资阳区2025年法治政府建设年度报告" in zy.output


def test_another_regions_cycle_id_is_not_found(two_cycles, runner, tmp_path):
    world = two_cycles
    out = _run(runner, "status", str(world.zy.cycle.id), "--region", "430903")
    assert out.exit_code == 2 and "地区“赫山区”中找不到年度报告" in out.output
    export = _run(runner, "export", str(world.zy.cycle.id), "--region", "430903", "--format", "txt",
                  "-o", str(tmp_path / "zy.txt"))
    assert export.exit_code == 2 and not (tmp_path / "zy.txt").exists()


def test_transition_uses_the_actors_region_and_refuses_another(two_cycles, db, runner):
    world = two_cycles
    # No --region: the year is the acting admin's own region's cycle.
    opened = _run(runner, "transition", "--user", "hs_admin", "--cycle", "2025", "open")
    assert opened.exit_code == 0, opened.output
    db.session.expire_all()
    assert (world.hs.cycle.state, world.zy.cycle.state) == ("collecting", "setup")
    # 赫山's admin on 资阳's cycle: refused by the policy, nothing changes.
    refused = _run(runner, "transition", "--user", "hs_admin", "--cycle", "2025", "--region", "430902", "open")
    assert refused.exit_code == 1 and "操作被拒绝" in refused.output
    db.session.expire_all()
    assert world.zy.cycle.state == "setup"


def test_transition_on_material_of_another_region_is_not_found(two_cycles, db, runner):
    world = two_cycles
    assert _run(runner, "transition", "--user", "zy_admin", "--cycle", "2025", "open").exit_code == 0
    db.session.expire_all()
    zy_material = db.session.scalar(select(Contribution).where(Contribution.cycle_id == world.zy.cycle.id))
    out = _run(runner, "transition", "--user", "hs_gaj2", "--contribution", str(zy_material.id), "submit")
    assert out.exit_code == 2 and f"地区“赫山区”中找不到报送材料 {zy_material.id}" in out.output
    db.session.expire_all()
    assert zy_material.state == "draft"


def test_create_user_in_a_region(two_cycles, db, runner):
    world = two_cycles
    several = _run(runner, "create-user", "zy_new", "--name", "资阳新联络员", "--role", "liaison", "--unit", "gaj")
    assert several.exit_code == 2 and "--region" in several.output
    out = _run(runner, "create-user", "zy_new", "--name", "资阳新联络员", "--role", "liaison", "--unit", "gaj",
               "--region", "430902")
    assert out.exit_code == 0, out.output
    user = db.session.scalar(select(User).where(User.username == "zy_new"))
    assert (user.region_id, user.unit_id) == (world.zy.region.id, world.zy.gaj.id)
    # A unit code of another region only: not found here.
    db.session.add(Unit(region=world.zy.region, code="nsj", name="资阳区农业农村局"))
    db.session.commit()
    missing = _run(runner, "create-user", "hs_new", "--name", "甲", "--role", "liaison", "--unit", "nsj",
                   "--region", "430903")
    assert missing.exit_code == 2 and "地区“赫山区”（430903）中找不到单位代码“nsj”" in missing.output
    assert db.session.scalar(select(User).where(User.username == "hs_new")) is None


def test_import_cycle_region_must_match_the_file(two_cycles, db, runner, tmp_path):
    path = tmp_path / "zy.yaml"
    path.write_text(_file("430902", "资阳区2025年法治政府建设年度报告", "公安静海分局", "zy_gaj2"), encoding="utf-8")
    out = _run(runner, "import-cycle", "--yes", "--region", "430903", str(path))
    assert out.exit_code == 1
    assert "cycle.region：文件指明的地区资阳区（430902）与指定的地区赫山区（430903）不一致" in out.output
    # As 赫山's admin: refused too.
    as_admin = _run(runner, "import-cycle", "--yes", "--as", "hs_admin", str(path))
    assert as_admin.exit_code == 1 and "您只能导入本地区（赫山区）的年度报告" in as_admin.output
    assert db.session.scalar(select(Unit.name).where(Unit.code == "gaj", Unit.region_id == two_cycles.zy.region.id)) \
        == "资阳公安分局"


def test_import_cycle_older_file_with_region_option(two_cycles, db, runner, tmp_path):
    """An older file names its region only as printed in the title: --region says which it is."""
    path = tmp_path / "hs.yaml"
    path.write_text(_file("益阳市赫山区", "赫山区2026年法治政府建设年度报告", "赫山公安分局", "hs_gaj2")
                    .replace("year: 2025", "year: 2026"), encoding="utf-8")
    without = _run(runner, "import-cycle", "--yes", str(path))
    assert without.exit_code == 1 and "请写地区代码" in without.output
    out = _run(runner, "import-cycle", "--yes", "--region", "430903", str(path))
    assert out.exit_code == 0, out.output
    assert "地区：赫山区（430903）" in out.output
    cycle = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2026))
    assert (cycle.region_id, cycle.region) == (two_cycles.hs.region.id, "益阳市赫山区")


def test_remind_region_only_as_a_dry_run(two_cycles, runner):
    out = _run(runner, "remind", "--region", "430903")
    assert out.exit_code == 2 and "--dry-run" in out.output
    dry = _run(runner, "remind", "--dry-run", "--region", "430903")
    assert dry.exit_code == 0 and "地区“赫山区”将加入待发消息的提醒" in dry.output


def test_audit_by_region(two_cycles, runner):
    out = _run(runner, "audit", "--since", "2000-01-01", "--region", "430903")
    assert out.exit_code == 0, out.output
