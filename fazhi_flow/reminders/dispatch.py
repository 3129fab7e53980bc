"""Turn a due reminder into its Reminder row and its messages, in the caller's transaction.

The Reminder row is inserted first inside a savepoint; if its key already exists (another sweep got
there first, even concurrently) the insert fails, the savepoint is rolled back and nothing is queued.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Contribution
from ..models.reminder import Reminder
from ..notify import messages as M
from ..notify.outbox import (
    admins, liaisons, queue_webhook, reviewers_of, send_to_users, unit_heads, webhooks_for,
)
from ..timeutil import local_zone
from .calendar import current_calendar, due_status
from .policy import DueReminder, PolicySettings, is_unit_review

logger = logging.getLogger(__name__)

# Kinds addressed to the unit (its liaisons and its group robots).
UNIT_KINDS = ("before_due", "due_today", "overdue", "manual")


def end_of_local_day_utc(day: date) -> datetime:
    local = datetime.combine(day + timedelta(days=1), time(), tzinfo=local_zone())
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def insert_reminder(spec: DueReminder, cycle_id: int, day: date, now_utc: datetime,
                    note: str | None = None, actor=None) -> Reminder | None:
    """Insert the Reminder row for ``spec``; None when its key exists already."""
    reminder = Reminder(key=spec.key, cycle_id=cycle_id, contribution_id=spec.contribution_id,
                        kind=spec.kind, occurrence=spec.occurrence, due=spec.due, day=day,
                        message=note, actor_id=getattr(actor, "id", None), created_at=now_utc)
    try:
        with db.session.begin_nested():
            db.session.add(reminder)
            db.session.flush()
    except IntegrityError:
        logger.info("Reminder %s exists already; skipped", spec.key)
        return None
    return reminder


def fan_out(reminder: Reminder, cycle, contribution: Contribution | None, day: date,
            settings: PolicySettings | None = None, now: datetime | None = None) -> int:
    """Queue the in-app notifications, e-mails and robot messages of ``reminder``; return the count."""
    kind = reminder.kind
    told = 0
    now = now or reminder.created_at
    if kind in UNIT_KINDS:
        status = due_status(contribution, today=day)
        msg = M.reminder_message(kind, contribution, status, note=reminder.message)
        expires = end_of_local_day_utc(status.due) if kind in ("before_due", "due_today") and status.due \
            else None
        people = liaisons(contribution.unit_id)
        told += send_to_users(people, msg, "reminder", inapp_kind="reminder", reminder=reminder,
                              contribution=contribution, expires_at=expires, now=now)
        mobiles = [u.phone for u in people if u.phone]
        for target in webhooks_for(unit_id=contribution.unit_id, cycle_id=cycle.id):
            told += bool(queue_webhook(target, msg, "reminder", reminder=reminder,
                                       contribution=contribution, mobiles=mobiles, expires_at=expires,
                                       now=now))
    elif kind == "escalation":
        msg = M.escalation_message(contribution, due_status(contribution, today=day))
        people = unit_heads(contribution.unit_id) + admins()
        told += send_to_users(people, msg, "reminder", inapp_kind="reminder", reminder=reminder,
                              contribution=contribution, now=now)
    elif kind == "backlog":
        waited = current_calendar().working_days_between(_local_day(contribution.submitted_at), day)
        if is_unit_review(kind, reminder.occurrence):
            msg = M.unit_review_message(contribution, waited)
            people = unit_heads(contribution.unit_id)
        else:
            msg = M.backlog_message(contribution, waited)
            people = reviewers_of(contribution)
        told += send_to_users(people, msg, "reminder", inapp_kind="reminder",
                              reminder=reminder, contribution=contribution, now=now)
    elif kind == "digest":
        msg = digest_for(cycle, day, settings or PolicySettings())
        told += send_to_users(admins(), msg, "reminder", inapp_kind="reminder", reminder=reminder, now=now)
    reminder.recipients = told
    return told


def _local_day(value: datetime | None) -> date | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(local_zone()).date()


def digest_for(cycle, day: date, settings: PolicySettings):
    rows = list(db.session.scalars(select(Contribution).where(Contribution.cycle_id == cycle.id)
                                   .order_by(Contribution.id)))
    counts = Counter(c.state for c in rows)
    calendar = current_calendar()
    overdue, waiting = [], 0
    for c in rows:
        if c.state in ("draft", "returned"):
            st = due_status(c, today=day, calendar=calendar)
            if st.overdue:
                overdue.append((c.unit.name, c.section.path_label, st.label))
        elif c.state == "submitted" and settings.backlog_days and c.submitted_at is not None:
            if calendar.working_days_between(_local_day(c.submitted_at), day) > settings.backlog_days:
                waiting += 1
    return M.digest_message(cycle, day, dict(counts), overdue, waiting)
