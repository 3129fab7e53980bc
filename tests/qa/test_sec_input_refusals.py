"""Refused requests are audited: a 403 and a failed CSRF check leave a row (who, address, path, reason),
at most one per user, address and kind a minute, and a busy database never breaks the refusal page."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text, update

from fazhi_flow.models import AuditEvent, Unit


def _rows(db, action):
    db.session.expire_all()
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()
    db.session.commit()  # end the read, so that the next request may write (SQLite)
    return rows


@pytest.fixture()
def csrf_on(app):
    """Call to turn CSRF protection on (after logging in through the form) for the rest of the test."""
    yield lambda: app.config.update(WTF_CSRF_ENABLED=True)
    app.config["WTF_CSRF_ENABLED"] = False


def test_forbidden_page_is_audited_once_a_minute(as_user, world, db):
    client = as_user(world.liaison)
    liaison_id = world.liaison.id
    for _ in range(5):
        response = client.get("/admin/users")
        assert response.status_code == 403
        assert "没有权限" in response.get_data(as_text=True)
    rows = _rows(db, "refused.forbidden")
    assert len(rows) == 1
    assert (rows[0].actor_id, rows[0].ip, rows[0].target) == (liaison_id, "127.0.0.1", "/admin/users")
    assert rows[0].detail["method"] == "GET"
    # Another address is another row; so is the same address a minute later.
    client.get("/admin/users", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert [r.ip for r in _rows(db, "refused.forbidden")] == ["127.0.0.1", "10.0.0.7"]
    # Audit rows are immutable to the application; the clock is turned back beside it.
    aged = rows[0].created_at - timedelta(seconds=61)
    db.session.close()
    with db.engine.begin() as conn:
        conn.execute(update(AuditEvent.__table__).where(AuditEvent.__table__.c.id == rows[0].id)
                     .values(created_at=aged))
    client.get("/admin/users")
    assert len(_rows(db, "refused.forbidden")) == 3


def test_refusal_of_a_domain_rule_is_audited_with_its_message(as_user, world, db):
    # A liaison of another unit asking for this unit's material: PermissionDenied / 403 or 404.
    client = as_user(world.liaison)
    response = client.post(f"/admin/cycles/{world.cycle.id}/compile")
    assert response.status_code in (303, 403)
    rows = _rows(db, "refused.forbidden")
    assert len(rows) == 1 and rows[0].detail["method"] == "POST"


def test_csrf_failure_is_audited_and_changes_nothing(as_user, world, db, csrf_on):
    client = as_user(world.admin)
    csrf_on()
    admin_id = world.admin.id
    units = db.session.scalar(select(func.count(Unit.id)))
    for _ in range(3):
        response = client.post("/admin/units/new", data={"code": "newu", "name": "新单位", "kind": "other",
                                                         "csrf_token": "forged"})
        assert response.status_code == 400
        assert "页面已过期" in response.get_data(as_text=True)
    rows = _rows(db, "refused.csrf")
    assert len(rows) == 1
    assert (rows[0].actor_id, rows[0].target, rows[0].detail["method"]) == (admin_id, "/admin/units/new", "POST")
    assert "CSRF" in rows[0].detail["reason"]
    assert db.session.scalar(select(func.count(Unit.id))) == units


def test_csrf_failure_of_the_editor_is_audited_too(as_user, world, db, csrf_on):
    # The editor answers an expired page with its own page (the typed text kept); it is audited all the same.
    client = as_user(world.liaison)
    csrf_on()
    response = client.post(f"/tasks/{world.contribution.id}", data={"body": "新的文字", "version": "1",
                                                                     "csrf_token": "expired"})
    assert response.status_code == 400 and "新的文字" in response.get_data(as_text=True)
    assert len(_rows(db, "refused.csrf")) == 1


def test_anonymous_csrf_failure_is_audited_without_a_user(client, db, csrf_on):
    csrf_on()
    for _ in range(3):
        assert client.post("/login", data={"username": "x", "password": "y"}).status_code == 400
    rows = _rows(db, "refused.csrf")
    assert len(rows) == 1 and rows[0].actor_id is None and rows[0].target == "/login"


def test_control_characters_of_the_path_are_not_stored(as_user, world, db):
    client = as_user(world.liaison)
    assert client.get("/admin/users%00%E2%80%AE").status_code in (403, 404)
    for row in _rows(db, "refused.forbidden"):
        assert "\x00" not in row.target and "\u202e" not in row.target


def _hold_audit_table(database_url):
    """Another connection holding the audit table, as a long report or a stuck transaction would."""
    engine = create_engine(database_url)
    conn = engine.connect()
    conn.execute(text("LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE"))

    def release():
        conn.rollback()
        conn.close()
        engine.dispose()
    return release


def test_busy_database_does_not_break_the_refusal(as_user, world, db, database_url, is_postgres):
    if not is_postgres:
        # SQLite sessions begin with BEGIN IMMEDIATE: a held write lock stops the whole request, not
        # just its audit row, so there is no separate audit write to lose.
        pytest.skip("needs PostgreSQL (row locks apart from the request's own reads)")
    client = as_user(world.liaison)
    db.session.commit()
    release = _hold_audit_table(database_url)
    try:
        started = time.monotonic()
        response = client.get("/admin/users")
        elapsed = time.monotonic() - started
    finally:
        release()
    assert response.status_code == 403 and "没有权限" in response.get_data(as_text=True)
    assert elapsed < 15
    assert _rows(db, "refused.forbidden") == []
    assert client.get("/admin/users").status_code == 403
    assert len(_rows(db, "refused.forbidden")) == 1
