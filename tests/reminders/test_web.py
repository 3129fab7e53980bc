"""The reminder pages through the Flask test client (login through the real form)."""
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models.reminder import ExtensionRequest, OutboxMessage, Reminder, ReminderPolicy, UserChannelPreference
from fazhi_flow.testing import FreshUserClient


@pytest.fixture()
def web(app, db, factory):
    w = factory.world()
    w.cycle.due = date.today() + timedelta(days=20)
    db.session.commit()
    client = FreshUserClient(app, app.response_class, use_cookies=True)

    def login(user):
        client.post("/logout")
        r = client.post("/login", data={"username": user.username, "password": "secret-Pass1"})
        assert r.status_code == 302
    return w, client, login


def test_policy_editor(web, db):
    w, client, login = web
    login(w.liaison)
    assert client.get(f"/reminders/cycles/{w.cycle.id}/policy").status_code == 403
    login(w.admin)
    page = client.get(f"/reminders/cycles/{w.cycle.id}/policy").get_data(as_text=True)
    assert "5,3,1" in page and "09:00" in page
    bad = client.post(f"/reminders/cycles/{w.cycle.id}/policy", data={
        "enabled": "on", "before_due_days": "5,x", "overdue_every": "2", "overdue_max": "5",
        "escalate_after": "3", "backlog_days": "2", "backlog_max": "3", "send_time": "09:00"})
    assert "不是数字" in bad.get_data(as_text=True) and db.session.scalar(select(ReminderPolicy)) is None
    ok = client.post(f"/reminders/cycles/{w.cycle.id}/policy", data={
        "enabled": "on", "before_due_days": "7，2", "on_due_day": "on", "overdue_every": "3", "overdue_max": "4",
        "escalate_after": "5", "backlog_days": "1", "backlog_max": "2", "send_time": "8:30"})
    assert ok.status_code == 302
    policy = db.session.scalar(select(ReminderPolicy))
    assert (policy.before_due_days, policy.overdue_every, policy.send_time, policy.daily_digest) == ("7,2", 3, "08:30", False)


def test_extension_request_and_decision(web, db):
    w, client, login = web
    login(w.other_liaison)
    assert client.get(f"/reminders/assignments/{w.assignment.id}/extension").status_code == 404
    login(w.liaison)
    page = client.get(f"/reminders/assignments/{w.assignment.id}/extension").get_data(as_text=True)
    assert "个工作日" in page
    new_due = (date.today() + timedelta(days=40)).isoformat()
    r = client.post(f"/reminders/assignments/{w.assignment.id}/extension",
                    data={"requested_due": new_due, "reason": "需等待年度统计数据"})
    assert r.status_code == 302
    req = db.session.scalar(select(ExtensionRequest))
    assert req.status == "pending"
    login(w.admin)
    assert "需等待年度统计数据" in client.get("/reminders/extensions").get_data(as_text=True)
    client.post(f"/reminders/extensions/{req.id}/decide", data={"decision": "grant", "granted_due": new_due})
    db.session.expire_all()
    assert req.status == "granted" and w.assignment.due.isoformat() == new_due


def test_chase_outbox_retry_and_channels(web, db):
    w, client, login = web
    login(w.admin)
    page = client.get(f"/reminders/cycles/{w.cycle.id}/chase").get_data(as_text=True)
    assert "区司法局" in page
    empty = client.post(f"/reminders/cycles/{w.cycle.id}/chase", data={"scope": "units"})
    assert "请选择要催报的单位" in empty.get_data(as_text=True)
    r = client.post(f"/reminders/cycles/{w.cycle.id}/chase",
                    data={"scope": "units", "unit_id": str(w.unit.id), "note": "<b>请尽快</b>"})
    assert r.status_code == 302
    reminder = db.session.scalar(select(Reminder).where(Reminder.kind == "manual"))
    assert reminder.message == "<b>请尽快</b>"
    assert "&lt;b&gt;请尽快" in client.get(f"/reminders/cycles/{w.cycle.id}/chase").get_data(as_text=True)
    msg = db.session.scalar(select(OutboxMessage).where(OutboxMessage.reminder_id == reminder.id))
    msg.status, msg.last_error = "dead", "SMTP 550 No such user"
    db.session.commit()
    outbox = client.get("/reminders/outbox?status=dead").get_data(as_text=True)
    assert "SMTP 550 No such user" in outbox
    client.post(f"/reminders/outbox/{msg.id}/retry")
    db.session.expire_all()
    assert msg.status == "pending"
    login(w.liaison)
    assert client.get("/reminders/outbox").status_code == 403
    client.post("/reminders/my-channels", data={"inapp": "on"})
    pref = db.session.scalar(select(UserChannelPreference))
    assert (pref.user_id, pref.email, pref.inapp) == (w.liaison.id, False, True)


def test_outbox_pages_by_fifty_with_a_status_filter(web, db):
    w, client, login = web
    # 120 messages, numbered in the order written; every third one dead (40 dead).
    for i in range(1, 121):
        db.session.add(OutboxMessage(channel="email", user_id=w.liaison.id, address=f"u{i}@example.test",
                                     subject=f"测试消息{i:03d}号",
                                     body="正文", cause="reminder", status="dead" if i % 3 == 0 else "sent"))
    db.session.commit()
    login(w.admin)

    def subjects(url):
        r = client.get(url)
        assert r.status_code == 200, url
        html = r.get_data(as_text=True)
        return [int(n) for n in re.findall(r"测试消息(\d{3})号", html)], html

    first, html = subjects("/reminders/outbox")
    assert first == list(range(120, 70, -1))  # newest first, 50 per page
    assert "第1页，共3页" in html and "下一页" in html and "上一页" not in html
    second, html = subjects("/reminders/outbox?page=2")
    assert second == list(range(70, 20, -1)) and "上一页" in html and "下一页" in html
    last, html = subjects("/reminders/outbox?page=3")
    assert last == list(range(20, 0, -1)) and "下一页" not in html and "第3页，共3页" in html
    # Malformed or out-of-range pages show the nearest real page; an unknown status shows all.
    for bad, expected in (("abc", first), ("0", first), ("-4", first), ("99", last),
                          ("99999999999999999999", first), ("2.5", first)):
        assert subjects(f"/reminders/outbox?page={bad}")[0] == expected, bad
    assert subjects("/reminders/outbox?status=nonsense&page=2")[0] == second
    # The filter pages too, and the page links keep it.
    dead, html = subjects("/reminders/outbox?status=dead")
    assert dead == list(range(120, 0, -3))[:40] and "第1页" not in html  # 40 dead fit on one page
    assert "发送失败（40）" in html
    for i in range(121, 151):
        db.session.add(OutboxMessage(channel="email", user_id=w.liaison.id, address="x@example.test",
                                     subject=f"测试消息{i:03d}号",
                                     body="正文", cause="reminder", status="dead"))
    db.session.commit()
    dead2, html = subjects("/reminders/outbox?status=dead&page=2")
    assert len(dead2) == 20 and all(n % 3 == 0 and n <= 120 for n in dead2)
    assert "status=dead" in html.split("上一页")[0].rsplit("href=", 1)[1]
    # Retrying from page 2 comes back to page 2 of the same filter.
    target = db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.subject == f"测试消息{dead2[0]:03d}号"))
    r = client.post(f"/reminders/outbox/{target}/retry", data={"status": "dead", "page": "2"})
    assert r.status_code == 302 and "status=dead" in r.location and "page=2" in r.location
