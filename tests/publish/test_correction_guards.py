"""While a correction awaits the leader's signature the report is still published: its settings and
its cycle file cannot change it."""
import pytest
import yaml

from fazhi_flow.errors import DomainError
from fazhi_flow.services.importer import CycleFileError, import_cycle
from fazhi_flow.services.outline import update_cycle_settings

CYCLE = {
    "cycle": {"title": "梅岭区2025年法治政府建设年度报告", "year": 2025, "region": "梅岭区"},
    "units": [{"code": "sfj", "name": "区司法局"}],
    "outline": [{"code": "plans", "title": "下一年度工作安排", "lead": "sfj"}],
}


@pytest.mark.parametrize("state", ["published", "correcting"])
def test_cycle_file_cannot_change_a_published_report(db, state):
    cycle = import_cycle(yaml.safe_dump(CYCLE, allow_unicode=True)).cycle
    cycle.state = state
    db.session.commit()
    changed = CYCLE | {"cycle": CYCLE["cycle"] | {"title": "改过的标题"}}
    with pytest.raises(CycleFileError) as refused:
        import_cycle(yaml.safe_dump(changed, allow_unicode=True))
    assert "不能再修改" in refused.value.errors[0]
    db.session.rollback()
    assert cycle.title == "梅岭区2025年法治政府建设年度报告"


@pytest.mark.parametrize("state", ["published", "correcting"])
def test_settings_cannot_change_a_published_report(factory, db, state):
    world = factory.world(state=state)
    db.session.commit()
    title = world.cycle.title
    with pytest.raises(DomainError, match="报告已发布"):
        update_cycle_settings(world.cycle, world.admin, "改过的标题", None, False, "", None)
    db.session.rollback()
    assert world.cycle.title == title
