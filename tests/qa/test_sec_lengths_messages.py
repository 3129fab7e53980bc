"""Long titles never stop reminders or decisions (issue 9, item 2).

Every name and title is at the most its column (and so its form) accepts: a 300-character section
title, 200-character cycle title, 100-character unit names, 60-character user names and usernames,
200-character e-mail addresses. Messages composed from them are longer than the notification title
(varchar 200) and outbox subject (varchar 300) columns; they are fitted to them. PostgreSQL enforces
the lengths (the run that found the bug); on SQLite the same test checks that values were fitted.
"""
from datetime import date, datetime

from sqlalchemy import func, select

from fazhi_flow.limits import column_length, fit
from fazhi_flow.models import Notification, ReportCycle, Section, Unit, User
from fazhi_flow.models.audit import AuditEvent
from fazhi_flow.models.reminder import OutboxMessage, Reminder, WebhookTarget
from fazhi_flow.reminders.jobs import deliver
from fazhi_flow.services import contributions as csvc
from fazhi_flow.services import reminders as rsvc
from fazhi_flow.services.reminders import MAX_NOTE
from fazhi_flow.testing import FreshUserClient, login
from fazhi_flow.web.tasks.forms import COMMENT_MAX
from tests.reminders.conftest import SmtpServer, WebhookReceiver, free_port
from tests.reminders.helpers import SH

PHRASE = "关于深入推进依法行政、严格规范公正文明执法工作的情况，"


def chinese(n: int, seed: str = "") -> str:
    """Exactly ``n`` characters of Chinese text with clause marks (``seed`` first, to tell values apart)."""
    return (seed + PHRASE * (n // len(PHRASE) + 2))[:n]


def ascii_name(n: int, seed: str) -> str:
    return (seed + "x" * n)[:n]


def long_email(n: int, seed: str) -> str:
    """A valid address of exactly ``n`` characters: labels of at most 50 characters."""
    room = n - len(seed) - 1 - len(".test")
    labels = []
    while room > 0:
        size = min(50, room - 1 if room > 50 else room)
        labels.append("d" * size)
        room -= size + 1
    address = f"{seed}@{'.'.join(labels)}.test"
    assert len(address) == n
    return address


def max_out(world, db):
    """Every name and title of the world at its column's length."""
    w = world
    w.cycle.title = chinese(column_length(ReportCycle.title), "示例区年度报告")
    w.cycle.region = chinese(column_length(ReportCycle.region), "示例区")
    w.section.title = chinese(column_length(Section.title), "章节")
    w.section.guidance = chinese(column_length(Section.guidance), "说明")
    for i, unit in enumerate((w.unit, w.other_unit, w.office)):
        unit.name = chinese(column_length(Unit.name), f"单位{i}")
    users = [w.reviewer, w.liaison, w.other_liaison, w.unit_head, w.admin, w.leader, w.outsider_reviewer,
             w.own_unit_reviewer]
    for i, user in enumerate(users):
        user.name = chinese(column_length(User.name), f"姓名{i}")
        user.username = ascii_name(column_length(User.username), f"user{i}")
        user.email = long_email(column_length(User.email), f"u{i}")
        user.phone = ("1" * column_length(User.phone))
    db.session.commit()
    return users


def assert_all_fit(db):
    """Every stored message value fits its column (PostgreSQL would have refused it otherwise)."""
    for model, attr in ((Notification, Notification.title), (OutboxMessage, OutboxMessage.subject),
                        (OutboxMessage, OutboxMessage.address), (AuditEvent, AuditEvent.target)):
        longest = db.session.scalar(select(func.max(func.length(attr))))
        assert longest is None or longest <= column_length(attr), (model, longest)


def smtp_server(app):
    server = SmtpServer(free_port())
    server.start()
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=server.port, MAIL_SECURITY="none", MAIL_USERNAME="",
                      MAIL_TIMEOUT=5)
    return server


def test_fit_shortens_at_a_clause_break():
    text = chinese(300)
    fitted = fit(Notification.title, text)
    assert len(fitted) <= 200 and fitted.endswith("，…") and text.startswith(fitted[:-1])
    assert fit(Notification.title, "短标题") == "短标题"
    assert fit(Notification.title, None) is None
    # No break near the end: cut hard, still within the column.
    assert fit(Notification.title, "法" * 500) == "法" * 199 + "…"


def test_sweeps_chase_decisions_and_delivery_with_max_lengths(app, db, factory):
    w = factory.world()  # the cycle is due on 10 January 2025
    users = max_out(w, db)
    robot = WebhookReceiver()
    robot.thread.start()
    smtp = smtp_server(app)
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT")}
    try:
        for unit_id, cycle_id in ((w.unit.id, None), (None, w.cycle.id)):
            rsvc.add_webhook(w.admin, chinese(column_length(WebhookTarget.name), "机器人"), "wecom", robot.url(),
                             unit_id=unit_id, cycle_id=cycle_id)
        db.session.commit()
        _sweeps_and_delivery(app, w, db)
        _chase_and_decisions(app, w, db, users)
        result = deliver(datetime.now(SH))
        assert result.dead == 0 and result.retried == 0
    finally:
        smtp.stop()
        robot.server.shutdown()
        robot.server.server_close()
        app.config.update(saved)
    rows = db.session.scalars(select(OutboxMessage)).all()
    assert {r.status for r in rows} <= {"sent", "cancelled"}, [(r.status, r.last_error) for r in rows]
    sent = [r for r in rows if r.status == "sent"]
    assert len(smtp.messages) == sum(r.channel == "email" for r in sent) > 5
    assert len(robot.requests) == sum(r.channel == "webhook" for r in sent) > 2
    # The full section title still reaches people, in the body (only subjects and titles are fitted).
    assert any(w.section.title in m.get_content() for m in smtp.messages)
    assert any(w.section.title in r["json"]["text"]["content"] for r in robot.requests)
    assert any(r.subject.endswith("…") for r in rows)
    assert {r.cause.split(":")[0] for r in sent} >= {"reminder", "transition", "extension"}
    assert db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.title.endswith("…"))) > 0
    assert_all_fit(db)


def _sweeps_and_delivery(app, w, db):
    runner = app.test_cli_runner()
    # Before the due date, overdue, escalated: `fazhi-flow remind` queues, `deliver` sends each batch.
    for moment in ("2025-01-07T09:05+08:00", "2025-01-13T09:05+08:00", "2025-01-15T09:05+08:00"):
        queued = runner.invoke(args=["fazhi", "remind", "--at", moment])
        assert queued.exit_code == 0 and "已加入待发消息的提醒 0 条" not in queued.output, queued.output
        sent = runner.invoke(args=["fazhi", "deliver", "--at", moment])
        assert sent.exit_code == 0 and "已发送 0 条" not in sent.output, sent.output
    kinds = set(db.session.scalars(select(Reminder.kind)))
    assert {"before_due", "overdue", "escalation", "digest"} <= kinds
    # 申请延期 and its refusal: both messages name the unit and the section.
    req = rsvc.request_extension(w.assignment, w.liaison, date(2025, 1, 24), chinese(MAX_NOTE, "理由"),
                                 today=date(2025, 1, 15))
    rsvc.decide_extension(req, w.admin, grant=False, comment=chinese(MAX_NOTE, "意见"))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Reminder)) >= 4
    assert_all_fit(db)


def _chase_and_decisions(app, w, db, users):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, w.admin)
    response = client.post(f"/reminders/cycles/{w.cycle.id}/chase",
                           data={"scope": "units", "unit_id": str(w.unit.id), "note": chinese(MAX_NOTE, "附言")})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Reminder).where(Reminder.kind == "manual")) == 1
    c = w.contribution
    csvc.submit_contribution(c, w.liaison)
    db.session.commit()
    client.post("/logout")
    login(client, w.reviewer)
    response = client.post(f"/review/{c.id}/return",
                           data={"version": c.version, "comment": chinese(COMMENT_MAX, "意见")})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    db.session.expire_all()
    assert c.state == "returned"
    csvc.submit_contribution(c, w.liaison)
    db.session.commit()
    response = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": chinese(COMMENT_MAX)})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    db.session.expire_all()
    assert c.state == "approved"
    assert_all_fit(db)
