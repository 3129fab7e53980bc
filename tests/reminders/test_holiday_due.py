"""A deadline on a holiday: the reminder sent on the last working day before it says so, instead of
"今天截止" beside a date two days later (the page, the e-mail and the in-app notice agree)."""
from datetime import date

from sqlalchemy import select

from fazhi_flow.models import Notification
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.reminders.jobs import sweep
from fazhi_flow.workdays import due_status

from .helpers import at

HOLIDAY_WORDS = "截止日为节假日，今天是截止前最后一个工作日"


def _liaison_mail(db, world):
    return db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.cause == "reminder", OutboxMessage.user_id == world.liaison.id)).all()


def test_reminder_before_a_saturday_deadline_names_the_holiday(factory, db):
    w = factory.world()
    w.assignment.due = date(2025, 1, 4)  # a Saturday; Friday 3 January is the last working day before it
    db.session.commit()
    result = sweep(at(2025, 1, 3, 9, 5))
    assert "due_today" in [q.kind for q in result.queued]
    mails = _liaison_mail(db, w)
    assert mails, "the liaison gets the reminder"
    for mail in mails:
        assert HOLIDAY_WORDS in mail.subject and HOLIDAY_WORDS in mail.body
        assert "今天截止" not in mail.subject + mail.body and "今天是截止日期" not in mail.body
        assert "2025年1月4日（星期六）" in mail.body
    notice = db.session.scalars(select(Notification).where(Notification.user_id == w.liaison.id)).one()
    assert HOLIDAY_WORDS in notice.title + (notice.body or "")


def test_reminder_on_the_deadline_itself_still_says_today(factory, db):
    w = factory.world()  # due Friday 10 January 2025, a working day
    db.session.commit()
    sweep(at(2025, 1, 10, 9, 5))
    mails = _liaison_mail(db, w)
    assert mails and all("今天截止" in m.subject and HOLIDAY_WORDS not in m.body for m in mails)
    assert due_status(date(2025, 1, 10), today=date(2025, 1, 10)).label == "今天截止"
