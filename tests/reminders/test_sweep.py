"""The sweep against the database: exactly once, stops on submission, follows extensions."""
from datetime import date

import pytest
from sqlalchemy import func, select

from fazhi_flow.errors import DomainError, PermissionDenied
from fazhi_flow.models import Notification
from fazhi_flow.models.reminder import ExtensionRequest, OutboxMessage, Reminder
from fazhi_flow.reminders.jobs import sweep
from fazhi_flow.services import contributions as csvc
from fazhi_flow.services import reminders as rsvc

from .helpers import at


def keys(db):
    return sorted(db.session.scalars(select(Reminder.key)))


def count(db, model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_sweep_queues_once_with_messages_by_each_channel(factory, db):
    w = factory.world()  # due 2025-01-10, a draft
    db.session.commit()
    result = sweep(at(2025, 1, 7, 9, 5))
    assert [q.kind for q in result.queued] == ["before_due", "digest"]
    c = w.contribution.id
    assert keys(db) == [f"c{c}:before_due:2025-01-10/3", f"cycle{w.cycle.id}:digest:2025-01-07"]
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.cause == "reminder")).all()
    assert sorted(m.address for m in mails) == sorted([w.liaison.email, w.admin.email])
    liaison_mail = next(m for m in mails if m.user_id == w.liaison.id)
    assert "区司法局" in liaison_mail.subject and "还剩3个工作日" in liaison_mail.subject
    assert "严格规范执法" in liaison_mail.body and "2025年1月10日（星期五）" in liaison_mail.body
    assert "起草中" in liaison_mail.body and f"/tasks/{c}" in liaison_mail.body
    assert count(db, Notification, Notification.user_id == w.liaison.id, Notification.kind == "reminder") == 1

    # Again the same moment, later that day, and after a "restart": nothing new.
    assert sweep(at(2025, 1, 7, 9, 5)).queued == []
    assert sweep(at(2025, 1, 7, 16, 0)).queued == []
    assert count(db, OutboxMessage) == 2
    assert count(db, Notification) == 2


def test_dry_run_writes_nothing(factory, db):
    factory.world()
    db.session.commit()
    result = sweep(at(2025, 1, 7, 9), dry_run=True)
    assert len(result.queued) == 2
    assert count(db, Reminder) == 0 and count(db, OutboxMessage) == 0 and count(db, Notification) == 0


def test_reminders_stop_once_submitted(factory, db):
    w = factory.world()
    db.session.commit()
    sweep(at(2025, 1, 7, 9))
    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    sweep(at(2025, 1, 9, 9))
    sweep(at(2025, 1, 14, 9))
    kinds = db.session.scalars(select(Reminder.kind).where(Reminder.contribution_id == w.contribution.id)).all()
    assert kinds == ["before_due"]


def test_extension_granted_moves_the_series(factory, db):
    w = factory.world()
    db.session.commit()
    sweep(at(2025, 1, 13, 9))  # overdue
    req = rsvc.request_extension(w.assignment, w.liaison, "2025-01-20", "数据需等待统计局核对", today=date(2025, 1, 13))
    db.session.commit()
    # The admins are told in-app and by e-mail.
    assert count(db, OutboxMessage, OutboxMessage.cause == "extension:requested") == 1
    with pytest.raises(DomainError, match="已有待审批"):
        rsvc.request_extension(w.assignment, w.liaison, "2025-01-21", "再延", today=date(2025, 1, 13))
    with pytest.raises(PermissionDenied):
        rsvc.decide_extension(req, w.liaison, grant=True)
    rsvc.decide_extension(req, w.admin, grant=True, comment="同意")
    db.session.commit()
    assert w.assignment.effective_due() == date(2025, 1, 20)
    assert req.status == "granted" and req.granted_due == date(2025, 1, 20)
    sweep(at(2025, 1, 15, 9))
    sweep(at(2025, 1, 17, 9))
    got = db.session.scalars(select(Reminder.key).where(Reminder.contribution_id == w.contribution.id)
                             .order_by(Reminder.id)).all()
    c = w.contribution.id
    assert got == [f"c{c}:overdue:2025-01-10/1", f"c{c}:before_due:2025-01-20/3",
                   f"c{c}:before_due:2025-01-20/1"]
    # The pending overdue mail for the old date is cancelled at delivery, not sent.
    from fazhi_flow.reminders.jobs import deliver

    result = deliver(at(2025, 1, 17, 9, 1))
    assert result.cancelled >= 1
    old = db.session.scalars(select(OutboxMessage).join(Reminder).where(
        Reminder.key == f"c{c}:overdue:2025-01-10/1")).all()
    assert old and all(m.status == "cancelled" and "截止日期已调整" in m.last_error for m in old)


def test_extension_validation(factory, db):
    w = factory.world()
    db.session.commit()
    cases = [
        (w.liaison, "2025-01-20", "", "理由"),
        (w.liaison, "2025-13-40", "原因", "不是有效日期"),
        (w.liaison, "2025-01-08", "原因", "晚于当前截止日期"),
        (w.other_liaison, "2025-01-20", "原因", "本单位联络员"),
    ]
    for user, day, reason, message in cases:
        with pytest.raises(DomainError, match=message):
            rsvc.request_extension(w.assignment, user, day, reason, today=date(2025, 1, 6))
    assert count(db, ExtensionRequest) == 0
    req = rsvc.request_extension(w.assignment, w.liaison, "2025-01-20", "原因", today=date(2025, 1, 6))
    with pytest.raises(DomainError, match="填写意见"):
        rsvc.decide_extension(req, w.admin, grant=False)
    rsvc.decide_extension(req, w.admin, grant=False, comment="请按期报送")
    assert w.assignment.effective_due() == date(2025, 1, 10) and req.status == "refused"


def test_manual_reminder_is_logged_like_any_other(factory, db):
    w = factory.world()
    second = factory.assignment(w.section, w.other_unit)
    other = factory.contribution(second, state="submitted")
    db.session.commit()
    with pytest.raises(DomainError, match="都已提交"):
        rsvc.send_manual_reminder(w.cycle, w.admin, unit_ids=[w.other_unit.id], now=at(2025, 1, 6, 10))
    with pytest.raises(DomainError, match="没有逾期"):
        rsvc.send_manual_reminder(w.cycle, w.admin, all_overdue=True, now=at(2025, 1, 6, 10))
    with pytest.raises(PermissionDenied):
        rsvc.send_manual_reminder(w.cycle, w.liaison, unit_ids=[w.unit.id])
    sent = rsvc.send_manual_reminder(w.cycle, w.admin, all_overdue=True, note="请今天下班前报送",
                                     now=at(2025, 1, 13, 15))
    db.session.commit()
    assert [r.contribution_id for r in sent] == [w.contribution.id]
    assert sent[0].kind == "manual" and sent[0].actor_id == w.admin.id and sent[0].message == "请今天下班前报送"
    mail = db.session.scalars(select(OutboxMessage).where(OutboxMessage.reminder_id == sent[0].id)).one()
    assert "附言：请今天下班前报送" in mail.body and mail.address == w.liaison.email
    assert other.id not in {r.contribution_id for r in db.session.scalars(select(Reminder))}
    # A second 催报 is a new reminder (its own key), not a duplicate.
    rsvc.send_manual_reminder(w.cycle, w.admin, unit_ids=[w.unit.id], now=at(2025, 1, 13, 16))
    assert count(db, Reminder, Reminder.kind == "manual") == 2


def test_channel_preferences_are_respected(factory, db):
    w = factory.world()
    rsvc.set_channel_preferences(w.liaison, email=False, inapp=True)
    rsvc.set_channel_preferences(w.admin, email=True, inapp=False)
    db.session.commit()
    sweep(at(2025, 1, 7, 9))
    assert count(db, OutboxMessage, OutboxMessage.user_id == w.liaison.id) == 0
    assert count(db, Notification, Notification.user_id == w.liaison.id) == 1
    assert count(db, OutboxMessage, OutboxMessage.user_id == w.admin.id) == 1
    assert count(db, Notification, Notification.user_id == w.admin.id) == 0


def test_escalation_and_backlog_recipients(factory, db):
    w = factory.world()
    second = factory.assignment(w.section, w.other_unit)
    waiting = factory.contribution(second, state="submitted")
    from datetime import datetime
    waiting.submitted_at = datetime(2025, 1, 6, 2, 0)  # 10:00 local on Monday 6 January
    db.session.commit()
    sweep(at(2025, 1, 15, 9))
    esc = db.session.scalars(select(Reminder).where(Reminder.kind == "escalation")).one()
    to = set(db.session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.reminder_id == esc.id)))
    assert to == {w.unit_head.id, w.admin.id}
    backlog = db.session.scalars(select(Reminder).where(Reminder.kind == "backlog")).one()
    to = set(db.session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.reminder_id == backlog.id)))
    assert to == {w.reviewer.id}  # named for the section; never a reviewer of the unit itself


def test_workflow_events_queue_emails_without_duplicating_inapp(factory, db):
    w = factory.world()
    db.session.commit()
    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    mails = db.session.scalars(select(OutboxMessage)).all()
    assert [(m.cause, m.user_id) for m in mails] == [("transition:submit", w.reviewer.id)]
    assert "/review/" in mails[0].body
    csvc.return_contribution(w.contribution, w.reviewer, comment="请补充执法案件数量")
    db.session.commit()
    ret = db.session.scalars(select(OutboxMessage).where(OutboxMessage.cause == "transition:return")).one()
    assert ret.user_id == w.liaison.id and "请补充执法案件数量" in ret.body
    # One in-app notice per event (made by the inbox), none added by the reminder side.
    assert count(db, Notification, Notification.user_id == w.liaison.id) == 1


def test_rolled_back_change_leaves_no_message(factory, db):
    w = factory.world()
    db.session.commit()
    csvc.submit_contribution(w.contribution, w.liaison)
    db.session.rollback()
    assert count(db, OutboxMessage) == 0


def test_opening_a_cycle_tells_every_assigned_liaison(factory, db, webhook_receiver):
    from fazhi_flow.services.cycles import open_cycle

    w = factory.world(state="setup")
    factory.assignment(w.section, w.other_unit)
    rsvc.add_webhook(w.admin, "全区联络员群", "wecom", webhook_receiver.url(), cycle_id=w.cycle.id)
    db.session.commit()
    open_cycle(w.cycle, w.admin)
    db.session.commit()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.cause == "cycle:open")).all()
    assert sorted((r.channel, r.user_id) for r in rows) == sorted(
        [("email", w.liaison.id), ("email", w.other_liaison.id), ("webhook", None)])
    assert all("开始征集" in r.subject for r in rows)
    # In-app: exactly one notice per liaison (from the inbox side), no duplicate from here.
    assert count(db, Notification, Notification.user_id == w.liaison.id) == 1
