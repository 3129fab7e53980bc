"""The banner an admin sees while the mail server cannot be reached, in the browser: shown to the admin
on every page (also on a phone, without widening the page), never to a liaison, gone once mail flows."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from fazhi_flow.reminders.jobs import deliver, sweep

T0 = datetime(2025, 1, 7, 9, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
BANNER = ".channel-alert"


class Accept:
    """An SMTP handler that takes every message."""

    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.count += 1
        return "250 OK"


@pytest.fixture()
def mail_port(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there: every connection is refused
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_SECURITY="none", MAIL_USERNAME="")
    yield port
    app.config.update(saved)


def test_banner_for_the_admin_while_mail_fails(factory, db, app, person, mail_port):
    w = factory.world()
    db.session.commit()
    sweep(T0)
    deliver(T0)  # refused: the mail server is recorded as failing, both e-mails wait
    admin = person(w.admin)
    page = admin.login()
    page.goto("/reminders/outbox")
    banner = page.locator(BANNER)
    assert banner.count() == 1
    assert banner.inner_text().startswith("邮件发送异常：自2025年1月7日 09:05起无法连接邮件服务器，2条消息等待发送。")
    banner.locator("a").click()
    page.wait_for_load_state()
    assert page.url.endswith("/reminders/outbox?status=pending")
    # On a phone the banner wraps inside the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard/")
    assert page.locator(BANNER).is_visible()
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth,"
                           " document.querySelector('.channel-alert').getBoundingClientRect().right]")
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths

    liaison = person(w.liaison)
    assert liaison.login().locator(BANNER).count() == 0
    liaison.page.goto("/tasks/")
    assert liaison.page.locator(BANNER).count() == 0

    handler = Accept()
    server = Controller(handler, hostname="127.0.0.1", port=mail_port)
    server.start()
    try:
        assert deliver(T0 + timedelta(minutes=2)).sent == 2 and handler.count == 2
    finally:
        server.stop()
    page.goto("/reminders/outbox")
    assert page.locator(BANNER).count() == 0


def test_robots_at_a_host_that_cannot_be_reached_make_one_banner_line(factory, db, app, person, monkeypatch):
    """Twenty group robots at one host that never completes a connection (a listening socket whose
    backlog is full): one line for all of them, naming the host, also on a phone."""
    from fazhi_flow.models.reminder import WebhookTarget
    from fazhi_flow.notify import outbox as notify_outbox
    from fazhi_flow.notify.messages import Message
    from fazhi_flow.reminders.jobs import as_utc

    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    try:
        w = factory.world()
        for i in range(20):
            target = WebhookTarget(name=f"第{i + 1}工作群", kind="wecom", url=f"http://127.0.0.1:{port}/send?key=k{i}",
                                   cycle_id=w.cycle.id, active=True)
            db.session.add(target)
            db.session.flush()
            notify_outbox.queue_webhook(target, Message(subject="通知", body="通知", short="材料已退回，请修改。",
                                                        link="/tasks/"),
                                        "transition:return", now=as_utc(T0).replace(tzinfo=None))
        db.session.commit()
        deliver(T0)
    finally:
        for c in fillers:
            c.close()
        hole.close()
    admin = person(w.admin)
    page = admin.login()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard/")
    banner = page.locator(BANNER)
    assert banner.count() == 1
    assert banner.inner_text().startswith(f"群机器人发送异常：自2025年1月7日 09:05起20个群机器人无法送达（服务器 127.0.0.1:{port}），"
                                          "20条消息等待发送。")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth,"
                           " document.querySelector('.channel-alert').getBoundingClientRect().right]")
    assert widths[0] <= widths[1] and widths[2] <= widths[1], widths
    banner.locator("a").click()
    page.wait_for_load_state()
    assert page.url.endswith("/reminders/outbox?status=pending")
    assert page.locator("td", has_text="等待渠道恢复").count() == 20
