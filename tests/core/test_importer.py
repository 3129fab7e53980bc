"""Cycle definition files: round trip, idempotence, updates, and rejections that leave nothing behind."""
from importlib import resources

import pytest
import yaml
from sqlalchemy import func, select

from fazhi_flow.models import Assignment, Indicator, ReportCycle, Rule, Section, Unit, User
from fazhi_flow.services.importer import CycleFileError, import_cycle

MINIMAL = {
    "cycle": {"title": "某县2025年法治政府建设年度报告", "year": 2025, "region": "某县", "due": "2026-01-15",
              "issuers": ["中共某县委员会", "某县人民政府"], "issue_date": "2026-01-20"},
    "units": [{"code": "sfj", "name": "县司法局", "kind": "government"},
              {"code": "town1", "name": "城关镇", "kind": "township"}],
    "users": [{"username": "rev", "name": "审核员甲", "roles": ["reviewer"]},
              {"username": "sfj1", "name": "联络员甲", "unit": "sfj", "roles": ["liaison"], "email": "a@b.cn"}],
    "outline": [
        {"title": None, "lead": "sfj"},
        {"title": "主要举措和成效", "reviewers": ["rev"], "children": [
            {"code": "mediation", "title": "化解矛盾纠纷", "run_in": True, "lead": ["sfj"], "support": ["town1"],
             "due": "2026-01-10",
             "indicators": [{"code": "total", "name": "调委会", "unit": "个", "type": "integer"},
                            {"code": "town", "name": "镇级调委会", "unit": "个"}],
             "rules": [{"expr": "total >= town", "severity": "warning"}]},
        ]},
    ],
}


def _doc(**changes):
    doc = yaml.safe_load(yaml.safe_dump(MINIMAL, allow_unicode=True))
    for dotted, value in changes.items():
        target = doc
        keys = dotted.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return yaml.safe_dump(doc, allow_unicode=True)


def _counts(db):
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Unit, User, ReportCycle, Section, Assignment, Indicator, Rule))


def test_round_trip_and_idempotent(db):
    result = import_cycle(_doc())
    db.session.commit()
    cycle = result.cycle
    assert (cycle.year, cycle.region, cycle.issuer_list) == (2025, "某县", ["中共某县委员会", "某县人民政府"])
    opening, main = cycle.top_sections()
    assert opening.title is None and opening.number == ""
    assert main.number == "一、"
    child = main.children[0]
    assert (child.number, child.run_in, child.code) == ("（一）", True, "mediation")
    assert [(a.unit.code, a.role) for a in child.assignments] == [("sfj", "lead"), ("town1", "support")]
    assert [r.username for r in child.effective_reviewers()] == ["rev"]
    assert {i.code for i in child.indicators} == {"total", "town"}
    assert result.passwords.keys() == {"rev", "sfj1"}  # one-time passwords for new users
    before = _counts(db)
    again = import_cycle(_doc())
    db.session.commit()
    assert not again.changed
    assert _counts(db) == before


def test_update_in_place(db):
    import_cycle(_doc())
    db.session.commit()
    doc = _doc(**{"outline.1.children.0.title": "依法化解矛盾纠纷", "units.1.name": "城关街道",
                  "outline.1.children.0.support": []})
    result = import_cycle(doc)
    db.session.commit()
    section = db.session.scalar(select(Section).where(Section.code == "mediation"))
    assert section.title == "依法化解矛盾纠纷"
    assert [a.unit.code for a in section.assignments] == ["sfj"]
    assert db.session.scalar(select(Unit).where(Unit.code == "town1")).name == "城关街道"
    assert result.removed["assignments"] == 1


@pytest.mark.parametrize("change, expected", [
    ({"cycle.colour": "red"}, "cycle.colour：未知的键"),
    ({"outline.1.children.0.lead": ["nope"]}, "outline[1].children[0].lead：未知的单位代码“nope”"),
    ({"outline.1.reviewers": ["ghost"]}, "outline[1].reviewers：未知的用户名“ghost”"),
    ({"cycle.due": "2026-02-30"}, "cycle.due：日期“2026-02-30”无效"),
    ({"outline.1.children.0.due": "明天"}, "outline[1].children[0].due：日期“明天”无效"),
    ({"units.1.code": "sfj"}, "units[1].code：单位代码“sfj”重复"),
    ({"users.1.username": "rev"}, "users[1].username：用户名“rev”重复"),
    ({"users.1.roles": ["boss"]}, "users[1].roles：角色“boss”无效"),
    ({"outline.1.children.0.indicators.1.code": "total"}, "indicators[1].code：指标代码“total”重复"),
    ({"outline.1.children.0.code": "1"}, "章节代码“1”重复"),
    ({"cycle.year": "二〇二五"}, "cycle.year：“二〇二五”应为整数"),
    ({"users.1.unit": None}, "users[1].unit：联络员和单位负责人必须属于一个单位"),
    ({"outline.1.children.0.rules.0.expr": "total >= "}, "outline[1].children[0].rules[0].expr："),
    ({"outline.1.children.0.rules.0.expr": "total >= village"}, "village"),
    ({"outline.1.children.0.rules.0.severity": "fatal"}, "rules[0].severity：严重程度“fatal”无效"),
])
def test_rejections_name_key_and_position_and_write_nothing(db, change, expected):
    before = _counts(db)
    with pytest.raises(CycleFileError) as refused:
        import_cycle(_doc(**change))
    db.session.rollback()
    assert any(expected in line for line in refused.value.errors), refused.value.errors
    assert _counts(db) == before


def test_yaml_syntax_error_names_the_line(db):
    with pytest.raises(CycleFileError) as refused:
        import_cycle("cycle:\n  title: [未闭合\n")
    assert "第" in refused.value.errors[0] and "行" in refused.value.errors[0]


def test_broken_file_leaves_existing_cycle_unchanged(db):
    import_cycle(_doc())
    db.session.commit()
    before = _counts(db)
    broken = _doc(**{"outline.1.children.0.title": "改了标题", "outline.1.children.0.support": ["ghost"]})
    with pytest.raises(CycleFileError):
        import_cycle(broken)
    db.session.rollback()
    assert _counts(db) == before
    assert db.session.scalar(select(Section).where(Section.code == "mediation")).title == "化解矛盾纠纷"


def test_shipped_files_import(db):
    text = resources.files("fazhi_flow").joinpath("data", "demo_cycle.yaml").read_text(encoding="utf-8")
    result = import_cycle(text)
    db.session.commit()
    cycle = result.cycle
    tops = cycle.top_sections()
    assert [s.number for s in tops] == ["", "一、", "二、", "三、", "四、"]
    assert [c.number for c in tops[1].children] == ["（一）", "（二）", "（三）", "（四）"]
    codes = {i.code for i in db.session.scalars(select(Indicator).where(Indicator.cycle_id == cycle.id))}
    assert {"mediation_total", "mediation_town", "lenient_total"} <= codes


def test_standard_outline_has_the_five_parts(db):
    text = resources.files("fazhi_flow").joinpath("data", "standard_outline.yaml").read_text(encoding="utf-8")
    outline = yaml.safe_load(text)["outline"]
    titles = [n["title"] for n in outline if n["title"]]
    assert titles[0] == "推进法治政府建设的主要举措和成效"
    assert any("第一责任人职责" in t for t in titles)
    assert "推进法治政府建设存在的不足和原因" in titles
    assert any("下一年度" in t for t in titles) and "其他需要报告的情况" in titles


def test_documented_example_imports(db):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cycle-file.md").read_text(encoding="utf-8")
    example = doc.split("```yaml", 1)[1].split("```", 1)[0]
    result = import_cycle(example)
    db.session.commit()
    assert result.cycle.title == "某某区2025年法治政府建设年度报告"
    section = db.session.scalar(select(Section).where(Section.code == "measures.disputes"))
    assert section.number == "（一）" and len(section.assignments) == 3


def test_reminder_policy_from_the_file(db):
    from fazhi_flow.models.reminder import ReminderPolicy

    policy = {"before_due_days": [7, 3], "send_time": "8:30", "overdue_every": 3, "daily_digest": False}
    result = import_cycle(_doc(**{"cycle.reminder_policy": policy}))
    db.session.commit()
    row = db.session.scalar(select(ReminderPolicy).where(ReminderPolicy.cycle_id == result.cycle.id))
    assert (row.before_due_days, row.send_time, row.overdue_every, row.daily_digest) == ("7,3", "08:30", 3, False)
    assert row.overdue_max == 5  # a key not given keeps its default


@pytest.mark.parametrize("policy, expected", [
    ({"send_time": "25:00"}, "cycle.reminder_policy.send_time：“发送时间”格式应为"),
    ({"overdue_every": 0}, "cycle.reminder_policy.overdue_every：“逾期后每隔几个工作日催报”必须在1到30之间"),
    ({"before_due_days": "5,x"}, "cycle.reminder_policy.before_due_days："),
    ({"nag": True}, "cycle.reminder_policy.nag：未知的键"),
    ({"enabled": "yes"}, "cycle.reminder_policy.enabled：应为 true 或 false"),
])
def test_reminder_policy_rejections(db, policy, expected):
    before = _counts(db)
    with pytest.raises(CycleFileError) as refused:
        import_cycle(_doc(**{"cycle.reminder_policy": policy}))
    db.session.rollback()
    assert any(expected in line for line in refused.value.errors), refused.value.errors
    assert _counts(db) == before
