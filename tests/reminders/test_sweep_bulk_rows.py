"""The rows the bulk sweep writes, column by column, on each database (PostgreSQL writes a batch in
one statement of array parameters): every channel's row is linked to its reminder, carries the
robot's @-mentions and the day the message stops mattering, and goes out through real servers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import event, select

from fazhi_flow.models import Notification
from fazhi_flow.models.reminder import OutboxMessage, Reminder, UserChannelPreference
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.services import reminders as rsvc

from .helpers import at


def test_bulk_rows_carry_every_column_and_deliver(factory, db, smtp, webhook_receiver):
    w = factory.world()  # due Friday 10 January 2025, a draft of 区司法局
    w.liaison.phone = "13800000001"
    quiet = factory.user("liaison", unit=w.unit, name="只看站内的联络员")
    quiet.phone = "13800000002"
    db.session.add(UserChannelPreference(user_id=quiet.id, email=False, inapp=True))
    robot = rsvc.add_webhook(w.admin, "区司法局工作群", "wecom", webhook_receiver.url(), unit_id=w.unit.id)
    db.session.commit()

    seen = []
    listener = lambda *a: seen.append(a[2])  # noqa: E731 - the statement text
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        result = sweep(at(2025, 1, 7, 9, 5))
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert sorted(q.kind for q in result.queued) == ["before_due", "digest"]
    if db.engine.dialect.name == "postgresql":
        # Each batch in one statement (here one batch: the reminder and the digest, which rides in the
        # sweep's last batch).
        assert sum("INSERT INTO reminder" in s for s in seen) == 1
        assert not any(s.startswith("INSERT INTO outbox_message") for s in seen)

    c = w.contribution.id
    reminder = db.session.scalars(select(Reminder).where(Reminder.kind == "before_due")).one()
    assert (reminder.key, reminder.cycle_id, reminder.contribution_id, reminder.occurrence) == (
        f"c{c}:before_due:2025-01-10/3", w.cycle.id, c, "2025-01-10/3")
    assert (reminder.due.isoformat(), reminder.day.isoformat(), reminder.message, reminder.actor_id) == (
        "2025-01-10", "2025-01-07", None, None)
    assert reminder.recipients == 3  # two liaisons (one by both channels) and the unit's robot
    assert reminder.created_at == datetime(2025, 1, 7, 1, 5)  # 09:05 in Shanghai, stored as UTC

    notes = db.session.scalars(select(Notification).where(Notification.user_id.in_([w.liaison.id, quiet.id]))
                               .order_by(Notification.id)).all()
    assert sorted(n.user_id for n in notes) == sorted([w.liaison.id, quiet.id])
    assert all(n.kind == "reminder" and n.read_at is None and n.link.endswith(f"/tasks/{c}") for n in notes)
    assert all("还剩3个工作日" in n.title and "区司法局" in n.title for n in notes)

    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.reminder_id == reminder.id)
                              .order_by(OutboxMessage.id)).all()
    assert [(r.channel, r.user_id, r.webhook_id) for r in rows] == [
        ("email", w.liaison.id, None), ("webhook", None, robot.id)]
    mail, hook = rows
    assert mail.address == w.liaison.email and mail.payload is None
    assert hook.address == "区司法局工作群"
    # Every liaison of the unit is @-mentioned on the robot, the in-app-only one too.
    assert hook.payload == {"mobiles": ["13800000001", "13800000002"]}
    for row in rows:
        assert (row.status, row.attempts, row.cause, row.contribution_id) == ("pending", 0, "reminder", c)
        assert row.next_attempt_at == row.created_at == datetime(2025, 1, 7, 1, 5)
        # A before-due reminder is void after the due day (end of 10 January in Shanghai).
        assert row.expires_at == datetime(2025, 1, 10, 16, 0)
        assert row.claimed_at is None and row.sent_at is None and row.last_error is None
    assert "【催报提醒】" in mail.subject and "2025年1月10日（星期五）" in mail.body
    digest = db.session.scalars(select(Reminder).where(Reminder.kind == "digest")).one()
    digest_mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.reminder_id == digest.id)).one()
    assert (digest_mail.user_id, digest_mail.contribution_id, digest_mail.expires_at) == (w.admin.id, None, None)

    done = deliver(at(2025, 1, 7, 9, 6))
    assert done.sent == 3, done
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.messages) == sorted([w.liaison.email, w.admin.email])
    [posted] = webhook_receiver.requests
    assert posted["json"]["text"]["mentioned_mobile_list"] == ["13800000001", "13800000002"]
    assert "还剩3个工作日" in posted["json"]["text"]["content"]
