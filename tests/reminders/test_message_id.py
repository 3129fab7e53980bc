"""One Message-ID per outbox row: the same at every sending of the row (a mail client shows a message
sent twice once), another for every other row, database or site; opaque to its recipient (neither
the row id nor the row's creation time can be read from it). Real aiosmtpd server."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, insert, select, update

from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.notify import Unreachable
from fazhi_flow.notify.email import SmtpSender, build_message, outbox_message_id
from fazhi_flow.reminders.jobs import deliver, stale_claim
from fazhi_flow.timeutil import utcnow

MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
# An outbox row's Message-ID: a 128-bit digest and the sender's domain, nothing else.
OPAQUE_ID = re.compile(r"^<([0-9a-f]{32})@([^<>@\s]+)>$")


def assert_opaque(message_id: str, outbox_id: int, created_at: datetime) -> None:
    """Nothing of the row can be read from ``message_id``: only hex digits before the domain, and
    none of the ways the row id or its creation time would be written."""
    found = OPAQUE_ID.match(message_id)
    assert found, message_id
    local = found.group(1)
    for told in (f"outbox.{outbox_id}.", created_at.strftime("%Y%m%d%H%M%S"), created_at.isoformat(),
                 created_at.strftime("%Y%m%d")):
        assert told not in message_id, (told, message_id)
    assert local != format(outbox_id, "032x")


def queue(db, n: int, **values) -> list[int]:
    due = utcnow() - timedelta(minutes=1)
    db.session.execute(insert(OutboxMessage), [
        {"channel": "email", "address": f"lianluoyuan{i}@sfj.example.test", "subject": f"退回通知：第{i}章",
         "body": "您提交的材料已被退回，请修改后重新提交。", "cause": "transition:return", "status": "pending",
         "attempts": 0, "next_attempt_at": due, **values}
        for i in range(n)])
    db.session.commit()
    ids = list(db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    db.session.rollback()  # on SQLite even a read holds the write lock
    return ids


def row(db, outbox_id: int) -> OutboxMessage:
    db.session.expire_all()
    found = db.session.get(OutboxMessage, outbox_id)
    db.session.rollback()
    return found


def later(minutes: int) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def test_a_message_sent_again_after_a_lost_status_update_keeps_its_message_id(app, db, smtp):
    ids = queue(db, 3)
    assert deliver().sent == 3
    first = {int(m["X-Fazhi-Outbox-Id"]): m["Message-ID"] for m in smtp.messages}
    assert set(first) == set(ids) and len(set(first.values())) == 3
    for outbox_id, message_id in first.items():
        assert MESSAGE_ID.match(message_id), message_id
        assert message_id.endswith("@localhost>")  # the sender's domain (MAIL_SENDER)
        created = row(db, outbox_id).created_at
        assert message_id == outbox_message_id(app.config, outbox_id, created)
        assert_opaque(message_id, outbox_id, created)

    # What a deliverer that died after the server's 250 leaves behind: the row still "sending",
    # its claim abandoned. The next run releases and sends it again, under the same Message-ID.
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[1]).values(
        status="sending", claimed_at=utcnow() - stale_claim(app.config) - timedelta(seconds=5)))
    db.session.commit()
    assert deliver().sent == 1
    again = smtp.messages[-1]
    assert int(again["X-Fazhi-Outbox-Id"]) == ids[1] and again["Message-ID"] == first[ids[1]]
    # A client that drops duplicates by Message-ID shows each message once.
    assert len(smtp.messages) == 4 and len({m["Message-ID"] for m in smtp.messages}) == 3


def test_a_retry_after_a_temporary_refusal_keeps_the_message_id(app, db, smtp):
    [outbox_id] = queue(db, 1)
    smtp.handler.data_replies = ["451 4.3.0 Try again later"]
    assert deliver().retried == 1
    created = row(db, outbox_id).created_at
    for minutes in (2, 5, 10, 20):
        if deliver(later(minutes)).sent:
            break
    [msg] = smtp.messages
    assert msg["Message-ID"] == outbox_message_id(app.config, outbox_id, created)


def test_an_id_used_again_by_a_reset_database_gets_another_message_id(app, db, smtp):
    """A database restored from an older backup numbers its new messages again from where the
    backup stood: a new message with an old row id must not look like the old one to a client."""
    [outbox_id] = queue(db, 1, subject="退回通知：旧消息")
    deliver()
    db.session.execute(delete(OutboxMessage))
    db.session.commit()
    db.session.execute(insert(OutboxMessage), [{
        "id": outbox_id, "channel": "email", "address": "lianluoyuan0@sfj.example.test",
        "subject": "退回通知：新消息", "body": "另一份材料已被退回。", "cause": "transition:return",
        "status": "pending", "attempts": 0, "next_attempt_at": utcnow() - timedelta(minutes=1),
        "created_at": utcnow()}])
    db.session.commit()
    deliver()
    old, new = smtp.messages
    assert old["X-Fazhi-Outbox-Id"] == new["X-Fazhi-Outbox-Id"] == str(outbox_id)
    assert old["Message-ID"] != new["Message-ID"]
    assert_opaque(new["Message-ID"], outbox_id, row(db, outbox_id).created_at)


def test_another_site_or_moment_gives_another_message_id():
    created = datetime(2025, 1, 7, 1, 5, 0, 123456)
    site = {"BASE_URL": "https://fazhi.heshan.example.gov.cn", "MAIL_SENDER": "fazhi@heshan.example.gov.cn"}
    one = outbox_message_id(site, 42, created)
    assert one == outbox_message_id(dict(site), 42, created)
    assert one.endswith("@heshan.example.gov.cn>")
    assert_opaque(one, 42, created)
    assert one != outbox_message_id({**site, "BASE_URL": "https://fazhi-test.heshan.example.gov.cn"}, 42, created)
    assert one != outbox_message_id(site, 42, created + timedelta(microseconds=1))
    assert one != outbox_message_id(site, 43, created)
    # Rows written in one statement share their creation time: their ids still differ.
    batch = {outbox_message_id(site, n, created) for n in range(1, 5001)}
    assert len(batch) == 5000
    # Nothing secret goes into it.
    assert "secret" not in outbox_message_id({**site, "SECRET_KEY": "secret-key-value"}, 42, created)
    assert one == outbox_message_id({**site, "SECRET_KEY": "secret-key-value"}, 42, created)


def test_mail_that_is_not_an_outbox_row_gets_a_new_message_id_each_time():
    config = {"MAIL_SENDER": "fazhi@heshan.example.gov.cn"}
    a = build_message(config, "a@example.test", None, "测试邮件", "测试")["Message-ID"]
    b = build_message(config, "a@example.test", None, "测试邮件", "测试")["Message-ID"]
    assert a != b and MESSAGE_ID.match(a)


def test_no_answer_after_the_data_says_the_mail_may_have_arrived(app, db, smtp):
    """The server takes the message and answers too late: the error says it may have arrived (not
    "无法连接"); the message is sent again with the same Message-ID, shown once by the client."""
    handler = smtp.handler
    original = type(handler).handle_DATA
    slow = {"on": True}

    async def handle_data(server, session, envelope):
        answer = await original(handler, server, session, envelope)
        if slow["on"]:
            await asyncio.sleep(2.5)
        return answer

    handler.handle_DATA = handle_data
    [outbox_id] = queue(db, 1)
    saved = app.config["MAIL_TIMEOUT"]
    app.config["MAIL_TIMEOUT"] = 1
    try:
        sender = SmtpSender(app.config)
        msg = build_message(app.config, "lianluoyuan@sfj.example.test", None, "测试", "测试",
                            outbox_id=outbox_id, created_at=row(db, outbox_id).created_at)
        try:
            with pytest.raises(Unreachable) as caught:
                sender.send(msg)
        finally:
            sender.close()
        assert "可能已送达" in caught.value.message and "无法连接" not in caught.value.message
        slow["on"] = False
        deliver()
    finally:
        app.config["MAIL_TIMEOUT"] = saved
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] == smtp.messages[1]["Message-ID"]


def test_a_server_that_is_down_is_still_called_unreachable(app):
    from .conftest import free_port

    sender = SmtpSender({**app.config, "MAIL_HOST": "127.0.0.1", "MAIL_PORT": free_port(), "MAIL_TIMEOUT": 2})
    try:
        with pytest.raises(Unreachable) as caught:
            sender.send(build_message(app.config, "a@example.test", None, "测试", "测试"))
    finally:
        sender.close()
    assert caught.value.message.startswith("无法连接邮件服务器") and "可能已送达" not in caught.value.message


def test_an_admins_retry_of_a_failed_message_keeps_its_message_id(app, db, smtp, factory):
    """An e-mail marked failed may have reached the server before its answer was lost; the admin's
    retry sends the same row again, under the same Message-ID."""
    from fazhi_flow.services import reminders as rsvc

    admin = factory.user("admin", unit=factory.unit("区委依法治区办", kind="party"))
    # A message to a person of the admin's region (an admin retries only those).
    liaison = factory.user("liaison", unit=factory.unit("区司法局", code="sfj"))
    db.session.commit()
    [outbox_id] = queue(db, 1, user_id=liaison.id)
    assert deliver().sent == 1
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(
        status="dead", last_error="邮件服务器无应答或连接中断，邮件可能已送达"))
    db.session.commit()
    rsvc.retry_message(admin, db.session.get(OutboxMessage, outbox_id))
    db.session.commit()
    assert deliver(later(1)).sent == 1
    first, again = smtp.messages
    assert first["X-Fazhi-Outbox-Id"] == again["X-Fazhi-Outbox-Id"] == str(outbox_id)
    assert first["Message-ID"] == again["Message-ID"]
