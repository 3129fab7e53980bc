"""Two scheduler processes on one database: every reminder queued and sent exactly once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.workdays import WorkCalendar
from fazhi_flow.reminders.jobs import SWEEP_LOCK_KEY, sweep
from fazhi_flow.reminders.policy import Item, PolicySettings, due_reminders

from .helpers import at

ROOT = Path(__file__).resolve().parents[2]
MOMENTS = [at(2025, 1, d, 9, 0) for d in (6, 7, 8, 9, 10, 13, 14, 15, 16, 17)]

WORKER = r"""
import json, os, sys, time
from datetime import datetime
from fazhi_flow import create_app
from fazhi_flow.reminders.jobs import deliver, sweep
app = create_app("testing")
use_lock = os.environ["WORKER_LOCK"] == "1"
moments = [datetime.fromisoformat(m) for m in json.loads(os.environ["WORKER_MOMENTS"])]
barrier = os.environ["WORKER_BARRIER"]
print("ready", flush=True)
while not os.path.exists(barrier):
    time.sleep(0.01)
out = {"queued": 0, "locked_out": 0, "sent": 0}
with app.app_context():
    for moment in moments:
        result = sweep(moment, use_lock=use_lock)
        out["queued"] += len(result.queued)
        out["locked_out"] += result.locked_out
        out["sent"] += deliver(moment).sent
print(json.dumps(out), flush=True)
"""


def build_many(factory, db, units=6, sections=4):
    w = factory.world()
    unit_list = [w.unit] + [factory.unit(f"测试单位甲{i}") for i in range(units - 1)]
    for unit in unit_list[1:]:
        factory.user("liaison", unit=unit)
    secs = [w.section] + [factory.section(w.cycle, f"章节{i}", reviewers=[w.reviewer]) for i in range(sections - 1)]
    n = 0
    for si, section in enumerate(secs):
        for ui, unit in enumerate(unit_list):
            if section is w.section and unit is w.unit:
                continue
            due = date(2025, 1, 8) + timedelta(days=(si * 3 + ui) % 9)
            factory.contribution(factory.assignment(section, unit, due=due))
            n += 1
    db.session.commit()
    return w


def expected_keys(db, cycle_id):
    from fazhi_flow.models import Contribution

    cal = WorkCalendar()
    items = [Item(c.id, c.state, c.assignment.effective_due())
             for c in db.session.scalars(select(Contribution).where(Contribution.cycle_id == cycle_id))]
    keys = set()
    for moment in MOMENTS:
        keys |= {r.key for r in due_reminders(cycle_id, items, moment, PolicySettings(), cal)}
    return keys


@pytest.mark.parametrize("use_lock", [True, False], ids=["advisory-lock", "unique-keys-only"])
def test_two_scheduler_processes_send_each_reminder_once(factory, db, app, smtp, tmp_path, use_lock):
    w = build_many(factory, db)
    expected = expected_keys(db, w.cycle.id)
    assert len(expected) > 60
    db.session.rollback()  # on SQLite even a read transaction holds the write lock (BEGIN IMMEDIATE)
    barrier = tmp_path / "go"
    env = dict(os.environ, FAZHI_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               FAZHI_MAIL_HOST="127.0.0.1", FAZHI_MAIL_PORT=str(smtp.port), FAZHI_MAIL_SECURITY="none",
               FAZHI_MAIL_USERNAME="", WORKER_LOCK="1" if use_lock else "0", WORKER_BARRIER=str(barrier),
               WORKER_MOMENTS=json.dumps([m.isoformat() for m in MOMENTS]), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=str(ROOT)) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        barrier.write_text("go")
        outs = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            assert p.returncode == 0, stderr
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    db.session.expire_all()
    keys = list(db.session.scalars(select(Reminder.key)))
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert sum(o["queued"] for o in outs) == len(expected)
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.cause == "reminder")).all()
    assert rows and all(r.status in ("sent", "cancelled") for r in rows)
    sent_ids = Counter(m["X-Fazhi-Outbox-Id"] for m in smtp.messages if m["X-Fazhi-Cause"] == "reminder")
    assert max(sent_ids.values()) == 1, "an outbox message was sent twice"
    assert set(sent_ids) == {str(r.id) for r in rows if r.status == "sent"}
    assert sum(o["sent"] for o in outs) == len(sent_ids)


def _is_postgres(db) -> bool:
    return db.engine.dialect.name == "postgresql"


def test_advisory_lock_keeps_a_second_sweep_out(factory, db, app):
    if not _is_postgres(db):
        if os.environ.get("CI", "").lower() == "true" and os.environ.get("FAZHI_TEST_DATABASE_URL"):
            pytest.fail("FAZHI_TEST_DATABASE_URL is set in CI but the test database is not PostgreSQL")
        pytest.skip("PostgreSQL only (advisory locks): set FAZHI_TEST_DATABASE_URL to run it")
    factory.world()
    db.session.commit()
    other = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with other.connect() as conn:
            trans = conn.begin()
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})
            held = sweep(at(2025, 1, 7, 9))
            assert held.locked_out and held.queued == []
            trans.rollback()  # the transaction-level lock ends with the transaction
        free = sweep(at(2025, 1, 7, 9))
        assert not free.locked_out and len(free.queued) == 2
    finally:
        other.dispose()
