"""The database goes away in the middle of an SMTP exchange, several times, and the deliveries are
counted.

A real aiosmtpd server takes each message; on some of them, before answering the DATA, it cuts the
deliverer off from the database, so the server holds the message while the deliverer cannot record
that it was sent. On PostgreSQL the database stops accepting connections and the deliverer's backend
is terminated (pg_terminate_backend from another connection); on SQLite another connection takes the
write lock, so the deliverer's write fails with "database is locked" (the deliverer waits 0.3 s, not
the usual 15 s, to keep the test short). Once the database is back and the abandoned claims are
old enough, the deliverer runs again.

Counted: every outbox row reached the server under one Message-ID only, however often it was sent;
a mail client that drops duplicates by Message-ID shows every message exactly once.
"""
from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.reminders.jobs import deliver, stale_claim
from fazhi_flow.timeutil import utcnow

from .conftest import RecordingHandler, SmtpServer, free_port

TOTAL = 40
# The server's arrival counts at which the database goes away (each ends one delivery run). The
# 13th arrival is the 12th's message sent again, cut off once more.
CUT_AT = (3, 12, 13, 27, 40)


class CuttingHandler(RecordingHandler):
    """Records every message; at the arrivals in ``cut_at`` calls ``cut`` before answering 250."""

    def __init__(self, cut_at, cut):
        super().__init__()
        self.cut_at, self.cut = set(cut_at), cut
        self.cuts = 0

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.messages) in self.cut_at:
            self.cut()
            self.cuts += 1
        return answer


class PostgresOutage:
    """Takes the test database away from every connection but its own, and gives it back."""

    def __init__(self, url: str):
        url = make_url(url)
        self.name = url.database
        # From the server's maintenance database: a database cannot refuse its own connections.
        self.engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        self.conn = self.engine.connect()
        self.down = False

    def cut(self):
        self.conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
        self.down = True
        killed = self.conn.scalar(text(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()) AS t"), {"name": self.name})
        assert killed >= 1, "the deliverer had no connection to terminate"

    def restore(self):
        if self.down:
            self.conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))
            self.down = False

    def close(self):
        self.restore()
        self.conn.close()
        self.engine.dispose()


class SqliteOutage:
    """Holds SQLite's write lock from another connection until ``restore``."""

    def __init__(self, url: str, engine):
        self.conn = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
        self.engine, self.down = engine, False
        # The deliverer gives up on the lock after 0.3 s instead of the usual 15 s.
        event.listen(engine, "checkout", self._short_wait)

    @staticmethod
    def _short_wait(dbapi_connection, _record, _proxy):
        dbapi_connection.execute("PRAGMA busy_timeout=300")

    def cut(self):
        self.conn.execute("BEGIN EXCLUSIVE")
        self.down = True

    def restore(self):
        if self.down:
            self.conn.execute("ROLLBACK")
            self.down = False

    def close(self):
        self.restore()
        self.conn.close()
        event.remove(self.engine, "checkout", self._short_wait)


@pytest.fixture()
def outage(app, db, is_postgres):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    it = PostgresOutage(url) if is_postgres else SqliteOutage(url, db.engine)
    yield it
    it.close()
    db.session.remove()
    db.engine.dispose()  # connections that saw the outage (or the short lock wait) go


@pytest.fixture()
def server(app, outage):
    srv = SmtpServer(free_port())
    srv.handler = CuttingHandler(CUT_AT, outage.cut)
    srv.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=srv.port, MAIL_SECURITY="none", MAIL_USERNAME="",
                      MAIL_TIMEOUT=5)
    yield srv
    srv.stop()
    app.config.update(saved)


def queue_mails(db, n: int) -> list[int]:
    due = utcnow() - timedelta(minutes=1)
    db.session.execute(insert(OutboxMessage), [
        {"channel": "email", "address": f"lianluoyuan{i}@unit{i}.example.test",
         "subject": f"退回通知：第{i + 1}部分材料", "body": "您提交的材料已被退回，请按审核意见修改后重新提交。",
         "cause": "transition:return", "status": "pending", "attempts": 0, "next_attempt_at": due}
        for i in range(n)])
    db.session.commit()
    ids = list(db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))
    db.session.rollback()
    return ids


def statuses(db) -> Counter:
    db.session.expire_all()
    found = Counter(dict(db.session.execute(select(OutboxMessage.status, func.count())
                                            .group_by(OutboxMessage.status)).all()))
    db.session.rollback()
    return found


def test_database_lost_mid_smtp_exchange_each_message_shown_once(app, db, outage, server):
    ids = queue_mails(db, TOTAL)
    handler = server.handler
    runs = failed_runs = 0
    while statuses(db) != Counter({"sent": TOTAL}):
        runs += 1
        assert runs <= 2 * len(CUT_AT) + 3, f"not all sent after {runs} runs: {statuses(db)}"
        cuts = handler.cuts
        try:
            deliver()
        except DBAPIError:
            failed_runs += 1
        finally:
            # The database comes back.
            outage.restore()
            db.session.rollback()
        if handler.cuts > cuts:
            # The next run happens after the dead run's claims count as abandoned.
            db.session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending").values(
                claimed_at=OutboxMessage.claimed_at - stale_claim(app.config) - timedelta(seconds=1)))
            db.session.commit()

    assert handler.cuts == len(CUT_AT)
    # The cuts happened (each ended its run) and cost at most the message in flight each.
    assert failed_runs == len(CUT_AT)
    received = handler.messages
    per_row: dict[int, set[str]] = defaultdict(set)
    for msg in received:
        per_row[int(msg["X-Fazhi-Outbox-Id"])].add(msg["Message-ID"])
    assert set(per_row) == set(ids)
    # Every row under one Message-ID, every Message-ID one row.
    assert all(len(message_ids) == 1 for message_ids in per_row.values()), per_row
    assert len({next(iter(m)) for m in per_row.values()}) == TOTAL
    # Sent twice: exactly the messages the server took while the database was away.
    deliveries = Counter(int(m["X-Fazhi-Outbox-Id"]) for m in received)
    in_flight = {int(received[n - 1]["X-Fazhi-Outbox-Id"]) for n in CUT_AT}
    assert {i for i, n in deliveries.items() if n > 1} == in_flight
    assert len(received) == TOTAL + len(CUT_AT)
    # What a client deduplicating by Message-ID shows: each message once.
    shown = {}
    for msg in received:
        shown.setdefault(msg["Message-ID"], msg)
    assert sorted(int(m["X-Fazhi-Outbox-Id"]) for m in shown.values()) == sorted(ids)
    assert Counter(m["Subject"] for m in shown.values()) == Counter(
        f"退回通知：第{i + 1}部分材料" for i in range(TOTAL))
