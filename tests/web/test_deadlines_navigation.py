"""Deadlines in working days on every page, and every feature reachable from the menus and pages."""
from __future__ import annotations

import re
from datetime import timedelta

from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.services import contributions as svc
from fazhi_flow.services.dashboard import build_dashboard
from fazhi_flow.timeutil import local_today


def _page(response) -> str:
    return response.get_data(as_text=True)


def _working_day_before(day, n):
    """The date n working days before ``day``."""
    cal = WorkCalendar()
    probe = day
    while cal.working_days_between(probe, day) < n:
        probe -= timedelta(days=1)
    return probe


def test_my_tasks_and_editor_count_working_days_left(as_user, world, db):
    today = local_today()
    due = WorkCalendar().add_working_days(today, 3)
    world.assignment.due = due
    db.session.commit()
    client = as_user(world.liaison)
    tasks = _page(client.get("/tasks/"))
    assert "还剩3个工作日" in tasks and "due-ok" in tasks
    assert f"{due.year}年{due.month}月{due.day}日" in tasks
    editor = _page(client.get(f"/tasks/{world.contribution.id}"))
    assert "还剩3个工作日" in editor and "星期" in editor
    assert not re.search(r"还剩\d+天", tasks + editor)


def test_due_today_and_overdue_in_working_days(as_user, world, db):
    today = local_today()
    world.assignment.due = today
    db.session.commit()
    client = as_user(world.liaison)
    assert "今天截止" in _page(client.get("/tasks/"))
    late = _working_day_before(today, 2)
    world.assignment.due = late
    db.session.commit()
    tasks = _page(client.get("/tasks/"))
    assert "已逾期2个工作日" in tasks and "due-overdue" in tasks
    assert not re.search(r"已逾期\d+天", tasks)


def test_submitted_material_shows_the_date_without_a_countdown(as_user, world, db):
    world.assignment.due = local_today() + timedelta(days=20)
    svc.submit_contribution(world.contribution, world.liaison)
    db.session.commit()
    tasks = _page(as_user(world.liaison).get("/tasks/"))
    assert "个工作日" not in tasks
    queue = _page(as_user(world.reviewer).get("/review/"))
    due = world.assignment.due
    assert "截止日期" in queue and f"{due.year}年{due.month}月{due.day}日" in queue


def test_unit_head_queue_counts_working_days(as_user, factory, db):
    w = factory.world(unit_head_review=True)
    w.assignment.due = WorkCalendar().add_working_days(local_today(), 1)
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    queue = _page(as_user(w.unit_head).get("/tasks/unit-queue"))
    assert "还剩1个工作日" in queue and "due-soon" in queue
    review = _page(as_user(w.unit_head).get(f"/tasks/{w.contribution.id}/unit-review"))
    assert "还剩1个工作日" in review


def test_dashboard_marks_overdue_like_the_task_list(as_user, world, db):
    late = _working_day_before(local_today(), 3)
    world.assignment.due = late
    db.session.commit()
    dash = build_dashboard(world.cycle, world.admin)
    cell = dash.rows[0].line[0]
    assert cell.overdue and cell.overdue_label == "已逾期3个工作日"
    page = _page(as_user(world.admin).get(f"/dashboard/?cycle={world.cycle.id}"))
    assert 'title="已逾期3个工作日"' in page
    # The admin's cell opens the material.
    assert f'href="/review/{world.contribution.id}"' in page
    assert "已逾期3个工作日" in _page(as_user(world.liaison).get("/tasks/"))


def test_liaison_menu_links_dashboard_channels_and_extensions(as_user, world, db):
    client = as_user(world.liaison)
    page = _page(client.get("/tasks/"))
    assert 'href="/dashboard/"' in page and "填报进度" in page
    assert 'href="/reminders/my-channels"' in page and "通知设置" in page
    assert 'href="/reminders/my-extensions"' in page
    # To-do count beside 我的任务: one draft in a collecting cycle.
    assert '<span class="count" aria-label="1项待填写或修改">1</span>' in page
    assert "还有 1 份材料需要填写或提交" in page  # the page's own count is not shadowed by the menu's
    # The dashboard shows the liaison's own unit only, and its cell opens the editor.
    dash = _page(client.get("/dashboard/"))
    assert world.unit.name in dash and world.other_unit.name not in dash
    assert f'href="/tasks/{world.contribution.id}"' in dash


def test_editor_links_extension_request(as_user, world, db):
    client = as_user(world.liaison)
    page = _page(client.get(f"/tasks/{world.contribution.id}"))
    url = f"/reminders/assignments/{world.assignment.id}/extension"
    assert f'href="{url}"' in page and "申请延期" in page
    form = _page(client.get(url))
    token_free = client.post(url, data={"requested_due": (local_today() + timedelta(days=30)).isoformat(),
                                        "reason": "数据需要统计局核实"})
    assert token_free.status_code == 302, form
    page = _page(client.get(f"/tasks/{world.contribution.id}"))
    assert "已申请延期至" in page and "等待管理员审批" in page


def test_submitted_material_offers_no_extension(as_user, world, db):
    svc.submit_contribution(world.contribution, world.liaison)
    db.session.commit()
    page = _page(as_user(world.liaison).get(f"/tasks/{world.contribution.id}"))
    assert "申请延期" not in page


def test_unit_head_menu_counts_material_to_approve(as_user, factory, db):
    w = factory.world(unit_head_review=True)
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    page = _page(as_user(w.unit_head).get("/tasks/"))
    assert '<span class="count" aria-label="1份待同意报送">1</span>' in page
    assert 'href="/dashboard/"' in page and 'href="/reminders/my-channels"' in page
    # A unit head is not a liaison: no extension menu.
    assert 'href="/reminders/my-extensions"' not in page


def test_admin_cycle_page_reaches_reminders_figures_compile_and_clone(as_user, world, db):
    page = _page(as_user(world.admin).get(f"/admin/cycles/{world.cycle.id}"))
    cid = world.cycle.id
    for href, label in [
        (f"/reminders/cycles/{cid}/policy", "催报规则"),
        (f"/reminders/cycles/{cid}/chase", "催报"),
        ("/reminders/extensions", "延期申请"),
        ("/reminders/outbox", "待发消息"),
        (f"/figures/cycle/{cid}/definitions", "统计指标和校验规则"),
        (f"/figures/cycle/{cid}/summary", "指标汇总"),
        (f"/figures/cycle/{cid}/summary.xlsx", "下载 Excel"),
        (f"/admin/cycles/new?source={cid}#clone", "复制为新年度"),
    ]:
        assert f'href="{href}"' in page, href
        assert label in page
    # 汇总编辑 becomes a link once the cycle is compiling.
    assert "汇总编辑<span" in page
    world.cycle.state = "compiling"
    db.session.commit()
    page = _page(as_user(world.admin).get(f"/admin/cycles/{cid}"))
    assert f'href="/compile/{cid}"' in page
    # Every linked page opens for the admin.
    for url in (f"/reminders/cycles/{cid}/policy", f"/reminders/cycles/{cid}/chase", "/reminders/extensions",
                "/reminders/outbox", f"/figures/cycle/{cid}/definitions", f"/figures/cycle/{cid}/summary",
                f"/admin/cycles/new?source={cid}", "/reminders/my-channels"):
        assert as_user(world.admin).get(url).status_code == 200, url


def test_admin_sees_pending_extension_count(as_user, world, db):
    from fazhi_flow.services import reminders as reminder_service

    reminder_service.request_extension(world.assignment, world.liaison,
                                       (local_today() + timedelta(days=30)).isoformat(), "材料需要补充")
    db.session.commit()
    page = _page(as_user(world.admin).get(f"/admin/cycles/{world.cycle.id}"))
    assert "1份待审批" in page
    assert 'href="/reminders/extensions"' in _page(as_user(world.admin).get("/admin/cycles"))
