"""In a real browser: a late open moves the past due dates to the date the admin picks; material of a
unit without a unit head is agreed by the admin on the unit head's behalf."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import Contribution, ReportCycle, TransitionLog
from fazhi_flow.timeutil import local_today
from fazhi_flow.workdays import WorkCalendar

pytestmark = pytest.mark.browser


def test_late_open_moves_the_dates_the_admin_picks(factory, db, person):
    w = factory.world(state="setup")
    today = local_today()
    w.cycle.due = today - timedelta(days=10)
    db.session.delete(w.contribution)
    db.session.commit()
    cycle_id = w.cycle.id
    db.session.commit()

    admin = person(w.admin)
    page = admin.login()
    page.goto(f"/admin/cycles/{cycle_id}/open")
    warning = page.locator(".late-dues")
    assert "有1项任务的截止日期已过" in warning.inner_text() and "区司法局" in warning.inner_text()
    field = page.locator("input[name=move_to]")
    assert field.input_value() == WorkCalendar().add_working_days(today, 5).isoformat()
    target = today + timedelta(days=8)
    field.fill(target.isoformat())
    admin.shot("admin-open-late")
    page.click("button:has-text('顺延截止日期并开始征集')")
    page.wait_for_load_state()
    assert "已开始征集" in page.content() and f"{target.month}月{target.day}日" in page.content()
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, cycle_id)
    assert cycle.state == "collecting" and cycle.due == target and cycle.opened_at is not None


def test_admin_agrees_for_a_unit_without_unit_head(factory, db, person):
    w = factory.world(state="collecting", unit_head_review=True, contribution_state="unit_review")
    w.contribution.body = "全年办理行政复议案件52件。"
    w.unit_head.active = False
    db.session.commit()
    cid, cycle_id = w.contribution.id, w.cycle.id
    db.session.commit()

    admin = person(w.admin)
    page = admin.login()
    page.goto(f"/admin/cycles/{cycle_id}/contributions?state=unit_review")
    page.click("a:has-text('代单位负责人处理')")
    page.wait_for_load_state()
    assert "没有启用的单位负责人账号" in page.content()
    page.fill("textarea[name=approve-reason]", "已电话核实")
    page.click("button:has-text('代单位负责人同意报送')")
    page.wait_for_load_state()
    assert "已代单位负责人同意报送" in page.content()
    db.session.expire_all()
    assert db.session.get(Contribution, cid).state == "submitted"
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == cid)
                             .order_by(TransitionLog.id.desc())).first()
    assert log.comment.startswith("管理员代单位负责人同意报送") and log.comment.endswith("已电话核实")
