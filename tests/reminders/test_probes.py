"""Probes of failing channels on their own schedule, against real servers: a mail server that drops
every connection while down (then aiosmtpd on the same port), a blackholed robot host (a listening
socket whose backlog is full: connections time out), a robot host that takes connections and never
answers, and an SMTP server that closes a reused connection before DATA."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from fazhi_flow.models.reminder import OutboxMessage, WebhookTarget
from fazhi_flow.notify import health as channel_health
from fazhi_flow.notify import outbox as notify_outbox
from fazhi_flow.notify.email import SmtpSender, build_message
from fazhi_flow.notify.messages import Message
from fazhi_flow.reminders import scheduler
from fazhi_flow.reminders.jobs import as_utc, deliver, sweep

from .conftest import RecordingHandler, free_port
from .helpers import at
from .test_outage import banners, health, notices, rows

T0 = at(2025, 1, 7, 9, 5)


@pytest.fixture()
def mail(app):
    from .test_outage import DownMailServer, SmtpServer

    port = free_port()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_SECURITY="none", MAIL_USERNAME="",
                      MAIL_TIMEOUT=3)

    class Mail:
        down = DownMailServer(port)
        up = None

        def recover(self):
            self.down.stop()
            self.up = SmtpServer(port)
            self.up.start()

    m = Mail()
    yield m
    if m.up is not None:
        m.up.stop()
    m.down.stop()
    app.config.update(saved)


def test_the_first_run_after_the_server_returns_delivers_everything(factory, db, app, mail):
    w = factory.world()
    db.session.commit()
    sweep(T0)
    notices(w, 3, T0)
    db.session.commit()
    when = T0
    for _ in range(20):  # ten minutes down, a run every 30 s: one connection per run
        before = mail.down.connections
        assert deliver(when).dead == 0
        assert mail.down.connections - before == 1
        when += timedelta(seconds=30)
    assert all(m.attempts <= 20 for m in rows(db, status="pending"))
    assert [m.attempts for m in rows(db, status="pending")].count(0) == 4  # only the probe spent tries
    mail.recover()
    result = deliver(when)  # one delivery interval after the last failed probe
    assert (result.sent, result.dead) == (5, 0)
    assert rows(db, status="pending") == []
    assert health(db, "email").failing_since is None


def test_probes_follow_their_own_setting(factory, db, app, mail, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOX_PROBE_MAX_SECONDS", 120)
    w = factory.world()
    db.session.commit()
    notices(w, 2, T0)
    db.session.commit()
    per_run = []
    when = T0
    for _ in range(16):
        before = mail.down.connections
        deliver(when)
        per_run.append(mail.down.connections - before)
        when += timedelta(seconds=30)
    # Backoff 60 s, then capped at 120 s: runs 0, 2, 6, 10, 14.
    assert per_run == [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0], per_run


@pytest.mark.parametrize("value", ["0", "86401"])
def test_a_probe_interval_out_of_range_stops_the_start(app, monkeypatch, value):
    from fazhi_flow import create_app

    monkeypatch.setenv("FAZHI_OUTBOX_PROBE_MAX_SECONDS", value)
    with pytest.raises(RuntimeError, match="FAZHI_OUTBOX_PROBE_MAX_SECONDS"):
        create_app("testing")


def test_overnight_a_connection_probe_clears_the_channel(factory, db, app, mail, as_user):
    """Failing overnight with only reminders waiting (they wait for 09:00): the connection alone is
    probed, so the banner goes when the server returns and the 09:00 batch is not held back."""
    w = factory.world()
    db.session.commit()
    sweep(T0)
    deliver(T0)  # the mail server is down: recorded
    evening = at(2025, 1, 8, 6, 0)
    before = mail.down.connections
    result = deliver(evening)  # the reminder is held until 09:00: no message to probe with
    assert result.sent == 0 and mail.down.connections == before + 1  # the connection alone was tried
    assert health(db, "email").failing_since is not None
    mail.recover()
    result = deliver(evening + timedelta(minutes=30))
    assert result.sent == 0 and mail.up.messages == []  # a probe without a message
    row = health(db, "email")
    assert row.failing_since is None and row.last_ok_at is not None
    assert banners(as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)) == []
    result = deliver(at(2025, 1, 8, 9, 0))
    assert result.sent >= 1 and any(m["X-Fazhi-Cause"] == "reminder" for m in mail.up.messages)


class Blackhole:
    """A robot host that never completes a connection: a listening socket whose backlog is full."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        time.sleep(0.1)

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


class Silent:
    """A robot host that takes each connection, counts it, reads the request and never answers."""

    def __init__(self):
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held = []
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
            self.held.append(conn)

    def close(self):
        self.running = False
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


class Robots:
    """Real robot endpoints on ``port``: each ``key`` answered errcode 0, texts recorded."""

    def __init__(self, port: int):
        self.texts: list[str] = []
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                robots.texts.append(json.loads(raw.decode("utf-8"))["text"]["content"])
                data = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def fifty_robots(factory, db, port: int, when) -> tuple:
    """50 group robots at one host, each with one message queued, and one robot elsewhere."""
    w = factory.world()
    targets = [WebhookTarget(name=f"第{i + 1}工作群", kind="wecom", url=f"http://127.0.0.1:{port}/send?key=k{i}",
                             cycle_id=w.cycle.id, active=True) for i in range(50)]
    db.session.add_all(targets)
    db.session.flush()
    utc = as_utc(when).replace(tzinfo=None)
    for t in targets:
        notify_outbox.queue_webhook(t, Message(subject="【退回修改】", body="请修改后重新提交。", short=f"退回修改 {t.name}",
                                               link="/tasks/"), "transition:return", now=utc)
    db.session.commit()
    return w, targets


@pytest.fixture()
def short_robot_timeout(app, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1)


def test_fifty_robots_on_a_blackholed_host_cost_one_timeout_a_run(factory, db, app, short_robot_timeout, as_user):
    hole = Blackhole()
    try:
        w, targets = fifty_robots(factory, db, hole.port, T0)
        key = channel_health.host_key(targets[0].url)
        for run in range(3):
            started = time.monotonic()
            result = deliver(T0 + timedelta(seconds=30 * run))
            elapsed = time.monotonic() - started
            # One connection attempt (1 s) per run, not 50: the host is marked, its robots wait.
            assert elapsed < 2 * app.config["WEBHOOK_TIMEOUT"] + 1.5, elapsed
            assert (result.retried, result.dead, result.sent) == (1, 0, 0), result
            assert health(db, key).failures == run + 1
        assert all(health(db, f"wh:{t.id}") is None for t in targets)
        assert [m.attempts for m in rows(db, channel="webhook")].count(0) == 49
        page = as_user(w.admin).get("/reminders/outbox").get_data(as_text=True)
        assert banners(page) == [f"群机器人发送异常：自2025年1月7日 09:05起50个群机器人无法送达（服务器 127.0.0.1:{hole.port}），"
                                 "50条消息等待发送。"]
        assert f"群机器人服务器 127.0.0.1:{hole.port}（50个群机器人）" in page
        assert page.count("等待渠道恢复") == 50
    finally:
        hole.close()
    # The host returns: the next run sends all 50.
    up = Robots(hole.port)
    try:
        result = deliver(T0 + timedelta(seconds=120))
        assert (result.sent, result.dead) == (50, 0)
        assert sorted(up.texts) == sorted(f"退回修改 {t.name}" for t in targets)
        assert health(db, key).failing_since is None
    finally:
        up.close()


def test_a_host_that_never_answers_gets_one_connection_a_run(factory, db, app, short_robot_timeout):
    silent = Silent()
    try:
        fifty_robots(factory, db, silent.port, T0)
        for run in range(3):
            before = silent.connections
            started = time.monotonic()
            deliver(T0 + timedelta(seconds=30 * run))
            assert time.monotonic() - started < 2 * app.config["WEBHOOK_TIMEOUT"] + 1.5
            time.sleep(0.3)  # let the server count the connection
            assert silent.connections - before == 1
    finally:
        silent.close()


def test_the_probe_phase_is_time_boxed(factory, db, app, short_robot_timeout):
    """Three blackholed hosts, all failing: one run probes at most 2 × WEBHOOK_TIMEOUT worth of them;
    the others come first in the next run."""
    holes = [Blackhole() for _ in range(3)]
    try:
        w = factory.world()
        for i, hole in enumerate(holes):
            t = WebhookTarget(name=f"第{i + 1}群", kind="wecom", url=f"http://127.0.0.1:{hole.port}/send",
                              cycle_id=w.cycle.id, active=True)
            db.session.add(t)
            db.session.flush()
            notify_outbox.queue_webhook(t, Message(subject="通知", body="通知", short="通知", link="/tasks/"),
                                        "transition:return", now=as_utc(T0).replace(tzinfo=None))
        db.session.commit()
        deliver(T0)  # each host found down on its own message (3 timeouts: no host was known yet)
        keys = [channel_health.host_key(f"http://127.0.0.1:{h.port}/") for h in holes]
        assert [health(db, k).failures for k in keys] == [1, 1, 1]
        started = time.monotonic()
        deliver(T0 + timedelta(seconds=30))
        assert time.monotonic() - started < 2 * app.config["WEBHOOK_TIMEOUT"] + 1.5
        first = [health(db, k).failures for k in keys]
        assert sorted(first) == [1, 2, 2]
        deliver(T0 + timedelta(seconds=60))
        second = [health(db, k).failures for k in keys]
        # The host left out comes first now.
        assert second[first.index(1)] == 2
    finally:
        for h in holes:
            h.close()


class CloseAfterOne(RecordingHandler):
    """After one message on a connection, the server answers the next MAIL FROM with 421 (as servers
    limiting messages per connection do): nothing of that message was sent."""

    def __init__(self):
        super().__init__()
        self.sessions: list = []

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if session not in self.sessions:
            self.sessions.append(session)
        if getattr(session, "fazhi_sent", 0) >= 1:
            return "421 4.7.0 Too many messages on this connection, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        session.fazhi_sent = getattr(session, "fazhi_sent", 0) + 1
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture()
def limited_smtp(app):
    handler = CloseAfterOne()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_SECURITY="none", MAIL_USERNAME="")
    yield handler
    controller.stop()
    app.config.update(saved)


def test_a_reused_connection_closed_before_data_is_resent_on_a_new_one(factory, db, app, limited_smtp):
    w = factory.world()
    db.session.commit()
    notices(w, 3, T0)
    db.session.commit()
    result = deliver(T0)
    assert (result.sent, result.retried, result.dead) == (3, 0, 0)
    assert len(limited_smtp.messages) == 3 and len(limited_smtp.sessions) == 3  # each on its own connection
    assert health(db, "email") is None  # never marked down
    assert all(m.attempts == 1 and m.last_error is None for m in rows(db, channel="email"))


def test_an_idle_connection_dropped_by_the_server_is_reopened(app):
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, timeout=0.5)
    controller.start()
    try:
        config = {"MAIL_HOST": "127.0.0.1", "MAIL_PORT": port, "MAIL_TIMEOUT": 3, "MAIL_SENDER": "fz@example.test"}
        sender = SmtpSender(config)
        sender.send(build_message(config, "a@example.test", "甲", "第一封", "正文一"))
        time.sleep(1.5)  # the server's idle timeout closes the connection kept open
        sender.send(build_message(config, "b@example.test", "乙", "第二封", "正文二"))
        sender.close()
    finally:
        controller.stop()
    assert [m["Subject"] for m in handler.messages] == ["第一封", "第二封"]


def test_errors_read_in_chinese_with_the_detail_in_the_log(factory, db, app, smtp, caplog):
    w = factory.world()
    db.session.commit()
    app.config["MAIL_PORT"] = free_port()  # nothing listens: refused
    notices(w, 1, T0)
    db.session.commit()
    with caplog.at_level(logging.INFO):
        deliver(T0)
    [m] = rows(db, channel="email")
    assert m.last_error == "无法连接邮件服务器：连接被拒绝。"
    assert health(db, "email").last_error == "无法连接邮件服务器：连接被拒绝。"
    assert "ConnectionRefusedError" in caplog.text
    # An unexpected error while building a message: a Chinese reason, the traceback in the log.
    db.session.add(OutboxMessage(channel="email", user_id=w.liaison.id, address=w.liaison.email,
                                 subject="第一行\r\nBcc: x@example.test", body="正文", cause="transition:return",
                                 status="pending", next_attempt_at=as_utc(T0).replace(tzinfo=None),
                                 created_at=as_utc(T0).replace(tzinfo=None)))
    db.session.commit()
    app.config["MAIL_PORT"] = smtp.port  # the server is back
    caplog.clear()
    with caplog.at_level(logging.INFO):
        deliver(T0 + timedelta(minutes=1))
    bad = db.session.scalars(select(OutboxMessage).where(OutboxMessage.subject.like("第一行%"))).one()
    assert bad.status == "dead" and bad.last_error == "内部错误（已记入日志）"
    assert "ValueError" in caplog.text
    db.session.rollback()
    assert [m["Subject"] for m in smtp.messages] == ["【退回修改】第1份材料"]  # the other one went out


def test_expired_messages_are_not_counted_as_failed_attempts(factory, db, app, mail):
    w = factory.world()
    db.session.commit()
    notices(w, 2, T0)
    db.session.commit()
    deliver(T0)  # one probe fails
    result = deliver(T0 + timedelta(hours=49))  # both given up by their age, before any attempt
    assert (result.dead, result.expired) == (2, 2)
    summary = scheduler._delivery_summary(result)
    assert summary["failed"] == 0 and summary["expired"] == 2 and summary["dead"] == 2


class RawSmtp:
    """A plain-socket SMTP server that closes the connection at a chosen step without answering:
    ``"MAIL"`` (nothing of the message was sent) or ``"DATA"`` (after the whole message was sent)."""

    def __init__(self, drop_at: str):
        self.drop_at = drop_at
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.bodies: list[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                self._session(conn.makefile("rb"), conn)

    def _session(self, reader, conn):
        conn.sendall(b"220 mail.example.test ESMTP\r\n")
        for line in reader:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 mail.example.test\r\n")
            elif verb == b"MAIL":
                if self.drop_at == "MAIL":
                    return
                conn.sendall(b"250 OK\r\n")
            elif verb == b"RCPT":
                conn.sendall(b"250 OK\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                body = b""
                for data in reader:
                    if data == b".\r\n":
                        break
                    body += data
                self.bodies.append(body)
                return  # the message is in; the answer never comes
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")

    def close(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("drop_at", ["MAIL", "DATA"])
def test_may_have_arrived_only_when_the_message_was_sent(factory, db, app, drop_at, monkeypatch):
    server = RawSmtp(drop_at)
    try:
        for key, value in {"MAIL_HOST": "127.0.0.1", "MAIL_PORT": server.port, "MAIL_SECURITY": "none",
                           "MAIL_USERNAME": "", "MAIL_TIMEOUT": 3}.items():
            monkeypatch.setitem(app.config, key, value)
        w = factory.world()
        db.session.commit()
        notices(w, 1, T0)
        db.session.commit()
        deliver(T0)
    finally:
        server.close()
    [m] = rows(db, channel="email")
    assert m.status == "pending"
    if drop_at == "DATA":
        assert len(server.bodies) == 1
        assert m.last_error == "邮件服务器无应答或连接中断，邮件可能已送达（重发时邮件编号不变）：连接被服务器关闭。"
    else:
        assert server.bodies == []
        assert m.last_error == "无法连接邮件服务器：连接被服务器关闭。"
