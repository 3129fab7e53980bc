"""The cycle file's ``review_mode`` key (审核方式): any (default) or all (会签), all only where reviewers
are named on the section or above it."""
import pytest
import yaml
from sqlalchemy import func, select

from fazhi_flow.models import Section
from fazhi_flow.services.importer import CycleFileError, import_cycle

DOC = {
    "cycle": {"title": "某县2025年法治政府建设年度报告", "year": 2025, "region": "某县", "due": "2026-01-15",
              "issuers": ["中共某县委员会", "某县人民政府"], "issue_date": "2026-01-20"},
    "units": [{"code": "sfj", "name": "县司法局", "kind": "government"}],
    "users": [{"username": "rev", "name": "审核员甲", "roles": ["reviewer"]},
              {"username": "rev2", "name": "审核员乙", "roles": ["reviewer"]},
              {"username": "sfj1", "name": "联络员甲", "unit": "sfj", "roles": ["liaison"], "email": "a@b.cn"}],
    "outline": [
        {"code": "opening", "title": None, "lead": "sfj"},
        {"code": "measures", "title": "主要举措和成效", "reviewers": ["rev", "rev2"], "review_mode": "all",
         "children": [{"code": "mediation", "title": "化解矛盾纠纷", "lead": ["sfj"], "review_mode": "all"},
                      {"code": "training", "title": "依法行政培训", "lead": ["sfj"]}]},
    ],
}


def _text(doc):
    return yaml.safe_dump(doc, allow_unicode=True)


def _modes(db):
    return dict(db.session.execute(select(Section.code, Section.review_mode)).all())


def test_review_mode_is_read_and_updated(db):
    import_cycle(_text(DOC))
    assert _modes(db) == {"opening": "any", "measures": "all", "mediation": "all", "training": "any"}
    changed = yaml.safe_load(_text(DOC))
    changed["outline"][1]["review_mode"] = "any"
    result = import_cycle(_text(changed))
    assert _modes(db)["measures"] == "any"
    assert "修改章节 measures 主要举措和成效：审核方式 全部审核人会签 → 任一审核人通过" in result.lines()


@pytest.mark.parametrize("where, value, expected", [
    (0, "all", "outline[0].review_mode：设为 all（全部审核人会签）的章节须在本章节或上级章节用 reviewers 指定审核人"),
    (1, "most", "outline[1].review_mode：“most”应为 any（任一审核人通过）或 all（全部审核人会签）"),
    (1, True, "outline[1].review_mode：“True”应为 any"),
])
def test_bad_review_mode_is_refused_by_key_and_writes_nothing(db, where, value, expected):
    doc = yaml.safe_load(_text(DOC))
    doc["outline"][where]["review_mode"] = value
    with pytest.raises(CycleFileError) as refused:
        import_cycle(_text(doc))
    db.session.rollback()
    assert any(expected in line for line in refused.value.errors), refused.value.errors
    assert db.session.scalar(select(func.count()).select_from(Section)) == 0
