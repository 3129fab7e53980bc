"""What the scheduler writes to the log: one summary line per job run, one line per failed message, and
while the database cannot be reached one line per attempt (no traceback), all stamped in Beijing time."""
from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fazhi_flow import create_app
from fazhi_flow.extensions import db as _db
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.ops import logs
from fazhi_flow.reminders.scheduler import beat, run_deliver, run_sweep

from .conftest import free_port

BEIJING = timezone(timedelta(hours=8))
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+08:00) (\w+) (\S+): (\S+) ")


@pytest.fixture()
def text_logs(app):
    logs.configure("INFO", "text", app.config["TIMEZONE"])
    yield
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


@pytest.fixture()
def server_in_new_york(monkeypatch):
    """The server's own zone is not Beijing: what is shown must not depend on it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def parsed(err: str) -> list[tuple[datetime, str, str, str, str]]:
    """(time, level, logger, event, whole line) of every line; a line that is not a record (a
    traceback's continuation) fails the match and shows up as such."""
    out = []
    for line in err.splitlines():
        match = STAMP.match(line)
        assert match, f"not one record per line: {line!r}"
        out.append((datetime.fromisoformat(match.group(1)), match.group(2), match.group(3), match.group(4), line))
    return out


def field(line: str, key: str) -> str:
    match = re.search(rf" {key}=(\"(?:[^\"\\\\]|\\\\.)*\"|\S+)", line)
    assert match, f"{key} missing in {line!r}"
    return match.group(1).strip('"')


def test_a_delivery_run_writes_its_counts_and_each_failure(app, db, smtp, capsys, text_logs,
                                                           server_in_new_york):
    good = OutboxMessage(channel="email", address="sfj_ll@example.test", subject="【催报提醒】材料今天截止",
                         body="请于今天提交审核。", cause="reminder:test")
    gone = OutboxMessage(channel="email", address="left@example.test", subject="【催报提醒】材料今天截止",
                         body="请于今天提交审核。", cause="reminder:test")
    db.session.add_all([gone, good])
    db.session.commit()
    smtp.handler.rcpt_replies.append("550 5.1.1 mailbox unavailable")  # the first one tried is refused
    capsys.readouterr()
    before = datetime.now(BEIJING)
    run_deliver(app)
    records = parsed(capsys.readouterr().err)
    jobs = [r for r in records if r[3] == "job"]
    failures = [r for r in records if r[3] == "delivery_failed"]
    assert len(jobs) == 1 and len(failures) == 1, records
    summary = jobs[0][4]
    assert (field(summary, "name"), field(summary, "ok")) == ("deliver", "True")
    assert (field(summary, "sent"), field(summary, "failed"), field(summary, "dead")) == ("1", "1", "1")
    assert len(smtp.messages) == 1
    db.session.expire_all()
    dead = db.session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")).one()
    line = failures[0][4]
    assert failures[0][1] == "WARNING" and field(line, "message") == str(dead.id)
    assert field(line, "outcome") == "dead" and "请于今天提交审核" not in line  # never a body
    # Beijing time whatever the server's zone.
    assert abs((jobs[0][0] - before).total_seconds()) < 60 and jobs[0][0].utcoffset() == timedelta(hours=8)


def test_a_sweep_run_writes_one_line_with_its_counts(app, world, capsys, text_logs):
    capsys.readouterr()
    run_sweep(app)
    records = parsed(capsys.readouterr().err)
    [job] = [r for r in records if r[3] == "job"]
    assert field(job[4], "name") == "sweep" and field(job[4], "queued").isdigit()
    assert field(job[4], "skipped").isdigit()


def _attempts(application, rounds: int) -> list:
    for _ in range(rounds):
        run_deliver(application)
        run_sweep(application)
        beat(application)


def _assert_one_line_per_attempt(err: str, rounds: int) -> None:
    assert "Traceback" not in err and "[SQL:" not in err, err
    records = parsed(err)
    assert [(r[3], field(r[4], "name") if r[3] == "job" else "") for r in records] == \
        [("job", "deliver"), ("job", "sweep"), ("heartbeat", "")] * rounds, err
    for _, level, logger, _, line in records:
        assert level in ("ERROR", "WARNING") and logger == "fazhi_flow.reminders.scheduler"
        assert field(line, "ok") == "False" and "database unavailable" in line


def test_database_refusing_connections_gives_one_line_per_attempt(capsys, monkeypatch, server_in_new_york,
                                                                   text_logs):
    """The database server is stopped: each attempt of each job is one line saying so."""
    port = free_port()
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"postgresql+psycopg://fazhi@127.0.0.1:{port}/fazhi")
    down = create_app("testing")
    try:
        capsys.readouterr()
        _attempts(down, 3)
        _assert_one_line_per_attempt(capsys.readouterr().err, 3)
    finally:
        with down.app_context():
            _db.engine.dispose()


class TcpProxy:
    """A TCP relay in front of the database: ``cut()`` drops every connection and stops listening
    (the server going away under open connections), ``restore()`` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream, self.port = upstream, free_port()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()

    def restore(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        try:  # wakes the blocked accept(); close() alone leaves the port listening
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()


def test_database_going_away_under_open_connections(database_url, db, app, capsys, monkeypatch, text_logs):
    """PostgreSQL through a relay: the scheduler works, the relay drops all connections (as a
    restarting server does), each attempt is one line, and the next run after its return is ok."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs PostgreSQL (a server that can go away under open connections)")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.restore()
    monkeypatch.setenv("FAZHI_DATABASE_URL",
                       url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    relayed = create_app("testing")
    try:
        capsys.readouterr()
        _attempts(relayed, 1)  # pooled connections are open now
        assert "ok=False" not in capsys.readouterr().err
        proxy.cut()
        _attempts(relayed, 3)
        _assert_one_line_per_attempt(capsys.readouterr().err, 3)
        proxy.restore()
        run_deliver(relayed)
        [(_, _, _, _, line)] = parsed(capsys.readouterr().err)
        assert field(line, "ok") == "True"
    finally:
        proxy.cut()
        with relayed.app_context():
            _db.engine.dispose()


def test_an_error_the_database_answered_is_one_line_named_as_such(app, db, capsys, text_logs):
    """A deadlock the server reports (SQLSTATE 40P01) is no outage: one line, called a database error."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    from fazhi_flow.reminders.scheduler import run_job

    def deadlocked(now):
        raise OperationalError("UPDATE outbox_message SET status=%(s)s", {"s": "sent"},
                               psycopg.errors.DeadlockDetected("deadlock detected\nDETAIL: Process 1 waits"))

    db.session.commit()
    capsys.readouterr()
    run_job(app, "deliver", deadlocked, lambda result: {})
    err = capsys.readouterr().err
    [(_, level, _, what, line)] = parsed(err)
    assert (level, what, field(line, "ok")) == ("ERROR", "job", "False")
    assert 'error="database error: deadlock detected"' in line and "UPDATE" not in err
