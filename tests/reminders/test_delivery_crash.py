"""A delivery process killed mid-batch: each send's outcome is committed right after it, so the next
run after STALE_CLAIM sends again at most the one message that was in flight. Real aiosmtpd server,
real `fazhi-flow deliver` process ended with SIGKILL."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, update

from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.reminders import jobs
from fazhi_flow.reminders.jobs import STALE_CLAIM, deliver
from fazhi_flow.timeutil import utcnow

from .conftest import RecordingHandler, SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]
FAZHI_FLOW = shutil.which("fazhi-flow") or str(Path(sys.executable).parent / "fazhi-flow")


class KillingHandler(RecordingHandler):
    """Records mail; on the ``kill_at``-th message it kills the sending process before answering,
    so the server holds the message while the sender never learns it was accepted.
    With ``delay`` each DATA answer waits that long (a slow server); ``on_data`` is called with the
    outbox id of each message as it arrives."""

    def __init__(self):
        super().__init__()
        self.kill_at: int | None = None
        self.proc: subprocess.Popen | None = None
        self.delay = 0.0
        self.on_data = None

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if self.on_data is not None:
            self.on_data(self.messages[-1]["X-Fazhi-Outbox-Id"])
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.kill_at is not None and len(self.messages) == self.kill_at and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        return answer


@pytest.fixture()
def server(app):
    srv = SmtpServer(free_port())
    srv.handler = KillingHandler()
    srv.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=srv.port, MAIL_SECURITY="none", MAIL_USERNAME="",
                      MAIL_TIMEOUT=5)
    yield srv
    srv.stop()
    app.config.update(saved)


def queue_mails(db, n: int) -> list[int]:
    """``n`` pending e-mails due a minute ago, in id order."""
    due = utcnow() - timedelta(minutes=1)
    db.session.execute(insert(OutboxMessage), [
        {"channel": "email", "address": f"u{i}@example.test", "subject": f"退回通知{i}", "body": "请修改后重新提交。",
         "cause": "transition:return", "status": "pending", "attempts": 0, "next_attempt_at": due}
        for i in range(n)])
    db.session.commit()
    ids = list(db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    db.session.rollback()  # on SQLite even a read holds the write lock (BEGIN IMMEDIATE)
    return ids


def statuses(db) -> Counter:
    db.session.expire_all()
    found = Counter(dict(db.session.execute(select(OutboxMessage.status, func.count())
                                            .group_by(OutboxMessage.status)).all()))
    db.session.rollback()  # on SQLite even a read holds the write lock (BEGIN IMMEDIATE)
    return found


def age_claims(db, by: timedelta) -> None:
    """Move the claims back by ``by``: the next run happens that much later on the wall clock."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                       .values(claimed_at=OutboxMessage.claimed_at - by))
    db.session.commit()


@pytest.mark.skipif(not os.path.exists(FAZHI_FLOW), reason="the package is not installed (pip install -e .)")
@pytest.mark.parametrize("kill_at", [7, 27])
def test_killed_delivery_resends_only_the_message_in_flight(app, db, server, tmp_path, kill_at):
    total = 60  # more than one claim batch: the killed process holds only its first batch
    assert total > jobs.CLAIM_BATCH > kill_at
    ids = queue_mails(db, total)
    handler = server.handler
    handler.kill_at = kill_at
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env.update(FAZHI_ENV="testing", FAZHI_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               FAZHI_INSTANCE_PATH=str(tmp_path), FAZHI_MAIL_HOST="127.0.0.1",
               FAZHI_MAIL_PORT=str(server.port), FAZHI_MAIL_SECURITY="none", FAZHI_MAIL_USERNAME="",
               FAZHI_LOG_FORMAT="text", PYTHONPATH=str(ROOT))
    handler.proc = subprocess.Popen([FAZHI_FLOW, "deliver"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path))
    try:
        out, _ = handler.proc.communicate(timeout=120)
    finally:
        if handler.proc.poll() is None:
            handler.proc.kill()
            handler.proc.wait()
    assert handler.proc.returncode == -signal.SIGKILL, out
    handler.kill_at = None
    assert len(handler.messages) == kill_at
    # Every message the server answered was recorded at once; the one in flight and the rest of
    # the batch are still claimed by the dead process.
    assert statuses(db) == Counter({"sent": kill_at - 1, "sending": jobs.CLAIM_BATCH - kill_at + 1,
                                    "pending": total - jobs.CLAIM_BATCH})

    # A run before STALE_CLAIM leaves the dead process's claims alone.
    result = deliver()
    assert result.sent == total - jobs.CLAIM_BATCH
    assert max(Counter(m["X-Fazhi-Outbox-Id"] for m in handler.messages).values()) == 1

    # After STALE_CLAIM the claims are released and sent: the message in flight a second time,
    # nothing else.
    age_claims(db, STALE_CLAIM + timedelta(minutes=1))
    result = deliver()
    assert result.sent == jobs.CLAIM_BATCH - kill_at + 1
    assert statuses(db) == Counter({"sent": total})
    counts = Counter(int(m["X-Fazhi-Outbox-Id"]) for m in handler.messages)
    assert set(counts) == set(ids)
    assert [i for i, n in counts.items() if n > 1] == [ids[kill_at - 1]]
    assert counts[ids[kill_at - 1]] == 2
    assert len(handler.messages) == total + 1


def test_a_slow_batch_keeps_its_claims_and_skips_one_taken_over(app, db, server, monkeypatch):
    """Claims are renewed while a slow batch is sent; a message whose claim another deliverer took
    over (released as abandoned, then claimed again) is left to it, not sent a second time."""
    monkeypatch.setattr(jobs, "CLAIM_REFRESH", timedelta(seconds=0.3))
    ids = queue_mails(db, 10)
    handler = server.handler
    handler.delay = 0.15
    other = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    claims: dict[int, object] = {}
    taken = ids[-2:]
    foreign = utcnow() + timedelta(seconds=30)  # the other deliverer's claim time

    def on_data(outbox_id):
        with other.begin() as conn:
            claims[int(outbox_id)] = conn.scalar(select(OutboxMessage.claimed_at)
                                                 .where(OutboxMessage.id == int(outbox_id)))
            if len(handler.messages) == 3:
                conn.execute(update(OutboxMessage).where(OutboxMessage.id.in_(taken))
                             .values(status="sending", claimed_at=foreign))

    handler.on_data = on_data
    try:
        result = deliver()
    finally:
        other.dispose()
    sent = [int(m["X-Fazhi-Outbox-Id"]) for m in handler.messages]
    assert sent == ids[:-2] and result.sent == 8
    # The claims of the messages still waiting were renewed as the batch went on.
    assert claims[ids[7]] > claims[ids[0]]
    db.session.expire_all()
    rows = {r.id: r for r in db.session.scalars(select(OutboxMessage))}
    assert all(rows[i].status == "sent" and rows[i].claimed_at is None for i in ids[:-2])
    assert all(rows[i].status == "sending" and rows[i].claimed_at == foreign for i in taken)


def test_a_claim_takes_only_its_batch(app, db, server):
    """One claim marks at most its batch as being sent, on PostgreSQL too (where a LIMIT subquery
    inside the UPDATE could be run again for every row and claim the whole queue): what a dead
    deliverer holds, and may send twice, stays bounded by the batch."""
    queue_mails(db, 3 * jobs.CLAIM_BATCH + 7)
    rows, _stamp = jobs._claim_batch(utcnow(), jobs.CLAIM_BATCH)
    assert len(rows) == jobs.CLAIM_BATCH
    assert statuses(db) == Counter({"sending": jobs.CLAIM_BATCH, "pending": 2 * jobs.CLAIM_BATCH + 7})
    result = deliver(limit=jobs.CLAIM_BATCH + 7)
    assert result.sent == jobs.CLAIM_BATCH + 7
    assert statuses(db) == Counter({"sent": jobs.CLAIM_BATCH + 7, "sending": jobs.CLAIM_BATCH,
                                    "pending": jobs.CLAIM_BATCH})
