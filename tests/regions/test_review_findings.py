"""Cross-region holes found by reading the code after regions became tenants, each pinned by a test."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select

SH = ZoneInfo("Asia/Shanghai")
STRONG = "Zz9!long-enough-passw0rd"


def _file(region_code, units, users=(), title="2025年法治政府建设年度报告"):
    return yaml.safe_dump({
        "cycle": {"title": title, "year": 2025, "region": region_code, "due": "2026-01-10"},
        "units": [{"code": code, "name": name} for code, name in units],
        "users": list(users),
        "outline": [{"code": "main", "title": "推进依法行政", "lead": [units[0][0]]}],
    }, allow_unicode=True)


def test_a_cycle_file_grants_no_more_than_the_users_page(two_regions, db):
    """A county admin cannot make a 系统管理员 through a cycle file, nor change the accounts of the people
    they do not manage; nothing is written."""
    from fazhi_flow.models import User
    from fazhi_flow.services.importer import CycleFileError, import_cycle

    w = two_regions
    users_before = db.session.scalar(select(func.count(User.id)))
    text = _file("430903", [("gaj", "赫山公安分局")],
                 [{"username": "hs_root", "name": "某人", "roles": ["sysadmin", "admin"], "password": STRONG}])
    with pytest.raises(CycleFileError) as refused:
        import_cycle(text, w.hs.admin)
    assert "users[0].roles" in str(refused.value) and "系统管理员" in str(refused.value)
    db.session.rollback()
    assert db.session.scalar(select(func.count(User.id))) == users_before

    # The city's admin may not demote the system administrator or promote itself.
    text = _file("430900", [("yfzsb", "市委依法治市办")], [
        {"username": "sysadmin", "name": "系统管理员", "unit": "yfzsb", "roles": ["reviewer"]},
        {"username": "ys_admin", "name": "市管理员", "unit": "yfzsb", "roles": ["admin", "sysadmin"]}])
    with pytest.raises(CycleFileError) as refused:
        import_cycle(text, w.city_admin)
    assert "users[0].username" in str(refused.value) and "users[1].roles" in str(refused.value)
    db.session.rollback()
    db.session.expire_all()
    assert w.sysadmin.roles == {"sysadmin"} and w.city_admin.roles == {"admin"}


def test_an_admin_is_not_told_of_another_regions_failing_robot(two_regions, db, as_user):
    from fazhi_flow.models.ops import ChannelHealth
    from fazhi_flow.models.reminder import WebhookTarget
    from fazhi_flow.timeutil import utcnow

    w = two_regions
    robots = {}
    for county, name in ((w.zy, "资阳公安分局工作群"), (w.hs, "赫山公安分局工作群")):
        robot = WebhookTarget(name=name, kind="wecom", url="https://qyapi.example.test/x", unit_id=county.gaj.id)
        db.session.add(robot)
        db.session.flush()
        robots[name] = robot
        db.session.add(ChannelHealth(channel=f"wh:{robot.id}", failing_since=utcnow(), failures=3,
                                     last_error=f"HTTP 403 {name}令牌失效"))
    db.session.commit()
    client = as_user(w.hs.admin)
    for path in ("/admin/users", "/reminders/outbox"):
        page = client.get(path).get_data(as_text=True)
        assert "赫山公安分局工作群" in page or "1个群机器人" in page, path
        assert "资阳公安分局工作群" not in page and "资阳公安分局工作群令牌失效" not in page, path


def test_remind_dry_run_for_a_region_lists_only_its_reminders_when_titles_agree(two_regions, db, runner):
    from fazhi_flow.services.cycles import open_cycle
    from fazhi_flow.services.importer import import_cycle

    w = two_regions
    for code, admin, name in (("430903", w.hs.admin, "赫山公安分局"), ("430902", w.zy.admin, "资阳公安分局")):
        cycle = import_cycle(_file(code, [("gaj", name)]), admin).cycle
        db.session.flush()
        open_cycle(cycle, admin)
        db.session.commit()
    out = runner.invoke(args=["fazhi", "remind", "--dry-run", "--region", "430903",
                              "--at", "2026-01-07T09:05+08:00"])
    assert out.exit_code == 0, out.output
    assert "赫山公安分局" in out.output and "资阳" not in out.output


def test_a_command_line_import_is_in_its_regions_audit_trail(two_regions, db, as_user):
    from fazhi_flow.services.importer import import_cycle

    w = two_regions
    import_cycle(_file("430903", [("gaj", "赫山公安分局")], title="赫山专用年度报告"), None, region=w.hs.region)
    db.session.commit()
    seen = {who.username: "赫山专用年度报告" in as_user(who).get("/admin/audit").get_data(as_text=True)
            for who in (w.hs.admin, w.zy.admin, w.city_admin)}
    assert seen == {"hs_admin": True, "zy_admin": False, "ys_admin": False}


def test_a_deactivated_region_is_not_swept(two_regions, db):
    from fazhi_flow.models import Reminder
    from fazhi_flow.reminders.jobs import sweep
    from fazhi_flow.services.cycles import open_cycle
    from fazhi_flow.services.importer import import_cycle
    from fazhi_flow.services.regions import deactivate_region

    w = two_regions
    cycles = {}
    for code, admin, name in (("430903", w.hs.admin, "赫山公安分局"), ("430902", w.zy.admin, "资阳公安分局")):
        cycles[code] = import_cycle(_file(code, [("gaj", name)]), admin).cycle
        db.session.flush()
        open_cycle(cycles[code], admin)
        db.session.commit()
    deactivate_region(w.zy.region, w.sysadmin)
    db.session.commit()
    sweep(datetime(2026, 1, 7, 9, 5, tzinfo=SH))
    db.session.commit()
    swept = set(db.session.scalars(select(Reminder.cycle_id).distinct()))
    assert swept == {cycles["430903"].id}


def test_a_shared_region_name_prints_with_the_parents_name(two_regions, db):
    from fazhi_flow.models import Region
    from fazhi_flow.services.regions import printed_name

    w = two_regions
    assert printed_name(w.hs.region) == "赫山区"
    other_city = Region(code="430700", name="常德市", level="city")
    db.session.add(other_city)
    db.session.flush()
    db.session.add(Region(code="430799", name="赫山区", level="county", parent=other_city))
    db.session.flush()
    assert printed_name(w.hs.region) == "益阳市赫山区"
