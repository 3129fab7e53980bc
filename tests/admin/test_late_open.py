"""Opening or reopening collection with due dates already past: the confirmation page lists them and
offers to move them (one action with the open, audited); a unit without a unit head blocks the open
when material must pass the unit head."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from fazhi_flow.models import AuditEvent, ReportCycle, TransitionLog
from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.timeutil import cn_date_text, local_today

from .conftest import login


def _late_office(factory, db, office):
    """Two tasks already past (one by the cycle's date, one by its own) and one still ahead."""
    today = local_today()
    office.cycle.due = today - timedelta(days=20)
    ahead = factory.section(office.cycle, "加强行政复议", parent=office.top, due=today + timedelta(days=30))
    factory.assignment(office.leaf, office.units[0])  # the cycle's date
    factory.assignment(office.leaf, office.units[1], role="support", due=today - timedelta(days=3))
    factory.assignment(ahead, office.units[2])
    for unit in office.units[1:]:
        factory.user("liaison", unit=unit)
    db.session.commit()
    return today


def _fifth_working_day(today: date) -> date:
    return WorkCalendar().add_working_days(today, 5)


def _audit(db, action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id.desc())).first()


def test_open_page_lists_the_past_dates_and_proposes_five_working_days(admin_client, office, factory, db):
    today = _late_office(factory, db, office)
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/open").get_data(as_text=True)
    assert "有2项任务的截止日期已过" in page
    warning = page[page.index("late-dues"):page.index("</table>")]
    assert "区司法局" in warning and "区市场监管局" in warning and "某某镇" not in warning
    assert "严格规范执法" in warning
    d = today - timedelta(days=3)
    assert f"{d.year}年{d.month}月{d.day}日" in warning
    assert f'value="{_fifth_working_day(today).isoformat()}"' in page
    assert "顺延截止日期并开始征集" in page and "按原截止日期开始征集" in page
    assert "确认开始征集" not in page


def test_open_page_without_past_dates_has_no_warning(admin_client, office, factory, db):
    office.cycle.due = local_today()  # due today is not past
    factory.assignment(office.leaf, office.units[0])
    db.session.commit()
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/open").get_data(as_text=True)
    assert "截止日期已过" not in page and "确认开始征集" in page


def test_moving_the_past_dates_is_one_audited_action_with_the_open(admin_client, office, factory, db):
    today = _late_office(factory, db, office)
    target = today + timedelta(days=9)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open",
                                 data={"late": "move", "move_to": target.isoformat()})
    assert response.status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, office.cycle.id)
    assert cycle.state == "collecting" and cycle.due == target
    dues = {a.unit.name: a.effective_due() for s in cycle.sections for a in s.assignments}
    assert dues == {"区司法局": target, "区市场监管局": target, "某某镇": today + timedelta(days=30)}
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.cycle_id == cycle.id,
                                                         TransitionLog.event == "open")).one()
    assert cycle.opened_at == log.created_at
    audit = _audit(db, "cycle.open")
    # Dates in the one format of pages and messages (2025年1月6日), never 2025-01-06.
    assert audit.detail["due"] == cn_date_text(target)
    assert len(audit.detail["moved"]) == 2
    assert any(m == f"报告截止日期：{cn_date_text(today - timedelta(days=20))}" for m in audit.detail["moved"])
    assert any("区市场监管局" in m and m.endswith(cn_date_text(today - timedelta(days=3)))
               for m in audit.detail["moved"])
    assert not any("-" in m for m in audit.detail["moved"])
    page = admin_client.get(f"/admin/audit?action=cycle.open").get_data(as_text=True)
    assert "顺延前的截止日期" in page and target.isoformat() not in page


def test_opening_as_is_keeps_the_dates_and_notes_the_moment(admin_client, office, factory, db):
    today = _late_office(factory, db, office)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open",
                                 data={"late": "keep", "move_to": (today + timedelta(days=9)).isoformat()})
    assert response.status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, office.cycle.id)
    assert cycle.state == "collecting" and cycle.due == today - timedelta(days=20)
    assert cycle.opened_at is not None
    assert "moved" not in (_audit(db, "cycle.open").detail or {})


def test_a_date_before_today_or_unreadable_changes_nothing(admin_client, office, factory, db):
    today = _late_office(factory, db, office)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open",
                                 data={"late": "move", "move_to": (today - timedelta(days=1)).isoformat()})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "不能早于今天" in page and "Traceback" not in page
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open",
                                 data={"late": "move", "move_to": "2025-13-40"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "日期格式应为" in page and 'value="2025-13-40"' in page
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "move", "move_to": ""})
    assert "请填写顺延后的截止日期" in response.get_data(as_text=True)
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, office.cycle.id)
    assert cycle.state == "setup" and cycle.due == today - timedelta(days=20) and cycle.opened_at is None
    assert _audit(db, "cycle.open") is None


def test_reopening_lists_the_past_dates_and_moves_them(admin_client, office, factory, db):
    today = _late_office(factory, db, office)
    admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "keep"})
    admin_client.post(f"/admin/cycles/{office.cycle.id}/compile", data={"compile-reason": "先行汇总"})
    db.session.expire_all()
    first = db.session.get(ReportCycle, office.cycle.id).opened_at
    overview = admin_client.get(f"/admin/cycles/{office.cycle.id}").get_data(as_text=True)
    assert f"/admin/cycles/{office.cycle.id}/reopen-collection" in overview
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/reopen-collection").get_data(as_text=True)
    assert "有2项任务的截止日期已过" in page and "顺延截止日期并重新征集" in page
    target = _fifth_working_day(today)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/reopen-collection",
                                 data={"late": "move", "reopen-move_to": target.isoformat(),
                                       "reopen-reason": "补充复议数据"})
    assert response.status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, office.cycle.id)
    assert cycle.state == "collecting" and cycle.due == target and cycle.opened_at > first
    audit = _audit(db, "cycle.reopen_collection")
    assert audit.detail["comment"] == "补充复议数据" and len(audit.detail["moved"]) == 2


def test_open_refused_while_a_unit_has_no_unit_head(client, factory, db, runner):
    w = factory.world(state="setup", unit_head_review=True)
    lonely = factory.unit("区无负责人局", code="wfzr")
    factory.user("liaison", unit=lonely)
    factory.assignment(w.section, lonely, role="support")
    db.session.commit()
    login(client, w.admin)
    page = client.get(f"/admin/cycles/{w.cycle.id}/open").get_data(as_text=True)
    assert "暂不能开始征集" in page and 'type="submit"' not in page.split("暂不能开始征集")[1].split("</main>")[0]
    response = client.post(f"/admin/cycles/{w.cycle.id}/open", data={"late": "keep"})
    page = response.get_data(as_text=True)
    assert "区无负责人局没有启用的单位负责人账号" in page and "不能开始征集" in page
    db.session.expire_all()
    assert db.session.get(ReportCycle, w.cycle.id).state == "setup"
    # The CLI is refused the same way.
    result = runner.invoke(args=["fazhi", "transition", "--user", w.admin.username, "--cycle", str(w.cycle.id),
                                 "open"])
    assert "区无负责人局" in result.output and result.exit_code != 0
    # Once the unit has a unit head, the cycle opens.
    factory.user("unit_head", unit=lonely)
    db.session.commit()
    assert client.post(f"/admin/cycles/{w.cycle.id}/open", data={"late": "keep"}).status_code == 303
    db.session.expire_all()
    assert db.session.get(ReportCycle, w.cycle.id).state == "collecting"


def test_a_post_without_the_late_choice_is_refused_while_dates_are_past(admin_client, office, factory, db):
    """An old tab or a direct request (no 顺延 nor 按原截止日期) must not open late unwarned."""
    today = _late_office(factory, db, office)
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"move_to": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Traceback" not in page
    assert f"有2项任务的截止日期已过（最早为{cn_date_text(today - timedelta(days=20))}）" in page
    assert "顺延截止日期并开始征集" in page and "按原截止日期开始征集" in page  # the choice, offered again
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, office.cycle.id)
    assert cycle.state == "setup" and cycle.opened_at is None and _audit(db, "cycle.open") is None
    # Reopening likewise: the reopen page with the choice and the reason kept, nothing changed.
    assert admin_client.post(f"/admin/cycles/{office.cycle.id}/open", data={"late": "keep"}).status_code == 303
    admin_client.post(f"/admin/cycles/{office.cycle.id}/compile", data={"compile-reason": "先行汇总"})
    response = admin_client.post(f"/admin/cycles/{office.cycle.id}/reopen-collection",
                                 data={"reopen-reason": "补充复议数据"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "截止日期已过" in page and "顺延截止日期并重新征集" in page
    assert "补充复议数据" in page
    db.session.expire_all()
    assert db.session.get(ReportCycle, office.cycle.id).state == "compiling"
    assert _audit(db, "cycle.reopen_collection") is None


def test_a_post_without_the_late_choice_opens_when_no_date_is_past(admin_client, office, factory, db):
    office.cycle.due = local_today() + timedelta(days=10)
    factory.assignment(office.leaf, office.units[0])
    db.session.commit()
    assert admin_client.post(f"/admin/cycles/{office.cycle.id}/open").status_code == 303
    db.session.expire_all()
    assert db.session.get(ReportCycle, office.cycle.id).state == "collecting"
