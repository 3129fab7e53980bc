"""The set-based sweep: SQL selects only what is due, statements do not grow with the contributions,
the policy's ranges agree with the policy day by day, and two racing bulk sweeps queue each reminder
once (PostgreSQL)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, func, insert, select, text

from fazhi_flow.models import Assignment, Contribution, Notification, Unit, User, UserRole
from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.reminders.policy import (
    REMINDABLE_STATES, Item, PolicySettings, backlog_reminder, contribution_reminders, contribution_stages,
    unit_review_reminder, waiting_stages,
)

from .helpers import at

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def statements(db):
    """Every statement sent to the database inside the block (an executemany counts once)."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def wipe(db):
    db.session.rollback()
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


def build(factory, db, units: int, sections: int, due: date, state: str = "draft", submitted_at=None):
    """A collecting cycle with ``units`` × ``sections`` contributions, all with ``due`` and ``state``,
    one liaison per unit and one admin; written with bulk inserts."""
    cycle = factory.cycle(state="collecting")
    office = factory.unit("区委依法治区办", code="office", kind="party")
    factory.user("admin", unit=office, name="管理员")
    factory.user("reviewer", unit=office, name="审核人")
    secs = [factory.section(cycle, f"章节{i}") for i in range(sections)]
    s = db.session
    region = cycle.region_id  # core inserts: the region is named, as every writer must
    s.execute(insert(Unit), [{"code": f"bu{i}", "name": f"单位{i:03d}", "kind": "government", "region_id": region}
                             for i in range(units)])
    unit_ids = s.scalars(select(Unit.id).where(Unit.code.like("bu%")).order_by(Unit.id)).all()
    s.execute(insert(User), [{"username": f"bl{u}", "name": f"联络员{u}", "email": f"bl{u}@example.test",
                              "unit_id": u, "region_id": region} for u in unit_ids])
    users = s.execute(select(User.id, User.unit_id).where(User.username.like("bl%"))).all()
    s.execute(insert(UserRole), [{"user_id": uid, "role": "liaison"} for uid, _unit in users])
    s.execute(insert(Assignment), [{"section_id": sec.id, "unit_id": u, "role": "lead", "due": due}
                                   for sec in secs for u in unit_ids])
    rows = s.execute(select(Assignment.id, Assignment.section_id, Assignment.unit_id)
                     .where(Assignment.section_id.in_([sec.id for sec in secs]))).all()
    s.execute(insert(Contribution), [{"assignment_id": a, "cycle_id": cycle.id, "section_id": sid, "unit_id": u,
                                      "body": "", "state": state, "submitted_at": submitted_at}
                                     for a, sid, u in rows])
    db.session.commit()
    return cycle


def count(db, model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ------------------------------------------------------------------ statements


def measure(factory, db, units, sections, batch_size=1000):
    """Statements of: a sweep with only the digest due, the same sweep again (nothing due), a sweep
    with every contribution due, and that one again."""
    build(factory, db, units, sections, due=date(2025, 1, 10))
    out = {}
    with statements(db) as seen:  # 2 January: 6 working days before the due date; only the digest
        result = sweep(at(2025, 1, 2, 9, 5), batch_size=batch_size)
    assert [q.kind for q in result.queued] == ["digest"]
    out["digest_only"] = len(seen)
    with statements(db) as seen:
        assert sweep(at(2025, 1, 2, 11), batch_size=batch_size).queued == []
    out["nothing"] = len(seen)
    with statements(db) as seen:  # 3 January: 5 working days left, every draft is due
        result = sweep(at(2025, 1, 3, 9, 5), batch_size=batch_size)
    n = units * sections
    assert len(result.queued) == n + 1 and result.candidates == n
    out["all_due"] = len(seen)
    with statements(db) as seen:
        again = sweep(at(2025, 1, 3, 9, 30), batch_size=batch_size)
    assert again.queued == [] and again.candidates == 0 and again.skipped_existing == n + 1
    out["again"] = len(seen)
    assert count(db, Reminder) == n + 2
    assert count(db, Notification) == n + 2  # each draft's liaison, and the admin's two digests
    assert count(db, OutboxMessage) == n + 2
    wipe(db)
    return out


def test_sweep_statements_do_not_grow_with_contributions(factory, db):
    small = measure(factory, db, 10, 5)
    large = measure(factory, db, 50, 10)
    assert small == large, (small, large)
    # Nothing due: a handful of statements (lock or BEGIN, cycles, policies, candidates, digest, count).
    assert large["nothing"] <= 8, large
    assert large["again"] <= 8, large


def test_statements_grow_only_by_batch(factory, db):
    small = measure(factory, db, 10, 5, batch_size=100)  # 50: one batch
    large = measure(factory, db, 50, 10, batch_size=100)  # 500: five batches
    assert small["nothing"] == large["nothing"] and small["again"] == large["again"]
    # A batch writes its reminders, notifications and outbox rows: three statements. The digest rides
    # in the last batch (50 + 1 reminders: one batch; 500 + 1: six).
    assert large["all_due"] - small["all_due"] <= 3 * (math.ceil(501 / 100) - 1), (small, large)


def test_nothing_due_reads_no_contribution_rows(factory, db):
    """Far from any due date the candidate query returns nothing (the contributions are not loaded)."""
    build(factory, db, 20, 5, due=date(2025, 3, 31))
    result = sweep(at(2025, 1, 6, 9, 5))
    assert result.candidates == 0 and [q.kind for q in result.queued] == ["digest"]


# ------------------------------------------------------------------ the ranges agree with the policy


SETTINGS = [
    PolicySettings(),
    PolicySettings(before_days=(10, 2), on_due_day=False, overdue_every=1, overdue_max=3, escalate_after=0),
    PolicySettings(before_days=(), overdue_every=3, overdue_max=2, escalate_after=8, backlog_days=1,
                   backlog_max=5),
    PolicySettings(before_days=(1,), overdue_max=0, escalate_after=1, backlog_days=0),
]


def _in(r, day: date) -> bool:
    return (r.first is None or r.first <= day) and day <= r.last


@pytest.mark.parametrize("settings", SETTINGS, ids=["default", "custom", "sparse", "minimal"])
def test_stage_ranges_agree_with_the_policy_day_by_day(settings):
    cal = WorkCalendar()
    today = date(2025, 1, 2)
    # Through 春节 2025 (28 January to 4 February) and its 调休 Saturdays and Sundays.
    while today <= date(2025, 2, 20):
        if cal.is_working_day(today):
            stages = contribution_stages(today, settings, cal)
            for offset in range(-120, 90):
                due = today + timedelta(days=offset)
                for state in REMINDABLE_STATES:
                    want = {(r.kind, r.occurrence) for r in contribution_reminders(
                        Item(1, state, due), today, settings, cal)}
                    got = {(r.kind, f"{r.prefix}{due.isoformat()}{r.suffix}") for r in stages
                           if state in r.states and _in(r, due)}
                    assert got == want, (today, due)
            waits = waiting_stages(today, settings, cal)
            for offset in range(-90, 1):
                day = today - timedelta(days=-offset)
                moment = datetime.combine(day, datetime.min.time()).replace(hour=3)
                since = moment.strftime("%Y%m%dT%H%M%S")
                for state, rule in (("submitted", backlog_reminder), ("unit_review", unit_review_reminder)):
                    found = rule(Item(1, state, None, day, moment), today, settings, cal)
                    want = {(found.kind, found.occurrence)} if found else set()
                    got = {(r.kind, f"{r.prefix}{since}{r.suffix}") for r in waits
                           if state in r.states and _in(r, day)}
                    assert got == want, (today, day, state)
        today += timedelta(days=1)


# ------------------------------------------------------------------ the digest, counted in SQL


def test_digest_counts_in_sql(factory, db):
    cycle = build(factory, db, 30, 2, due=date(2025, 1, 6))  # 60 drafts, overdue on 13 January
    other = factory.section(cycle, "其他章节")
    unit = db.session.scalars(select(Unit).where(Unit.code == "bu0")).one()
    waiting = factory.contribution(factory.assignment(other, unit), state="submitted")
    waiting.submitted_at = datetime(2025, 1, 6, 2, 0)  # Monday 6 January, 10:00 local
    db.session.commit()
    sweep(at(2025, 1, 13, 9, 5))
    digest = db.session.scalars(select(OutboxMessage).join(Reminder).where(Reminder.kind == "digest")).one()
    assert "共61份材料：起草中60份，待单位审核0份，待审核1份" in digest.body
    assert "待审核超过期限的材料：1份" in digest.body
    assert "已逾期未提交（60份）" in digest.body
    assert "1. 单位000" in digest.body and "已逾期5个工作日" in digest.body
    assert "……另有10份" in digest.body


# ------------------------------------------------------------------ delivery in batches


def test_delivery_statements_per_message(factory, db, app, smtp):
    build(factory, db, 30, 10, due=date(2025, 1, 10))
    sweep(at(2025, 1, 3, 9, 5))
    pending = count(db, OutboxMessage, OutboxMessage.status == "pending")
    assert pending == 301
    db.session.rollback()
    with statements(db) as seen:
        result = deliver(at(2025, 1, 3, 9, 6), limit=1000)
    assert result.sent == 301 and len(smtp.messages) == 301
    assert len({m["X-Fazhi-Outbox-Id"] for m in smtp.messages}) == 301
    # Per 50 claimed: BEGIN and the claim, BEGIN and four reads for the whole batch; then each
    # outcome is written right after its send, one UPDATE a message (and BEGIN on SQLite), so that
    # a crash sends again at most the message in flight. It was about 8 statements a message.
    batches = math.ceil(301 / 50) + 1  # the last claim finds nothing
    work = [s for s in seen if not s.lstrip().upper().startswith("BEGIN")]
    assert len(work) <= 1 + 301 + batches * (1 + 5), len(work)
    recorded = [s for s in work if s.lstrip().startswith("UPDATE outbox_message")
                and "WHERE outbox_message.id = " in s]
    assert len(recorded) == 301, len(recorded)
    assert len(seen) <= 2 + 2 * 301 + batches * (2 + 6), len(seen)
    assert count(db, OutboxMessage, OutboxMessage.status == "sent") == 301


def test_delivery_cancels_a_batch_in_bulk(factory, db, app, smtp):
    build(factory, db, 10, 10, due=date(2025, 1, 10))
    sweep(at(2025, 1, 3, 9, 5))
    db.session.execute(Contribution.__table__.update().values(state="submitted"))
    db.session.commit()
    result = deliver(at(2025, 1, 3, 9, 6))
    assert result.cancelled == 100 and result.sent == 1  # the digest still goes out
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.status == "cancelled")).all()
    assert len(rows) == 100 and all("无需再催报" in r.last_error for r in rows)


# ------------------------------------------------------------------ two bulk sweeps racing (PostgreSQL)


WORKER = r"""
import json, os, time
from datetime import datetime
from fazhi_flow import create_app
from fazhi_flow.reminders.jobs import sweep
app = create_app("testing")
barrier = os.environ["WORKER_BARRIER"]
print("ready", flush=True)
while not os.path.exists(barrier):
    time.sleep(0.01)
with app.app_context():
    result = sweep(datetime.fromisoformat(os.environ["WORKER_MOMENT"]), use_lock=False)
print(json.dumps({"queued": len(result.queued), "candidates": result.candidates,
                  "skipped": result.skipped_existing}), flush=True)
"""


def test_two_bulk_sweeps_racing_queue_each_reminder_once(factory, db, app, tmp_path):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (row locks on the unique key): set FAZHI_TEST_DATABASE_URL to run it")
    build(factory, db, 40, 10, due=date(2025, 1, 10))
    n = 400
    db.session.rollback()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    holder = create_engine(url)
    barrier = tmp_path / "go"
    env = dict(os.environ, FAZHI_DATABASE_URL=url, WORKER_BARRIER=str(barrier),
               WORKER_MOMENT=at(2025, 1, 3, 9, 5).isoformat(), PYTHONPATH=str(ROOT))
    procs = []
    try:
        with holder.connect() as conn:
            # Both sweeps select their candidates, then wait at their first INSERT into reminder
            # until this lock goes: they then write the same keys at the same moment.
            trans = conn.begin()
            conn.execute(text("LOCK TABLE reminder IN SHARE MODE"))
            procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=str(ROOT)) for _ in range(2)]
            for p in procs:
                assert p.stdout.readline().strip() == "ready", p.stderr.read()
            barrier.write_text("go")
            deadline = time.time() + 120
            waiting = 0
            # A fresh transaction each time: pg_stat_activity is a snapshot per transaction.
            with holder.connect().execution_options(isolation_level="AUTOCOMMIT") as watch:
                while time.time() < deadline:
                    waiting = watch.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO reminder%'")).scalar()
                    if waiting >= 2:
                        break
                    time.sleep(0.05)
            assert waiting == 2, "both sweeps should be waiting to insert their reminders"
            trans.rollback()
        outs = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            assert p.returncode == 0, stderr
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        holder.dispose()
    # Both selected every draft before either had written: the unique key alone kept them apart.
    assert [o["candidates"] for o in outs] == [n, n]
    assert sum(o["queued"] for o in outs) == n + 1
    db.session.expire_all()
    keys = db.session.scalars(select(Reminder.key)).all()
    assert len(keys) == len(set(keys)) == n + 1
    assert count(db, Notification) == n + 1
    assert count(db, OutboxMessage) == n + 1
    per_reminder = db.session.execute(select(OutboxMessage.reminder_id, func.count())
                                      .group_by(OutboxMessage.reminder_id)).all()
    assert len(per_reminder) == n + 1 and all(c == 1 for _rid, c in per_reminder)
