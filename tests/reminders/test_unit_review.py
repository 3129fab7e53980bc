"""Material waiting for the unit head (待单位审核): reminded after ``backlog_days`` working days,
exactly once per stage, to the unit's unit heads only, and never after the unit head has decided."""
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from fazhi_flow.models import User, UserRole
from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.reminders.policy import Item, PolicySettings, due_reminders
from fazhi_flow.services import contributions as csvc

from .helpers import at

ENTERED = datetime(2025, 1, 6, 2, 0)  # naive UTC: 10:00 local on Monday 6 January


def unit_review_keys(db):
    return sorted(db.session.scalars(select(Reminder.key).where(Reminder.occurrence.like("unit/%"))))


def test_policy_schedule_counts_and_caps_like_the_reviewer_backlog():
    cal = WorkCalendar()
    item = Item(1, "unit_review", date(2025, 1, 10), submitted_on=date(2025, 1, 6), submitted_at=ENTERED)
    first = {}
    day = date(2025, 1, 6)
    while day <= date(2025, 1, 31):
        for r in due_reminders(7, [item], at(day.year, day.month, day.day), PolicySettings(), cal):
            assert r.kind != "before_due" and r.kind != "overdue"  # the liaison has submitted
            if r.kind == "backlog":
                first.setdefault(r.occurrence, day)
        day += timedelta(days=1)
    assert first == {"unit/20250106T020000/1": date(2025, 1, 9), "unit/20250106T020000/2": date(2025, 1, 13),
                     "unit/20250106T020000/3": date(2025, 1, 15)}
    # The same facts in another state, or with the reminder switched off, give no unit-review reminder.
    for state, settings in (("submitted", PolicySettings()), ("draft", PolicySettings()),
                            ("unit_review", PolicySettings(backlog_days=0))):
        got = due_reminders(7, [Item(1, state, date(2025, 1, 10), date(2025, 1, 6), ENTERED)],
                            at(2025, 1, 9), settings, cal)
        assert not [r for r in got if r.occurrence.startswith("unit/")], state


def test_unit_heads_are_reminded_once_and_never_after_deciding(factory, db, app, smtp):
    w = factory.world(unit_head_review=True)
    second_head = factory.user("unit_head", unit=w.unit, name="副职负责人")
    factory.user("unit_head", unit=w.other_unit, name="他单位负责人")
    c = w.contribution
    c.state, c.submitted_at = "unit_review", ENTERED
    db.session.commit()

    assert unit_review_keys(db) == [] and sweep(at(2025, 1, 8, 9)).queued[0].kind == "digest"
    assert unit_review_keys(db) == []  # 2 working days waited: not yet
    result = sweep(at(2025, 1, 9, 9, 5))
    key = f"c{c.id}:backlog:unit/20250106T020000/1"
    assert [q.kind_label for q in result.queued if q.key == key] == ["待单位审核提醒"]
    # Swept again the same day and later: exactly once.
    assert sweep(at(2025, 1, 9, 9, 5)).queued == [] and sweep(at(2025, 1, 9, 17)).queued == []
    assert unit_review_keys(db) == [key]
    reminder = db.session.scalars(select(Reminder).where(Reminder.key == key)).one()
    to = set(db.session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.reminder_id == reminder.id)))
    assert to == {w.unit_head.id, second_head.id}

    deliver(at(2025, 1, 9, 9, 6))
    mails = [m for m in smtp.messages if m["X-Fazhi-Reminder-Key"] == key]
    assert sorted(m["To"].addresses[0].addr_spec for m in mails) == sorted([w.unit_head.email, second_head.email])
    mail = mails[0]
    assert mail["Subject"].startswith("【待单位审核提醒】区司法局“") and "严格规范执法" in mail["Subject"]
    assert "已等待单位审核3个工作日" in mail["Subject"]
    body = mail.get_content()
    assert "区司法局负责人您好" in body and "等待您审核3个工作日" in body
    assert "待单位审核" in body and f"/tasks/{c.id}/unit-review" in body

    # The second stage is queued, then the unit head agrees before it goes out: it is cancelled.
    sweep(at(2025, 1, 13, 9))
    assert unit_review_keys(db)[-1] == f"c{c.id}:backlog:unit/20250106T020000/2"
    csvc.unit_approve_contribution(c, w.unit_head)
    db.session.commit()
    sent_before = len(smtp.messages)
    deliver(at(2025, 1, 13, 9, 1))
    assert not [m for m in smtp.messages[sent_before:] if "unit/" in (m["X-Fazhi-Reminder-Key"] or "")]
    stage2 = db.session.scalars(select(OutboxMessage).join(Reminder).where(
        Reminder.key == f"c{c.id}:backlog:unit/20250106T020000/2")).all()
    assert stage2 and all(m.status == "cancelled" and "单位负责人已处理" in m.last_error for m in stage2)
    # No further unit-review reminder once decided.
    sweep(at(2025, 1, 15, 9))
    assert len(unit_review_keys(db)) == 2


def test_returned_by_the_unit_head_stops_and_a_resubmission_starts_afresh(factory, db, app):
    w = factory.world(unit_head_review=True)
    c = w.contribution
    c.state, c.submitted_at = "unit_review", ENTERED
    db.session.commit()
    sweep(at(2025, 1, 9, 9))
    csvc.unit_return_contribution(c, w.unit_head, comment="请补充数据来源")
    db.session.commit()
    sweep(at(2025, 1, 13, 9))
    assert unit_review_keys(db) == [f"c{c.id}:backlog:unit/20250106T020000/1"]
    # Resubmitted on 13 January: a new series keyed by the new submission.
    c.state, c.submitted_at = "unit_review", datetime(2025, 1, 13, 3, 0)
    db.session.commit()
    sweep(at(2025, 1, 16, 9))
    assert unit_review_keys(db)[-1] == f"c{c.id}:backlog:unit/20250113T030000/1"
    assert db.session.scalar(select(func.count()).select_from(Reminder)
                             .where(Reminder.occurrence.like("unit/%"))) == 2


def _headless(factory, db, n=1):
    """A cycle under unit-head review whose 区司法局 has lost its unit head, with ``n`` materials of
    such units waiting in 待单位审核 since Monday 6 January; an admin who is also 区司法局's liaison."""
    w = factory.world(unit_head_review=True)
    w.unit_head.active = False
    w.admin2 = factory.user("admin", unit=w.office, name="第二管理员")
    w.liaison_admin = factory.user("admin", "liaison", unit=w.unit, name="兼任联络员的管理员")
    w.waiting = [w.contribution]
    for i in range(n - 1):
        town = factory.unit(f"第{i + 1}街道办事处", kind="township")
        factory.user("liaison", unit=town)
        w.waiting.append(factory.contribution(factory.assignment(w.section, town, role="support"),
                                              body=f"开展法治宣传活动{10 + i}场。"))
    for c in w.waiting:
        c.state, c.submitted_at = "unit_review", ENTERED
    db.session.commit()
    return w


def test_without_a_unit_head_the_admins_are_reminded_and_may_act(factory, db, app, smtp):
    w = _headless(factory, db)
    c = w.contribution
    sweep(at(2025, 1, 9, 9, 5))
    key = f"c{c.id}:backlog:unit/20250106T020000/1"
    reminder = db.session.scalars(select(Reminder).where(Reminder.key == key)).one()
    to = set(db.session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.reminder_id == reminder.id)))
    # The admins, not the unit's liaison who is also an admin (it is their own unit's material).
    assert to == {w.admin.id, w.admin2.id}
    deliver(at(2025, 1, 9, 9, 6))
    mails = [m for m in smtp.messages if m["X-Fazhi-Reminder-Key"] == key]
    assert sorted(m["To"].addresses[0].addr_spec for m in mails) == sorted([w.admin.email, w.admin2.email])
    body = mails[0].get_content()
    assert "该单位没有单位负责人" in mails[0]["Subject"] and "已等待单位审核3个工作日" in mails[0]["Subject"]
    assert "管理员您好" in body and "区司法局没有启用的单位负责人账号" in body and "负责人您好" not in body
    assert f"/admin/contributions/{c.id}/unit-decision" in body


def test_the_sweep_reads_the_unit_heads_once_however_many_units_lack_one(factory, db, app):
    """1 material of a unit without a unit head due on Thursday, 7 more on Friday (submitted a day
    later): the sweep's statements do not grow with them."""
    from fazhi_flow.testing import count_queries

    w = _headless(factory, db, n=8)
    for c in w.waiting[1:]:
        c.submitted_at = ENTERED + timedelta(days=1)
    db.session.commit()

    def swept(day):
        with count_queries(db.engine) as statements:
            result = sweep(at(2025, 1, day, 9, 5))
        return len(statements), len([q for q in result.queued if q.kind_label == "待单位审核提醒"])

    one, n1 = swept(9)
    seven, n7 = swept(10)
    assert (n1, n7) == (1, 7)
    assert seven == one, f"{one} statements for 1 reminder, {seven} for 7"
    admins = db.session.scalar(select(func.count()).select_from(User).join(UserRole).where(
        UserRole.role == "admin", User.active.is_(True)))
    told = db.session.scalar(select(func.count()).select_from(OutboxMessage).join(Reminder).where(
        Reminder.occurrence.like("unit/%")))
    # Every admin by e-mail for each material; 区司法局's own liaison-admin not for 区司法局's.
    assert told == 8 * admins - 1
