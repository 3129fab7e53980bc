"""Robot failures say whether the message may have arrived: a robot that took the request and did not
answer in time (or dropped the connection) may show it, and a retry may show it twice (robots are
at-least-once); a refused connection, an unknown host or no connection within the timeout sent
nothing. Every text is Chinese, without exception names or errno; the technical text is logged.
Real HTTP endpoints on local sockets."""
from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.notify import DeliveryFailure, PermanentFailure, Unreachable
from fazhi_flow.notify import webhook
from fazhi_flow.reminders.jobs import deliver
from fazhi_flow.services import reminders as rsvc
from fazhi_flow.timeutil import utcnow

from .conftest import free_port

TEXT = "【催报】区司法局《严格规范执法》材料还剩3个工作日截止，请及时填写。"
BODY = webhook.payload("wecom", TEXT)


class Robot:
    """A robot endpoint that records every request it has read in full, then answers ``status`` and
    ``answer`` after ``delay`` seconds, or (``drop``) closes the connection without answering, or
    (``reset``) resets it."""

    def __init__(self):
        self.received: list[dict] = []
        self.delay = 0.0
        self.drop = False
        self.reset = False
        self.status = 200
        self.answer = {"errcode": 0, "errmsg": "ok"}
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                robot.received.append(json.loads(raw.decode("utf-8")))
                if robot.reset:
                    # Linger 0: closing sends a TCP reset instead of an orderly end.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if robot.drop:
                    self.close_connection = True
                    return
                time.sleep(robot.delay)
                data = json.dumps(robot.answer, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(robot.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the sender gave up waiting

            def finish(self):
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass  # the connection was reset on purpose

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=k1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


# What must not reach the admin: exception class names, errno, Python's English texts.
TECHNICAL = re.compile(r"Errno|Error\b|Exception|Disconnected|Refused|Timeout|timed out|nonnumeric|"
                       r"Internal Server|Service Unavailable|Not Found|Forbidden|invalid webhook", re.I)


def assert_for_the_admin(message: str) -> None:
    assert not TECHNICAL.search(message), message
    assert re.search(r"[\u4e00-\u9fff]", message), message


@pytest.fixture()
def robot():
    r = Robot()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_an_answer_too_late_may_have_arrived(robot):
    robot.delay = 1.5
    with pytest.raises(webhook.NoAnswer) as caught:
        webhook.post(robot.url, None, BODY, timeout=0.4)
    message = caught.value.message
    assert message.startswith("连接超时，对方可能已收到") and "无法连接" not in message
    assert "0.4 秒" in message
    assert caught.value.temporary and isinstance(caught.value, Unreachable)
    # It had indeed arrived.
    assert [r["text"]["content"] for r in robot.received] == [TEXT]


def test_a_connection_dropped_after_sending_may_have_arrived(robot):
    robot.drop = True
    with pytest.raises(webhook.NoAnswer) as caught:
        webhook.post(robot.url, None, BODY, timeout=2)
    assert caught.value.message.startswith("连接中断，对方可能已收到")
    assert "对方未应答就关闭了连接" in caught.value.message
    assert_for_the_admin(caught.value.message)
    assert len(robot.received) == 1


def test_a_connection_reset_after_sending_may_have_arrived(robot, caplog):
    robot.reset = True
    with caplog.at_level(logging.INFO, logger="fazhi_flow.notify.webhook"):
        with pytest.raises(webhook.NoAnswer) as caught:
            webhook.post(robot.url, None, BODY, timeout=2)
    message = caught.value.message
    assert message.startswith("连接中断，对方可能已收到") and "连接被对方重置" in message
    assert_for_the_admin(message)
    assert len(robot.received) == 1
    # The technical text stays in the log, with the robot's host and without its key.
    [logged] = [r.getMessage() for r in caplog.records if r.name == "fazhi_flow.notify.webhook"]
    assert "ConnectionResetError" in logged and "127.0.0.1" in logged and "key=k1" not in logged


def test_refused_connection_sent_nothing():
    url = f"http://127.0.0.1:{free_port()}/robot/send?access_token=abc"
    with pytest.raises(Unreachable) as caught:
        webhook.post(url, None, BODY, timeout=2)
    message = caught.value.message
    assert not isinstance(caught.value, webhook.NoAnswer)
    assert message.startswith("无法连接群机器人") and "拒绝连接" in message and "未发出" in message
    assert "可能已收到" not in message and "access_token" not in message
    assert_for_the_admin(message)


def test_refused_connection_is_logged_with_its_errno(caplog):
    url = f"http://127.0.0.1:{free_port()}/robot/send?access_token=abc"
    with caplog.at_level(logging.INFO, logger="fazhi_flow.notify.webhook"):
        with pytest.raises(Unreachable) as caught:
            webhook.post(url, None, BODY, timeout=2)
    assert "Errno" not in caught.value.message
    [logged] = [r.getMessage() for r in caplog.records if r.name == "fazhi_flow.notify.webhook"]
    assert "ConnectionRefusedError" in logged and "Errno" in logged and "access_token" not in logged


def test_unknown_host_sent_nothing():
    with pytest.raises(Unreachable) as caught:
        webhook.post("http://robot.invalid/robot/send?access_token=abc", None, BODY, timeout=2)
    assert "找不到主机 robot.invalid" in caught.value.message
    assert not isinstance(caught.value, webhook.NoAnswer)
    assert_for_the_admin(caught.value.message)


def test_no_connection_within_the_timeout_sent_nothing():
    # A server that never accepts: with its backlog full, further connections wait unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        with pytest.raises(Unreachable) as caught:
            webhook.post(f"http://127.0.0.1:{port}/robot/send", None, BODY, timeout=0.4)
    finally:
        filler.close()
        listener.close()
    message = caught.value.message
    assert not isinstance(caught.value, webhook.NoAnswer)
    assert message.startswith("无法连接群机器人") and "建立连接" in message and "可能已收到" not in message
    assert_for_the_admin(message)


def test_a_malformed_port_is_permanent():
    with pytest.raises(PermanentFailure) as caught:
        webhook.post("http://127.0.0.1:8o8o/robot/send", None, BODY, timeout=1)
    assert "地址格式不对" in caught.value.message
    assert_for_the_admin(caught.value.message)


@pytest.mark.parametrize(("status", "temporary", "said"), [
    (503, True, "群机器人返回 HTTP 503：对方服务暂不可用"),
    (500, True, "群机器人返回 HTTP 500：对方服务器内部错误"),
    (429, True, "群机器人返回 HTTP 429：发送过于频繁"),
    (404, False, "群机器人返回 HTTP 404：地址不存在，请检查群机器人地址"),
    (418, False, "群机器人返回 HTTP 418：请求被拒绝"),
])
def test_an_http_error_is_told_in_words(robot, status, temporary, said):
    robot.status = status
    robot.answer = {"error": "whatever the server says"}
    with pytest.raises(DeliveryFailure) as caught:
        webhook.post(robot.url, None, BODY, timeout=2)
    assert caught.value.message.startswith(said)
    assert caught.value.temporary is temporary
    assert_for_the_admin(caught.value.message)


@pytest.mark.parametrize(("answer", "temporary", "said"), [
    ({"errcode": 93000, "errmsg": "invalid webhook url, hint: [1733029442_55_a5c8], from ip: 10.0.0.8"},
     False, "群机器人返回错误 93000：地址中的机器人密钥无效"),
    ({"errcode": 45009, "errmsg": "api freq out of limit"}, True, "群机器人返回错误 45009：发送过于频繁"),
    ({"errcode": 310000, "errmsg": "keywords not in content"}, False, "群机器人返回错误 310000：群机器人的安全设置拒绝了消息"),
    ({"errcode": 460101, "errmsg": "消息内容超过长度限制"}, False, "群机器人返回错误 460101：对方说明：消息内容超过长度限制"),
])
def test_a_robot_error_code_is_told_in_words(robot, caplog, answer, temporary, said):
    robot.answer = answer
    with caplog.at_level(logging.INFO, logger="fazhi_flow.notify.webhook"):
        with pytest.raises(DeliveryFailure) as caught:
            webhook.post(robot.url, None, BODY, timeout=2)
    assert caught.value.message.startswith(said)
    assert caught.value.temporary is temporary
    assert_for_the_admin(caught.value.message)
    # The robot's own words are in the log for whoever looks into it.
    assert any(answer["errmsg"] in r.getMessage() for r in caplog.records)


def test_delivery_records_the_timeout_honestly_and_may_show_it_twice(factory, db, app, robot):
    """Through the delivery job: the stored error tells the admin the group may already have the
    message, and the retry shows it again (at-least-once)."""
    w = factory.world()
    target = rsvc.add_webhook(w.admin, "司法局工作群", "wecom", robot.url, unit_id=w.unit.id)
    db.session.add(OutboxMessage(channel="webhook", webhook_id=target.id, address=target.name,
                                 subject="材料还剩3个工作日截止", body=TEXT, cause="transition:return",
                                 status="pending", next_attempt_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    saved = app.config.get("WEBHOOK_TIMEOUT")
    app.config["WEBHOOK_TIMEOUT"] = 0.4
    robot.delay = 1.5
    try:
        first = deliver()
        assert first.sent == 0
        db.session.expire_all()
        row = db.session.scalars(select(OutboxMessage)).one()
        db.session.rollback()
        assert row.status == "pending"
        assert "对方可能已收到" in (row.last_error or "") and "无法连接" not in (row.last_error or "")
        robot.delay = 0
        later = datetime.now(timezone.utc)
        for _ in range(20):  # the retry waits its backoff; move on until it is due
            later += timedelta(minutes=5)
            if deliver(later).sent:
                break
    finally:
        app.config["WEBHOOK_TIMEOUT"] = saved
    db.session.expire_all()
    assert db.session.scalars(select(OutboxMessage.status)).one() == "sent"
    assert [r["text"]["content"] for r in robot.received] == [TEXT, TEXT]
