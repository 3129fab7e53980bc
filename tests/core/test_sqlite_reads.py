"""Pages read without waiting for writers: a GET begins a DEFERRED transaction on SQLite, while
requests that write (POST), the CLI and jobs begin IMMEDIATE and queue on the write lock.

Another connection holds the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an uncommitted UPDATE
of a row the page reads) while requests run in their own threads, app contexts and connections.
"""
import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fazhi_flow.database import in_read_transaction, lock_row, require_write_lock, wants_write_lock
from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Contribution
from fazhi_flow.testing import PASSWORD, FreshUserClient, login

# Well under SQLite's busy timeout (15 s): a reader that queued on the lock would still be waiting.
READ_WITHIN = 5.0


class WriteLock:
    """Hold the database's write lock from another connection until released."""

    def __init__(self, database_url: str, unit_id: int):
        url = make_url(database_url)
        self.sqlite = url.get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn = sqlite3.connect(url.database, isolation_level=None, timeout=15)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE unit SET name = name WHERE id = ?", (unit_id,))
        else:
            self.engine = create_engine(url)
            self.conn = self.engine.connect()
            self.conn.execute(text("UPDATE unit SET name = name WHERE id = :id"), {"id": unit_id})

    def release(self) -> None:
        if self.sqlite:
            self.conn.execute("ROLLBACK")
            self.conn.close()
        else:
            self.conn.rollback()
            self.conn.close()
            self.engine.dispose()


def _in_thread(fn):
    result = {}

    def run():
        started = time.monotonic()
        try:
            result["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_page_is_read_while_another_connection_holds_the_write_lock(app, db, world, database_url):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, world.liaison)
    page, unit_id = f"/tasks/{world.contribution.id}", world.unit.id
    # The test's own session must not hold a transaction (outside a request it would be IMMEDIATE).
    db.session.commit()
    lock = WriteLock(database_url, unit_id)
    try:
        thread, result = _in_thread(lambda: client.get(page))
        thread.join(READ_WITHIN)
        assert not thread.is_alive(), "the GET waited for the write lock"
        assert "error" not in result, result.get("error")
        assert result["value"].status_code == 200
        assert result["seconds"] < READ_WITHIN
    finally:
        lock.release()


def test_a_writing_request_waits_for_the_lock_and_then_succeeds(app, db, world, database_url, is_postgres):
    if is_postgres:
        pytest.skip("SQLite only: its write lock covers the whole database")
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    username, unit_id = world.liaison.username, world.unit.id
    db.session.commit()
    lock = WriteLock(database_url, unit_id)
    try:
        # A failed login writes an audit row: a POST begins IMMEDIATE and must queue, not fail.
        thread, result = _in_thread(lambda: client.post(
            "/login", data={"username": username, "password": "wrong-" + PASSWORD}))
        thread.join(1.0)
        assert thread.is_alive(), "the POST did not wait for the write lock"
    finally:
        lock.release()
    thread.join(15)
    assert "error" not in result, result.get("error")
    assert result["value"].status_code == 200


def test_transactions_outside_requests_and_of_writing_requests_take_the_lock(app, db, world, is_postgres):
    assert wants_write_lock()  # CLI, jobs, the scheduler: no request
    with app.test_request_context("/tasks/", method="POST"):
        assert wants_write_lock()
    with app.test_request_context("/tasks/", method="GET"):
        assert not wants_write_lock()
        require_write_lock()  # a GET that writes says so before its transaction begins
        assert wants_write_lock()
    if is_postgres:
        return
    db.session.commit()
    assert not in_read_transaction(db.session)


def test_lock_row_refuses_a_read_only_transaction(app, db, world, is_postgres):
    if is_postgres:
        pytest.skip("SQLite only: DEFERRED read transactions")
    db.session.commit()
    with app.test_request_context("/tasks/", method="GET"):
        with app.app_context():
            contribution = _db.session.get(Contribution, world.contribution.id)
            assert in_read_transaction(_db.session)
            with pytest.raises(RuntimeError, match="require_write_lock"):
                lock_row(contribution)
            _db.session.rollback()


def test_no_user_reload_after_a_request_commits(app, db, world):
    """after_request marks pages behind login no-store without reading the user's row again."""
    from sqlalchemy import event

    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, world.liaison)
    cid, version = world.contribution.id, world.contribution.version
    db.session.commit()
    seen = []

    def statement(_conn, _cursor, sql, *_):
        seen.append(sql)

    def committed(_conn):
        seen.append("COMMIT")

    event.listen(db.engine, "before_cursor_execute", statement)
    event.listen(db.engine, "commit", committed)
    try:
        response = client.post(f"/tasks/{cid}", data={"body": "新的草稿。", "version": version, "action": "save"})
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "commit", committed)
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert "COMMIT" in seen
    after = seen[len(seen) - seen[::-1].index("COMMIT"):]
    assert not [sql for sql in after if 'FROM "user"' in sql or "FROM user " in sql], after
