"""Delivery against real servers: aiosmtpd for e-mail, a local HTTP server for group robots."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.errors import DomainError
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.notify.webhook import verify_signature
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.services import reminders as rsvc

from .conftest import SmtpServer, free_port
from .helpers import at

T0 = at(2025, 1, 7, 9, 5)


def outbox(db, **where):
    q = select(OutboxMessage).order_by(OutboxMessage.id)
    for k, v in where.items():
        q = q.where(getattr(OutboxMessage, k) == v)
    return db.session.scalars(q).all()


def world_with_one_mail(factory, db, app):
    """A world where the 7 Jan sweep queues exactly one e-mail (to the liaison)."""
    w = factory.world()
    rsvc.set_channel_preferences(w.admin, email=False, inapp=True)
    db.session.commit()
    sweep(T0)
    rows = outbox(db, channel="email")
    assert len(rows) == 1
    return w, rows[0]


def test_mail_is_delivered_in_chinese_with_headers(factory, db, app, smtp):
    w, row = world_with_one_mail(factory, db, app)
    result = deliver(T0)
    assert (result.sent, result.retried, result.dead) == (1, 0, 0)
    [msg] = smtp.messages
    assert msg["To"].addresses[0].addr_spec == w.liaison.email
    assert "还剩3个工作日" in msg["Subject"] and "区司法局" in msg["Subject"]
    body = msg.get_content()
    assert "严格规范执法" in body and "起草中" in body and f"/tasks/{w.contribution.id}" in body
    assert msg["X-Fazhi-Reminder-Key"] == f"c{w.contribution.id}:before_due:2025-01-10/3"
    db.session.expire_all()
    assert outbox(db)[0].status == "sent"
    # Nothing left to send: a second delivery sends nothing again.
    assert deliver(T0 + timedelta(minutes=5)).sent == 0
    assert len(smtp.messages) == 1


def test_451_is_retried_with_backoff_then_sent(factory, db, app, smtp):
    w, row = world_with_one_mail(factory, db, app)
    smtp.handler.data_replies = ["451 4.3.0 Try again later"]
    result = deliver(T0)
    assert (result.sent, result.retried) == (0, 1)
    db.session.expire_all()
    row = db.session.get(OutboxMessage, row.id)
    assert row.status == "pending" and row.attempts == 1 and "451" in row.last_error
    t0_utc = (T0 - T0.utcoffset()).replace(tzinfo=None)
    assert row.next_attempt_at == t0_utc + timedelta(seconds=60)
    # Not before the backoff has passed ...
    assert deliver(T0 + timedelta(seconds=30)).sent == 0
    assert smtp.messages == []
    # ... then it goes out once.
    assert deliver(T0 + timedelta(seconds=61)).sent == 1
    assert len(smtp.messages) == 1
    db.session.expire_all()
    assert db.session.get(OutboxMessage, row.id).status == "sent"


def test_550_is_dead_with_the_error_and_an_admin_can_retry(factory, db, app, smtp):
    w, row = world_with_one_mail(factory, db, app)
    smtp.handler.rcpt_replies = ["550 5.1.1 No such user"]
    result = deliver(T0)
    assert result.dead == 1
    db.session.expire_all()
    row = db.session.get(OutboxMessage, row.id)
    assert row.status == "dead" and "550" in row.last_error and "No such user" in row.last_error
    assert deliver(T0 + timedelta(hours=2)).sent == 0
    with pytest.raises(DomainError):
        rsvc.retry_message(w.liaison, row)
    rsvc.retry_message(w.admin, row, now=T0 + timedelta(hours=2))
    db.session.commit()
    assert deliver(T0 + timedelta(hours=2)).sent == 1
    assert len(smtp.messages) == 1


def test_server_down_then_up(factory, db, app):
    port = free_port()
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_TIMEOUT=3)
    server = SmtpServer(port)
    try:
        w = factory.world()
        db.session.commit()
        sweep(T0)  # two mails: the liaison's reminder and the admin's digest
        assert len(outbox(db, channel="email")) == 2
        first = deliver(T0)
        # The first mail found the server down and counts a try; the second waits without one.
        assert (first.retried, first.deferred, first.sent) == (1, 1, 0)
        db.session.expire_all()
        assert [m.status for m in outbox(db)] == ["pending", "pending"]
        assert "无法连接" in outbox(db)[0].last_error
        server.start()
        later = deliver(T0 + timedelta(minutes=2))
        assert later.sent == 2
        assert sorted(m["To"].addresses[0].addr_spec for m in server.messages) == sorted(
            [w.liaison.email, w.admin.email])
    finally:
        server.stop()


def test_temporary_failures_never_end_a_message_by_count(factory, db, app, smtp):
    """No count of tries ends a message: a reminder refused with 451 all day keeps waiting with
    capped backoff, and ends only when its stage has passed (the due date)."""
    w, row = world_with_one_mail(factory, db, app)
    smtp.handler.always = "451 4.3.0 Try again later"
    when = T0
    for _ in range(12):
        deliver(when)
        when += timedelta(hours=1)  # past the backoff cap (OUTBOX_RETRY_MAX_SECONDS, 1 hour)
    db.session.expire_all()
    row = db.session.get(OutboxMessage, row.id)
    assert row.status == "pending" and row.attempts == 12 and "451" in row.last_error
    smtp.handler.always = None
    assert deliver(at(2025, 1, 13, 9, 0)).cancelled == 1  # the due date (10 January) has passed
    db.session.expire_all()
    row = db.session.get(OutboxMessage, row.id)
    assert row.status == "cancelled" and "截止日期已过" in row.last_error
    assert smtp.messages == []


def test_submitted_before_delivery_is_cancelled_not_sent(factory, db, app, smtp):
    from fazhi_flow.services import contributions as csvc

    w, row = world_with_one_mail(factory, db, app)
    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    result = deliver(T0 + timedelta(minutes=1))
    assert result.cancelled == 1 and smtp.messages == []
    # The reviewer's "to review" e-mail (queued at the real time of the submit) goes out; no reminder.
    assert deliver().sent == 1
    assert [m["X-Fazhi-Cause"] for m in smtp.messages] == ["transition:submit"]


def test_retries_of_reminders_wait_for_a_working_day(factory, db, app, smtp):
    w = factory.world()
    rsvc.set_channel_preferences(w.admin, email=False, inapp=True)
    db.session.commit()
    sweep(at(2025, 1, 3, 9, 5))  # Friday: "5 working days left"
    [row] = outbox(db, channel="email")
    smtp.handler.data_replies = ["451 later"]
    assert deliver(at(2025, 1, 3, 17, 55)).retried == 1
    result = deliver(at(2025, 1, 4, 10))  # Saturday: held back to Monday 09:00 without a try
    assert result.deferred == 1 and smtp.messages == []
    assert deliver(at(2025, 1, 6, 8, 59)).sent == 0
    assert deliver(at(2025, 1, 6, 9, 0)).sent == 1
    db.session.expire_all()
    row = db.session.get(OutboxMessage, row.id)
    assert row.status == "sent" and row.attempts == 2


def test_stale_reminder_is_not_sent_late(factory, db, app, smtp):
    w, row = world_with_one_mail(factory, db, app)  # "3 working days left" on 7 January
    smtp.handler.always = "451 later"
    deliver(T0)
    smtp.handler.always = None
    # The server is back only after the due date: the before-due mail is stale and cancelled.
    assert deliver(at(2025, 1, 13, 9, 0)).cancelled == 1
    db.session.expire_all()
    assert db.session.get(OutboxMessage, row.id).status == "cancelled"
    assert smtp.messages == []


# A test server without TLS; aiosmtpd warns about that, and about its own deprecated attribute.
@pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning", "ignore::DeprecationWarning")
def test_smtp_login(factory, db, app):
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.login == b"fazhi" and auth_data.password == b"s3cret")

    port = free_port()
    server = SmtpServer(port, authenticator=authenticator, auth_required=True, auth_require_tls=False)
    server.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_USERNAME="", MAIL_PASSWORD="")
    try:
        w, row = world_with_one_mail(factory, db, app)
        assert deliver(T0).dead == 1  # 530 authentication required: permanent until configured
        db.session.expire_all()
        assert "530" in db.session.get(OutboxMessage, row.id).last_error
        app.config.update(MAIL_USERNAME="fazhi", MAIL_PASSWORD="s3cret")
        rsvc.retry_message(w.admin, db.session.get(OutboxMessage, row.id), now=T0)
        db.session.commit()
        assert deliver(T0).sent == 1 and len(server.messages) == 1
    finally:
        server.stop()
        app.config.update(saved)


@pytest.mark.parametrize("kind", ["wecom", "dingtalk"])
def test_webhook_signed_and_retried(factory, db, app, webhook_receiver, kind):
    w = factory.world()
    w.liaison.phone = "13800000001"
    rsvc.add_webhook(w.admin, "司法局工作群", kind, webhook_receiver.url(), secret="SEC-xyz",
                     unit_id=w.unit.id)
    for user in (w.liaison, w.admin):
        rsvc.set_channel_preferences(user, email=False, inapp=True)
    db.session.commit()
    sweep(T0)
    [row] = outbox(db, channel="webhook")
    webhook_receiver.statuses = [(502, {"error": "bad gateway"})]
    assert deliver(T0).retried == 1
    assert deliver(T0 + timedelta(seconds=61)).sent == 1
    [req] = webhook_receiver.requests
    assert req["path"] == "/robot/send" and req["query"]["access_token"] == "abc"
    assert verify_signature("SEC-xyz", req["query"]["timestamp"], req["query"]["sign"])
    assert not verify_signature("other", req["query"]["timestamp"], req["query"]["sign"])
    body = req["json"]
    assert body["msgtype"] == "text" and "区司法局" in body["text"]["content"]
    assert "还剩3个工作日" in body["text"]["content"]
    if kind == "dingtalk":
        assert body["at"]["atMobiles"] == ["13800000001"]
    else:
        assert body["text"]["mentioned_mobile_list"] == ["13800000001"]


def test_webhook_error_code_is_permanent(factory, db, app, webhook_receiver):
    w = factory.world()
    rsvc.add_webhook(w.admin, "群", "dingtalk", webhook_receiver.url(), unit_id=w.unit.id)
    db.session.commit()
    sweep(T0)
    webhook_receiver.statuses = [(200, {"errcode": 310000, "errmsg": "sign not match"})]
    result = deliver(T0)
    db.session.expire_all()
    [row] = outbox(db, channel="webhook")
    assert row.status == "dead" and "310000" in row.last_error
    assert result.dead >= 1


def test_webhook_validation(factory, db):
    w = factory.world()
    with pytest.raises(DomainError, match="http"):
        rsvc.add_webhook(w.admin, "群", "wecom", "ftp://x", unit_id=w.unit.id)
    with pytest.raises(DomainError, match="类型"):
        rsvc.add_webhook(w.admin, "群", "slack", "https://x", unit_id=w.unit.id)
