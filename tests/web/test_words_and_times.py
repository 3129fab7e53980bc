"""Dates in one format in Beijing time on pages and in messages ('2025年1月6日', '2025年1月6日 09:00'),
through one filter."""
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import Notification
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.services import contributions as svc
from fazhi_flow.services import reminders as reminder_svc

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
ISO_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b")


def visible_text(html: str) -> str:
    """The page's text as people read it: no tags (attributes hold ISO dates for inputs and links),
    no scripts or styles."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]*>", " ", html)


def test_the_filter_shows_dates_and_beijing_times(app):
    cn_date = app.jinja_env.filters["cn_date"]
    with app.app_context():
        assert cn_date(date(2025, 1, 6)) == "2025年1月6日"
        # Stored naive UTC: 01:00 UTC is 09:00 in Beijing.
        assert cn_date(datetime(2025, 1, 6, 1, 0)) == "2025年1月6日 09:00"
        # 17:30 UTC on the 5th is already the 6th in Beijing, by day or with the time.
        assert cn_date(datetime(2025, 1, 5, 17, 30), time=False) == "2025年1月6日"
        assert cn_date(datetime(2025, 1, 5, 17, 30, 7), seconds=True) == "2025年1月6日 01:30:07"
        assert cn_date(None) == "" and cn_date("2025-01-08") == "2025年1月8日"
        # A template someone still writes with the former filter name gets the same format.
        assert app.jinja_env.filters["localtime"](datetime(2025, 1, 6, 1, 0)) == "2025年1月6日 09:00"


def test_the_time_zone_setting_governs_the_filter(extra_app):
    urumqi = extra_app(TIMEZONE="Asia/Urumqi")
    with urumqi.app_context():
        assert urumqi.jinja_env.filters["cn_date"](datetime(2025, 1, 6, 1, 0)) == "2025年1月6日 07:00"


def test_templates_use_the_one_filter():
    """No template formats a date itself: no former filter, no strftime, ISO text only in attributes
    (date inputs need it)."""
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text("utf-8")
        name = path.relative_to(TEMPLATES)
        problems += [f"{name}: |localtime" for _ in re.finditer(r"\|\s*localtime\b", text)]
        problems += [f"{name}: strftime" for _ in re.finditer(r"strftime", text)]
        in_attributes = len(re.findall(r'value="\{\{[^"]*isoformat\(\)[^"]*\}\}"', text))
        if text.count("isoformat()") != in_attributes:
            problems.append(f"{name}: isoformat outside an input's value")
    assert problems == []


def test_review_pages_show_beijing_times_in_the_one_format(as_user, world, db):
    c = world.contribution
    svc.submit_contribution(c, world.liaison)
    c.submitted_at = datetime(2025, 1, 6, 1, 30)  # 09:30 in Beijing
    world.assignment.due = date(2025, 1, 10)
    db.session.commit()
    client = as_user(world.reviewer)
    for url in ("/review/", f"/review/{c.id}"):
        text = visible_text(client.get(url).get_data(as_text=True))
        assert "2025年1月6日 09:30" in text, url
        assert not ISO_DATE.search(text), (url, ISO_DATE.findall(text))
    queue = visible_text(client.get("/review/").get_data(as_text=True))
    assert "2025年1月10日" in queue


def test_extension_pages_and_refusals_show_dates_in_the_one_format(as_user, world, db):
    world.assignment.due = date(2025, 1, 10)
    db.session.commit()
    with pytest.raises(DomainError, match="当前截止日期（2025年1月10日）"):
        reminder_svc.request_extension(world.assignment, world.liaison, "2025-01-09", "需要补充数据",
                                       today=date(2025, 1, 6))
    reminder_svc.request_extension(world.assignment, world.liaison, "2025-01-20", "需要补充数据",
                                   today=date(2025, 1, 6))
    db.session.commit()
    # The admins' messages (e-mail and in-app) say the dates the same way.
    texts = [m.body for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.cause == "extension:requested"))]
    assert texts and all("原截止日期：2025年1月10日" in t and "申请延至：2025年1月20日" in t for t in texts)
    texts += [f"{n.title}{n.body or ''}" for n in db.session.scalars(
        select(Notification).where(Notification.user_id == world.admin.id))]
    assert all("2025年1月20日" in t and not ISO_DATE.search(t) for t in texts), texts
    pages = ((world.liaison, f"/reminders/assignments/{world.assignment.id}/extension"),
             (world.liaison, "/reminders/my-extensions"), (world.admin, "/reminders/extensions"))
    for user, page in pages:
        response = as_user(user).get(page)
        text = visible_text(response.get_data(as_text=True))
        assert response.status_code == 200 and "2025年1月20日" in text and "2025年1月10日" in text, page
        assert not ISO_DATE.search(text), (page, ISO_DATE.findall(text))
