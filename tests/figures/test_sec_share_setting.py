"""The per-cycle setting that lets liaisons see other units' approved figures: off by default, set by the
admin on the settings page (audited) or by ``share_approved_figures`` in a cycle file."""
import pytest
from sqlalchemy import select

from fazhi_flow.models import ReportCycle
from fazhi_flow.models.audit import AuditEvent
from fazhi_flow.services.importer import CycleFileError, import_cycle

from .conftest import build_seed_world

CYCLE_FILE = """
cycle:
  title: 某区2031年法治政府建设年度报告
  year: 2031
  region: 某区
  share_approved_figures: {value}
outline:
  - code: s1
    title: 主要举措
"""


def test_the_admin_turns_sharing_on_and_off_on_the_settings_page(db, factory, login):
    world = build_seed_world(db, factory)
    assert world.cycle.share_approved_figures is False
    db.session.commit()
    client = login(world.admin)
    form = client.get(f"/admin/cycles/{world.cycle.id}/edit").get_data(as_text=True)
    assert "允许联络员查看和引用其他单位已审核通过的统计数据" in form
    data = {"title": world.cycle.title, "share_approved_figures": "y"}
    assert client.post(f"/admin/cycles/{world.cycle.id}/edit", data=data).status_code == 303
    db.session.expire_all()
    assert db.session.get(ReportCycle, world.cycle.id).share_approved_figures is True
    assert "联络员可见" in client.get(f"/admin/cycles/{world.cycle.id}").get_data(as_text=True)
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "cycle.share_figures"))
    assert audit is not None
    client.post(f"/admin/cycles/{world.cycle.id}/edit", data={"title": world.cycle.title})
    db.session.expire_all()
    assert db.session.get(ReportCycle, world.cycle.id).share_approved_figures is False


def test_a_cycle_file_sets_it_and_refuses_anything_but_a_boolean(db):
    result = import_cycle(CYCLE_FILE.format(value="true"))
    assert result.cycle.share_approved_figures is True
    with pytest.raises(CycleFileError) as info:
        import_cycle(CYCLE_FILE.format(value="'是'"))
    assert "cycle.share_approved_figures：应为 true 或 false" in info.value.message
    db.session.expire_all()
    assert db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2031)).share_approved_figures is True
