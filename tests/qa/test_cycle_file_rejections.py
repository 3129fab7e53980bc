"""Cycle files written by someone else, broken in ways people really break them: every problem is a
message naming the key and its position, never a traceback, and the database stays as it was."""
import pytest
import yaml
from sqlalchemy import func, select

from fazhi_flow.models import Assignment, AuditEvent, Indicator, ReportCycle, Rule, Section, Unit, User
from fazhi_flow.services.importer import CycleFileError, import_cycle, import_cycle_file

COUNTY = {
    "cycle": {"title": "桃源县2025年法治政府建设年度报告", "year": 2025, "region": "临江市桃源县",
              "due": "2026-01-09", "issuers": ["中共桃源县委员会", "桃源县人民政府"], "issue_date": "2026-01-20"},
    "units": [{"code": "gov", "name": "县人民政府"},
              {"code": "sfj", "name": "县司法局", "parent": "gov"},
              {"code": "scj", "name": "县市场监管局", "parent": "gov"},
              {"code": "town", "name": "桃花镇", "kind": "township", "parent": "gov"}],
    "users": [{"username": "tao_rev", "name": "审核人", "roles": ["reviewer"]},
              {"username": "tao_sfj", "name": "联络员", "unit": "sfj", "roles": ["liaison"]}],
    "outline": [
        {"code": "opening", "title": None, "lead": "sfj"},
        {"code": "measures", "title": "推进法治政府建设的主要举措和成效", "reviewers": ["tao_rev"], "children": [
            {"code": "measures.market", "title": "优化法治化营商环境", "run_in": True, "lead": "scj",
             "support": ["town"], "due": "2026-01-06",
             "indicators": [{"code": "firms", "name": "新增市场主体", "unit": "户"}]},
        ]},
    ],
}


def _yaml(doc=None):
    return yaml.safe_dump(doc or COUNTY, allow_unicode=True, sort_keys=False)


def _state(db):
    models = (Unit, User, ReportCycle, Section, Assignment, Indicator, Rule, AuditEvent)
    counts = tuple(db.session.scalar(select(func.count()).select_from(m)) for m in models)
    parents = tuple(db.session.execute(select(Unit.code, Unit.parent_id).order_by(Unit.code)))
    return counts, parents


@pytest.fixture()
def imported(db):
    import_cycle(_yaml())
    db.session.commit()
    return _state(db)


def _refused(db, text):
    with pytest.raises(CycleFileError) as info:
        import_cycle(text)
    db.session.rollback()
    return info.value.errors


def test_impossible_calendar_date_is_a_message_with_its_position(db, imported):
    text = _yaml().replace("due: '2026-01-06'", "due: 2026-02-30")
    assert "2026-02-30" in text
    errors = _refused(db, text)
    assert errors == ["outline[1].children[0].due：日期“2026-02-30”无效，应写成 2025-01-10 的格式"]
    assert _state(db) == imported


def test_units_whose_parents_form_a_loop_are_refused_before_anything_is_written(db, imported):
    doc = yaml.safe_load(_yaml())
    doc["units"][0]["parent"] = "sfj"   # 县人民政府 under 县司法局, which is under 县人民政府
    errors = _refused(db, _yaml(doc))
    assert len(errors) == 1
    assert errors[0].startswith("units[0].parent：")
    assert "循环" in errors[0] and "gov" in errors[0] and "sfj" in errors[0]
    assert _state(db) == imported


def test_a_loop_through_a_unit_only_in_the_database_is_found_too(db, imported):
    # 县司法局 is below 县人民政府 in the database; this file lists only 县人民政府 and puts it below
    # 县司法局, so the loop closes through a stored parent the file does not mention.
    doc = yaml.safe_load(_yaml())
    doc["units"] = [{"code": "gov", "name": "县人民政府", "parent": "sfj"}]
    errors = _refused(db, _yaml(doc))
    assert any("循环" in e for e in errors)
    assert _state(db) == imported


def test_a_parent_that_is_not_a_code_is_a_message(db, imported):
    doc = yaml.safe_load(_yaml())
    doc["units"][1]["parent"] = ["gov", "town"]
    errors = _refused(db, _yaml(doc))
    assert errors and errors[0].startswith("units[1].parent：")
    assert _state(db) == imported


def test_a_missing_required_key_is_reported_once(db, imported):
    doc = yaml.safe_load(_yaml())
    del doc["cycle"]["title"]
    assert _refused(db, _yaml(doc)) == ["cycle.title：必填"]
    assert _state(db) == imported


def test_an_unknown_top_level_key_names_the_key_itself(db, imported):
    errors = _refused(db, _yaml() + "reviewers: [tao_rev]\n")
    assert len(errors) == 1 and errors[0].startswith("reviewers：未知的键“reviewers”")
    assert _state(db) == imported


def test_a_file_saved_in_gbk_says_to_save_it_as_utf8(db, imported, tmp_path):
    path = tmp_path / "county.yaml"
    path.write_bytes(_yaml().encode("gbk"))
    with pytest.raises(CycleFileError) as info:
        import_cycle_file(str(path))
    db.session.rollback()
    (message,) = info.value.errors
    assert "UTF-8" in message and "codec" not in message
    assert _state(db) == imported


# ------------------------------------------------------------------ re-import reports what it changed


def _doc():
    return yaml.safe_load(_yaml())


def test_a_changed_indicator_or_rule_is_a_change(db, imported):
    doc = _doc()
    market = doc["outline"][1]["children"][0]
    market["indicators"][0]["name"] = "新登记市场主体"
    result = import_cycle(_yaml(doc))
    db.session.commit()
    assert result.changed and result.updated["indicators"] == 1
    market["rules"] = [{"expr": "firms >= 0", "severity": "warning"}]
    result = import_cycle(_yaml(doc))
    db.session.commit()
    assert result.changed and result.updated["rules"] == 1
    assert not import_cycle(_yaml(doc)).changed


def test_a_dropped_indicator_is_counted_and_printed(db, imported, runner, tmp_path):
    doc = _doc()
    del doc["outline"][1]["children"][0]["indicators"]
    path = tmp_path / "county.yaml"
    path.write_text(_yaml(doc), encoding="utf-8")
    listed = runner.invoke(args=["fazhi", "import-cycle", str(path)])
    assert listed.exit_code == 1 and "删除统计指标 firms 新增市场主体" in listed.output, listed.output
    assert db.session.scalar(select(func.count()).select_from(Indicator)) == 1  # listed, not written
    out = runner.invoke(args=["fazhi", "import-cycle", "--yes", str(path)])
    assert out.exit_code == 0, out.output
    assert "删除统计指标 firms 新增市场主体" in out.output and "删除：统计指标1个" in out.output
    assert "没有变化" not in out.output
    assert db.session.scalar(select(func.count()).select_from(Indicator)) == 0


def test_an_indicator_with_values_cannot_be_dropped_by_a_file(db, imported):
    from fazhi_flow.models import Contribution
    from fazhi_flow.services import figures
    from fazhi_flow.services.cycles import open_cycle

    admin = User(username="tao_admin", name="管理员")
    admin.set_roles(["admin"])
    liaison = User(username="tao_scj", name="市场监管局联络员",
                   unit_id=db.session.scalar(select(Unit.id).where(Unit.code == "scj")))
    liaison.set_roles(["liaison"])
    db.session.add_all([admin, liaison])
    cycle = db.session.scalar(select(ReportCycle))
    open_cycle(cycle, admin)
    contribution = db.session.scalar(select(Contribution).where(Contribution.unit_id == liaison.unit_id))
    figures.save_figures(contribution, liaison, {"firms": "1250"})
    db.session.commit()
    before = _state(db)

    doc = _doc()
    del doc["outline"][1]["children"][0]["indicators"]
    errors = _refused(db, _yaml(doc))
    assert errors == ["outline[1].children[0].indicators：指标“新增市场主体”（firms）已有单位填报的数值，不能删除"]
    assert _state(db) == before
