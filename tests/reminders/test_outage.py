"""Delivery through outages, against real servers: a mail server that drops every connection while
it is down (then a real aiosmtpd server on the same port) and group-robot HTTP endpoints answering
503 while down. Connections are counted on the servers."""
from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from fazhi_flow.models import ChannelHealth
from fazhi_flow.models.reminder import OutboxMessage, ReminderPolicy, WebhookTarget
from fazhi_flow.notify import outbox as notify_outbox
from fazhi_flow.notify.messages import Message
from fazhi_flow.reminders.jobs import as_utc, deliver, sweep
from fazhi_flow.services import reminders as rsvc
from fazhi_flow.testing import count_queries

from .conftest import SmtpServer, free_port
from .helpers import at

T0 = at(2025, 1, 7, 9, 5)  # Tuesday: the liaison's reminder says 还剩3个工作日 (due Friday 10 January)


class DownMailServer:
    """A mail server that is down: it accepts each TCP connection, counts it and closes it at once,
    so the client sees the connection dropped before any greeting."""

    def __init__(self, port: int):
        self.port = port
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


class Robot:
    """A group robot endpoint: while ``down`` every request gets 503; requests are counted, and the
    texts of accepted ones recorded."""

    def __init__(self):
        self.down = False
        self.hits = 0
        self.texts: list[str] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                robot.hits += 1
                if robot.down:
                    status, answer = 503, {"error": "service unavailable"}
                else:
                    status, answer = 200, {"errcode": 0, "errmsg": "ok"}
                    robot.texts.append(json.loads(raw.decode("utf-8"))["text"]["content"])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=k"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def mail(app):
    """The mail server's port, down at first (``.down``); ``.recover()`` starts aiosmtpd on it."""
    port = free_port()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT", "OUTBOX_RETRY_MAX_SECONDS")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_SECURITY="none", MAIL_USERNAME="",
                      MAIL_TIMEOUT=3)

    class Mail:
        down = DownMailServer(port)
        up: SmtpServer | None = None

        def recover(self):
            self.down.stop()
            self.up = SmtpServer(port)
            self.up.start()

        def fail(self):
            self.up.stop()
            self.up = None
            self.down = DownMailServer(port)

    m = Mail()
    yield m
    if m.up is not None:
        m.up.stop()
    m.down.stop()
    app.config.update(saved)
    if saved["OUTBOX_RETRY_MAX_SECONDS"] is None:
        app.config.pop("OUTBOX_RETRY_MAX_SECONDS")


@pytest.fixture()
def robots():
    made = [Robot(), Robot()]
    yield made
    for r in made:
        r.close()


def rows(db, **where):
    db.session.expire_all()
    q = select(OutboxMessage).order_by(OutboxMessage.id)
    for k, v in where.items():
        q = q.where(getattr(OutboxMessage, k) == v)
    found = db.session.scalars(q).all()
    db.session.rollback()
    return found


def health(db, key):
    db.session.expire_all()
    row = db.session.get(ChannelHealth, key)
    db.session.rollback()
    return row


def notices(w, n: int, now):
    """``n`` e-mails that are not reminders (returned material), queued at ``now``."""
    utc = as_utc(now).replace(tzinfo=None)
    for i in range(n):
        notify_outbox.queue_email(w.liaison, Message(subject=f"【退回修改】第{i + 1}份材料", body="请根据意见修改后重新提交。",
                                                     short="退回修改", link="/tasks/"),
                                  "transition:return", contribution=w.contribution, now=utc)


def banners(page: str) -> list[str]:
    return [re.sub(r"\s*<a .*", "", b) for b in re.findall(r'<p class="notice bad channel-alert"[^>]*>(.*?)</p>', page)]


def outage_world(factory, db, robots):
    w = factory.world()
    w.liaison.phone = "13800000001"
    # The unit's robot will be down; the cycle's robot stays up (a robot's outage is its own).
    rsvc.add_webhook(w.admin, "司法局工作群", "wecom", robots[0].url, unit_id=w.unit.id)
    rsvc.add_webhook(w.admin, "报告编写群", "wecom", robots[1].url, cycle_id=w.cycle.id)
    db.session.commit()
    return w


def test_hours_of_outage_then_everything_relevant_goes_out_in_the_first_run_back(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    robots[0].down = True
    sweep(T0)  # the liaison's reminder and the admin's digest by e-mail, the reminder to both robots
    notices(w, 5, T0)
    db.session.commit()
    mails = rows(db, channel="email")
    assert len(mails) == 7
    robot_ids = {r.webhook_id for r in rows(db, channel="webhook")}
    assert len(robot_ids) == 2

    when = T0
    smtp_per_run, robot_per_run = [], []
    while when < at(2025, 1, 7, 14, 5):  # five hours: a run every 30 s (the default), later every 10 min
        before = (mail.down.connections, robots[0].hits)
        result = deliver(when)
        assert result.dead == 0
        smtp_per_run.append(mail.down.connections - before[0])
        robot_per_run.append(robots[0].hits - before[1])
        when += timedelta(seconds=30 if when < T0 + timedelta(minutes=15) else 600)
    # Probes keep their own schedule (OUTBOX_PROBE_MAX_SECONDS, 30 s): one connection per channel
    # in every run, however long the outage, while the messages' tries are not spent.
    assert smtp_per_run == [1] * len(smtp_per_run) and len(smtp_per_run) > 50
    assert robot_per_run == smtp_per_run  # the unit's robot is probed the same way, on its own
    # The cycle's robot was up all along and got its message in the first run.
    assert len(robots[1].texts) == 1

    waiting = rows(db, status="pending")
    assert len(waiting) == 8  # 7 e-mails and the down robot's message; nothing dead, nothing cancelled
    probe = waiting[0]
    assert probe.channel == "email" and probe.attempts == sum(smtp_per_run) and probe.cause == "reminder"
    assert all(m.attempts == 0 for m in waiting[1:] if m.channel == "email")  # never tried: no try used
    email_health = health(db, "email")
    assert email_health.failing_since == (T0 - timedelta(hours=8)).replace(tzinfo=None)
    assert email_health.failures == sum(smtp_per_run) and "无法连接邮件服务器" in email_health.last_error
    assert health(db, "wh:" + str(min(robot_ids))).failing_since is not None

    # The servers come back; the first run after (one delivery interval later) sends everything
    # still relevant.
    mail.recover()
    robots[0].down = False
    result = deliver(when - timedelta(seconds=600) + timedelta(seconds=30))
    assert (result.sent, result.dead, result.cancelled) == (8, 0, 0)
    assert rows(db, status="pending") == []
    received = Counter(m["X-Fazhi-Outbox-Id"] for m in mail.up.messages)
    assert sorted(int(i) for i in received) == sorted(m.id for m in mails) and max(received.values()) == 1
    assert len(robots[0].texts) == 1 and "还剩3个工作日" in robots[0].texts[0]
    assert health(db, "email").failing_since is None and health(db, "email").last_ok_at is not None
    assert all(health(db, f"wh:{i}") is None or health(db, f"wh:{i}").failing_since is None for i in robot_ids)


def test_text_is_written_at_delivery_and_the_next_digest_replaces_the_old(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    robots[0].down = True
    sweep(T0)
    [reminder_mail] = rows(db, channel="email", cause="reminder", contribution_id=w.contribution.id)
    assert "还剩3个工作日" in reminder_mail.subject  # as queued on Tuesday
    deliver(T0)
    # Overnight outage; on Wednesday the sweep queues the new digest, no new reminder (2 days left).
    wednesday = at(2025, 1, 8, 9, 5)
    sweep(wednesday)
    deliver(wednesday)
    mail.recover()
    robots[0].down = False
    result = deliver(wednesday + timedelta(minutes=10))
    assert result.dead == 0
    subjects = [m["Subject"] for m in mail.up.messages]
    [reminder] = [s for s in subjects if s.startswith("【催报提醒】")]
    assert "还剩2个工作日" in reminder and "还剩3个工作日" not in reminder
    body = next(m for m in mail.up.messages if m["Subject"] == reminder).get_content()
    assert "还剩2个工作日" in body and "2025年1月10日" in body
    assert len(robots[0].texts) == 1 and "还剩2个工作日" in robots[0].texts[0]
    # One digest arrives, Wednesday's; Tuesday's was cancelled as replaced.
    digests = [s for s in subjects if s.startswith("【每日进度】")]
    assert len(digests) == 1 and "2025年1月8日" in digests[0]
    old = [m for m in rows(db, status="cancelled") if m.subject.startswith("【每日进度】")]
    assert len(old) == 1 and "已有更新的每日进度汇总" in old[0].last_error
    # The outbox keeps what was sent.
    sent = rows(db, id=reminder_mail.id)[0]
    assert sent.status == "sent" and "还剩2个工作日" in sent.subject


def test_a_newer_reminder_replaces_one_still_waiting(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    sweep(T0)
    deliver(T0)
    # Down until Friday 10 January 09:05, the due day: that day's own reminder is queued, and the
    # Tuesday one, now void (a newer reminder to the same people), is cancelled.
    friday = at(2025, 1, 10, 9, 5)
    sweep(friday)
    mail.recover()
    deliver(friday)
    reminders = [m["Subject"] for m in mail.up.messages if m["Subject"].startswith("【催报提醒】")]
    assert reminders == [f"【催报提醒】“{w.section.path_label}”材料今天截止（区司法局）"]
    tuesday = [m for m in rows(db, cause="reminder", channel="email") if "还剩3个工作日" in m.subject]
    assert len(tuesday) == 1 and tuesday[0].status == "cancelled" and "已有更新的提醒" in tuesday[0].last_error


def test_a_held_reminder_gives_way_to_the_days_own_when_delivery_runs_before_the_sweep(factory, db, app, mail,
                                                                                       robots):
    """Down from Tuesday to the due day; the servers are back when Friday's first delivery runs, before
    Friday's sweep: the held Tuesday reminder (which would now read 今天截止) is not sent, the day's own
    reminder queued minutes later is, so the unit is told once that day, not twice."""
    w = outage_world(factory, db, robots)
    sweep(T0)
    deliver(T0)
    mail.recover()
    deliver(at(2025, 1, 10, 9, 0))  # Friday 09:00: the deliverer runs first; the held reminder waits
    assert not [m for m in mail.up.messages if m["Subject"].startswith("【催报提醒】")]
    tuesday = [m for m in rows(db, cause="reminder", channel="email") if "还剩3个工作日" in m.subject]
    assert len(tuesday) == 1 and tuesday[0].status == "pending" and tuesday[0].attempts <= 1
    assert [q.kind for q in sweep(at(2025, 1, 10, 9, 4)).queued if q.kind != "digest"] == ["due_today"]
    deliver(at(2025, 1, 10, 9, 5))
    tuesday = [m for m in rows(db, cause="reminder", channel="email") if "还剩3个工作日" in m.subject]
    assert tuesday[0].status == "cancelled" and "已有更新的提醒" in tuesday[0].last_error
    reminders = [m["Subject"] for m in mail.up.messages if m["Subject"].startswith("【催报提醒】")]
    assert reminders == [f"【催报提醒】“{w.section.path_label}”材料今天截止（区司法局）"]
    # The robots likewise: the unit's group hears of it once.
    assert sum("今天截止" in t for t in robots[0].texts) == 1


def test_a_held_reminder_of_a_cycle_no_longer_collecting_does_not_wait_for_a_sweep(factory, db, app, mail,
                                                                                  robots):
    """No sweep queues reminders for a cycle that stopped collecting (汇总 forced with material missing):
    a held reminder does not wait for the day's own, which will never come; material no longer
    changes, so it is void and says why."""
    w = outage_world(factory, db, robots)
    sweep(T0)
    deliver(T0)
    w.cycle.state = "compiling"
    db.session.commit()
    mail.recover()
    deliver(at(2025, 1, 10, 9, 0))
    [held] = rows(db, cause="reminder", channel="email", contribution_id=w.contribution.id)
    assert held.status == "cancelled" and "停止征集" in held.last_error
    assert not [m for m in mail.up.messages if m["Subject"].startswith("【催报提醒】")]


def test_a_reminder_delayed_to_its_due_day_says_today(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    db.session.add(ReminderPolicy(cycle_id=w.cycle.id, before_due_days="3", on_due_day=False))
    db.session.commit()
    sweep(T0)
    deliver(T0)
    friday = at(2025, 1, 10, 9, 5)
    assert [q.kind for q in sweep(friday).queued] == ["digest"]  # no reminder of its own that day
    mail.recover()
    deliver(friday)
    reminders = [m for m in mail.up.messages if m["Subject"].startswith("【催报提醒】")]
    assert [m["Subject"] for m in reminders] == [f"【催报提醒】“{w.section.path_label}”材料今天截止（区司法局）"]
    assert "今天是截止日期" in reminders[0].get_content()


def test_messages_expire_by_age_or_relevance_never_by_tries(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    sweep(T0)
    notices(w, 2, T0)
    db.session.commit()
    when = T0
    while when < T0 + timedelta(hours=47):
        result = deliver(when)
        assert result.dead == 0
        when += timedelta(hours=1)
    # Tuesday's digest ended with its day; nothing else did.
    [digest] = rows(db, status="cancelled")
    assert digest.subject.startswith("【每日进度】") and "当天未能发出" in digest.last_error
    # 48 hours after queuing, the notices are given up with a clear reason; the reminder is still
    # relevant (due Friday 10 January) and waits on.
    result = deliver(T0 + timedelta(hours=48, minutes=1))
    assert result.dead == 2
    dead = rows(db, status="dead")
    assert [m.cause for m in dead] == ["transition:return"] * 2
    assert all(m.last_error.startswith("已过期：48小时内未能发出") and "无法连接邮件服务器" in m.last_error
               for m in dead if m.attempts) and all("已过期" in m.last_error for m in dead)
    reminder = rows(db, cause="reminder", contribution_id=w.contribution.id, channel="email")[0]
    assert reminder.status == "pending"
    # After the due date the reminder's stage has passed: cancelled, never dead by its tries.
    result = deliver(at(2025, 1, 13, 9, 30))
    reminder = rows(db, id=reminder.id)[0]
    assert reminder.status == "cancelled" and reminder.last_error.startswith("已过时")
    assert mail.down.connections >= 1 and [m.id for m in rows(db, status="dead")] == [m.id for m in dead]


def test_banner_for_admins_only_while_a_channel_fails(factory, db, app, mail, robots, as_user):
    w = outage_world(factory, db, robots)
    sweep(T0)
    deliver(T0)
    text = "邮件发送异常：自2025年1月7日 09:05起无法连接邮件服务器，2条消息等待发送。"
    page = as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)
    assert banners(page) == [text] and 'href="/reminders/outbox?status=pending"' in page
    client = as_user(w.liaison)
    client.get("/tasks/")
    with count_queries(db.engine) as statements:
        page = client.get("/tasks/").get_data(as_text=True)
    assert "发送异常" not in page
    assert not [s for s in statements if "channel_health" in s]  # no query for other users
    assert "发送异常" not in as_user(w.reviewer).get("/", follow_redirects=True).get_data(as_text=True)
    mail.recover()
    deliver(T0 + timedelta(minutes=5))
    assert banners(as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)) == []


def test_banner_names_a_failing_robot(factory, db, app, mail, robots, as_user):
    w = outage_world(factory, db, robots)
    mail.recover()
    robots[0].down = True
    sweep(T0)
    deliver(T0)
    page = as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)
    assert banners(page) == ["群机器人发送异常：自2025年1月7日 09:05起无法送达群机器人“司法局工作群”，1条消息等待发送。"]


def test_digest_counts_the_messages_that_died(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    mail.recover()
    sweep(T0)
    mail.up.handler.rcpt_replies = ["550 5.1.1 No such user"]  # the first e-mail is refused for good
    deliver(T0)
    assert len(rows(db, status="dead")) == 1
    # Two more die by age while the server is down overnight.
    mail.fail()
    notices(w, 2, T0)
    db.session.commit()
    deliver(T0 + timedelta(hours=48, minutes=1))
    sweep(at(2025, 1, 9, 9, 30))
    digest = [m for m in rows(db, channel="email") if m.subject.startswith("【每日进度】") and "1月9日" in m.subject]
    assert len(digest) == 1
    assert "自上次汇总以来本地区有3条消息发送失败或超时未能发出" in digest[0].body
    assert "/reminders/outbox?status=dead" in digest[0].body
    # That digest never went out (the server is down): the next one counts from the last one sent.
    deliver(at(2025, 1, 9, 9, 31))
    sweep(at(2025, 1, 10, 9, 5))
    digest = [m for m in rows(db, channel="email") if m.subject.startswith("【每日进度】") and "1月10日" in m.subject]
    assert "自上次汇总以来本地区有3条消息发送失败" in digest[0].body
    mail.recover()
    deliver(at(2025, 1, 10, 9, 6))
    assert [m["Subject"] for m in mail.up.messages if m["Subject"].startswith("【每日进度】")] == [digest[0].subject]
    # The next digest counts from this one, which was sent.
    sweep(at(2025, 1, 13, 9, 5))
    digest = [m for m in rows(db, channel="email") if m.subject.startswith("【每日进度】") and "1月13日" in m.subject]
    assert len(digest) == 1 and "发送失败" not in digest[0].body


def test_retry_all_refuses_stale_reminders(factory, db, app, mail, robots, as_user):
    """The issue's case: on 6 January a "还剩5个工作日" for a due date of 1 January must not go out."""
    w = outage_world(factory, db, robots)
    w.assignment.due = date(2025, 1, 1)
    db.session.commit()
    mail.recover()
    sweep(at(2024, 12, 24, 9, 5))
    [stale] = rows(db, cause="reminder", channel="email", contribution_id=w.contribution.id)
    assert "还剩5个工作日" in stale.subject
    notices(w, 1, at(2025, 1, 6, 9, 0))
    db.session.commit()
    mail.up.handler.rcpt_replies = ["550 5.7.1 Mailbox disabled"] * 3
    deliver(at(2024, 12, 24, 9, 10))
    deliver(at(2025, 1, 6, 9, 1))
    dead = {m.id for m in rows(db, status="dead")}
    assert stale.id in dead and len(dead) == 3  # the reminder, the digest and the notice
    requeued, cancelled = rsvc.retry_all_dead(w.admin, now=at(2025, 1, 6, 9, 30))
    db.session.commit()
    assert (requeued, cancelled) == (1, 2)
    now_rows = {m.id: m for m in rows(db)}
    assert now_rows[stale.id].status == "cancelled" and now_rows[stale.id].last_error.startswith("已过时")
    assert now_rows[stale.id].expires_at is not None  # the expiry is kept
    result = deliver(at(2025, 1, 6, 9, 31))
    assert result.sent == 1 and mail.up.messages[-1]["Subject"] == "【退回修改】第1份材料"
    assert not [m for m in mail.up.messages if "还剩5个工作日" in m["Subject"]]


def test_retry_in_the_outbox_page_shows_why_a_message_is_not_sent(factory, db, app, mail, robots, as_user):
    w = outage_world(factory, db, robots)
    mail.recover()
    sweep(T0)
    mail.up.handler.rcpt_replies = ["550 5.7.1 Mailbox disabled"] * 2
    deliver(T0)
    client = as_user(w.admin)
    page = client.post("/reminders/outbox/retry-dead", follow_redirects=True).get_data(as_text=True)
    # Checked at the real date (long after January 2025): the due date and the digest's day are
    # over; neither goes out, and the page says why.
    assert "2条消息已不再适用" in page and "重新加入待发消息" not in page
    assert "已过时：截止日期已过，不再发送该提醒。" in page and "已过时：这是1月7日的每日进度汇总" in page
    assert {m.status for m in rows(db, cause="reminder", channel="email")} == {"cancelled"}


def test_retry_rechecks_each_message_and_sends_the_current_text(factory, db, app, mail, robots):
    w = outage_world(factory, db, robots)
    other = factory.contribution(factory.assignment(factory.section(w.cycle, "推进行政复议"), w.other_unit))
    db.session.commit()
    mail.recover()
    sweep(T0)  # two reminders (one per unit) and the digest
    mail.up.handler.rcpt_replies = ["550 5.7.1 Mailbox disabled"] * 3
    deliver(T0)
    assert len(rows(db, status="dead")) == 3
    from fazhi_flow.services import contributions as csvc

    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    wednesday = at(2025, 1, 8, 10, 0)
    assert rsvc.retry_all_dead(w.admin, now=wednesday) == (1, 2)
    db.session.commit()
    by_id = {m.id: m for m in rows(db, cause="reminder", channel="email")}
    reasons = sorted(m.last_error for m in by_id.values() if m.status == "cancelled")
    assert reasons[0].startswith("已过时：这是1月7日的每日进度汇总")
    assert reasons[1].startswith("材料已提交（") and reasons[1].endswith("无需再催报。")
    [again] = [m for m in by_id.values() if m.status == "pending"]
    assert again.contribution_id == other.id and again.attempts == 0
    result = deliver(wednesday + timedelta(minutes=1))
    reminders = [m for m in mail.up.messages if m["X-Fazhi-Cause"] == "reminder"]
    assert result.sent == 1 and len(reminders) == 1
    assert reminders[0]["Subject"] == "【催报提醒】“二、推进行政复议”材料还剩2个工作日截止（区市场监管局）"


def test_outbox_page_lists_the_failing_channels(factory, db, app, mail, robots, as_user):
    w = outage_world(factory, db, robots)
    robots[0].down = True
    sweep(T0)
    deliver(T0)
    page = as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)
    table = page[page.index("<h2>发送渠道故障</h2>"):]
    table = table[:table.index("</table>")]
    assert "<td>邮件服务器</td><td>2025年1月7日 09:05</td><td>2条</td>" in table
    # The next probe: 30 s on (OUTBOX_PROBE_MAX_SECONDS), at the next delivery run.
    assert re.search(r"无法连接邮件服务器[^<]*</td>\s*<td>2025年1月7日 09:05</td>", table)
    assert "<td>群机器人“司法局工作群”</td>" in table and "HTTP 503" in table
    assert "报告编写群" not in table
    # The messages waiting for a failing channel say so instead of a moment already past.
    listed = page[page.index("<th>编号</th>"):]
    assert listed.count("等待渠道恢复") == 3  # two e-mails and the unit robot's message


def test_the_age_limit_is_a_setting(factory, db, app, mail, robots, monkeypatch):
    w = outage_world(factory, db, robots)
    monkeypatch.setitem(app.config, "OUTBOX_MAX_AGE_HOURS", 6)
    notices(w, 1, T0)
    db.session.commit()
    assert deliver(T0 + timedelta(hours=5, minutes=59)).dead == 0
    assert deliver(T0 + timedelta(hours=6)).dead == 1
    [dead] = rows(db, status="dead")
    assert dead.last_error.startswith("已过期：6小时内未能发出，不再发送。（最后一次错误：无法连接邮件服务器")


@pytest.mark.parametrize("value", ["0", "721"])
def test_an_age_limit_out_of_range_stops_the_start(app, monkeypatch, value):
    from fazhi_flow import create_app

    monkeypatch.setenv("FAZHI_OUTBOX_MAX_AGE_HOURS", value)
    with pytest.raises(RuntimeError, match="FAZHI_OUTBOX_MAX_AGE_HOURS"):
        create_app("testing")


def test_a_removed_robot_leaves_the_banner_and_its_messages_end(factory, db, app, mail, robots, as_user):
    w = outage_world(factory, db, robots)
    mail.recover()
    robots[0].down = True
    sweep(T0)
    deliver(T0)
    target = db.session.get(WebhookTarget, rows(db, channel="webhook", status="pending")[0].webhook_id)
    rsvc.remove_webhook(w.admin, target)
    db.session.commit()
    assert banners(as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)) == []
    deliver(T0 + timedelta(minutes=2))  # the probe finds the robot removed: its message is dead
    [dead] = rows(db, channel="webhook", status="dead")
    assert dead.last_error == "群机器人已删除或停用。" and robots[0].hits == 1


def test_two_deliverers_probe_a_failing_channel_once(factory, db, app, mail, robots):
    """Two scheduler processes running at the same moment: the probe is reserved by one of them."""
    w = outage_world(factory, db, robots)
    sweep(T0)
    notices(w, 5, T0)
    db.session.commit()
    deliver(T0)
    assert mail.down.connections == 1
    db.session.remove()
    barrier = threading.Barrier(2, timeout=30)
    results = []

    def run():
        with app.app_context():
            try:
                barrier.wait()
                results.append(deliver(T0 + timedelta(minutes=5)))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert mail.down.connections == 2  # one probe between the two
    assert sum(r.retried for r in results) == 1 and sum(r.dead for r in results) == 0
    assert health(db, "email").failures == 2


def test_other_messages_arrive_with_todays_countdown_and_state(factory, db, app, mail, robots):
    """A notice that is not a reminder (here: material returned) keeps its text, but its lines about
    the present (the countdown, the current state) are as on the day it arrives."""
    from fazhi_flow.notify import messages as M
    from fazhi_flow.workdays import due_status

    w = outage_world(factory, db, robots)
    w.contribution.state = "returned"
    status = due_status(w.contribution, today=date(2025, 1, 7))
    body = "\n".join(["您好：", "", "您单位报送的材料被审核人退回修改，请根据意见修改后重新提交审核。", "",
                      M._facts(w.contribution, status), "", "意见：请补充数据。"])
    assert "截止日期：2025年1月10日（星期五），还剩3个工作日" in body and "当前状态：已退回" in body
    notify_outbox.queue_email(w.liaison, Message(subject="【退回修改】区司法局“严格规范执法”", body=body,
                                                 short="退回修改", link="/tasks/"),
                              "transition:return", contribution=w.contribution,
                              now=as_utc(T0).replace(tzinfo=None))
    db.session.commit()
    deliver(T0)  # the mail server is down
    mail.recover()
    deliver(at(2025, 1, 8, 10, 0))
    [msg] = mail.up.messages
    text = msg.get_content()
    assert "截止日期：2025年1月10日（星期五），还剩2个工作日" in text and "还剩3个工作日" not in text
    assert "意见：请补充数据。" in text and "当前状态：已退回" in text
    # Submitted in between: the countdown is dropped and the state is today's.
    from fazhi_flow.services import contributions as csvc

    mail.fail()
    notify_outbox.queue_email(w.liaison, Message(subject="【退回修改】第二次", body=body, short="退回修改", link="/tasks/"),
                              "transition:return", contribution=w.contribution,
                              now=as_utc(at(2025, 1, 8, 11, 0)).replace(tzinfo=None))
    db.session.commit()
    deliver(at(2025, 1, 8, 11, 0))
    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    mail.recover()
    deliver(at(2025, 1, 8, 12, 0))
    second = [m for m in mail.up.messages if m["Subject"] == "【退回修改】第二次"][0].get_content()
    assert "截止日期：2025年1月10日（星期五）\n" in second and "当前状态：待审核" in second
