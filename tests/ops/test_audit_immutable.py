"""Audit rows and workflow transitions cannot be changed or deleted through the application: not by
changing a loaded row, not by deleting it, not by an UPDATE/DELETE statement run through the session;
and no web route accepts anything but reading them."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, select, update

from fazhi_flow.models import AuditEvent, TransitionLog
from fazhi_flow.models.audit import ImmutableRowError
from fazhi_flow.services.audit import record
from fazhi_flow.services.contributions import apply_event

AT = datetime(2025, 3, 1, 2, 0)


def _stored(db, model, ident):
    """The row as the database holds it, read beside the session (whose transaction is ended first:
    SQLite allows one writer, and the session may hold the write lock)."""
    db.session.rollback()
    table = model.__table__
    with db.engine.connect() as conn:
        return conn.execute(select(table).where(table.c.id == ident)).mappings().one_or_none()


@pytest.fixture()
def rows(world, db):
    """One audit row and one transition (a real submit through the workflow)."""
    event = record(world.admin, "user.update", f"user:{world.liaison.id}", changed=["email"])
    apply_event(world.contribution, "submit", world.liaison)
    db.session.commit()
    ids = {AuditEvent: event.id, TransitionLog: db.session.scalar(
        select(TransitionLog.id).where(TransitionLog.contribution_id == world.contribution.id))}
    return ids, {model: _stored(db, model, ident) for model, ident in ids.items()}


CHANGES = {AuditEvent: {"action": "user.delete", "target": "user:0", "created_at": AT, "detail": {"x": 1}},
           TransitionLog: {"to_state": "approved", "comment": "改过了", "created_at": AT, "actor_id": None}}


@pytest.mark.parametrize("model", [AuditEvent, TransitionLog])
@pytest.mark.parametrize("column", ["first", "second"])
def test_changing_a_loaded_row_raises_and_changes_nothing(db, rows, model, column):
    ids, before = rows
    name, value = list(CHANGES[model].items())[0 if column == "first" else 2]
    row = db.session.get(model, ids[model])
    setattr(row, name, value)
    with pytest.raises(ImmutableRowError):
        db.session.commit()
    db.session.rollback()
    assert _stored(db, model, ids[model]) == before[model]


@pytest.mark.parametrize("model", [AuditEvent, TransitionLog])
def test_every_column_is_protected(db, rows, model):
    ids, before = rows
    for name, value in CHANGES[model].items():
        row = db.session.get(model, ids[model])
        setattr(row, name, value)
        with pytest.raises(ImmutableRowError):
            db.session.flush()
        db.session.rollback()
    assert _stored(db, model, ids[model]) == before[model]


@pytest.mark.parametrize("model", [AuditEvent, TransitionLog])
def test_deleting_a_loaded_row_raises_and_keeps_it(db, rows, model):
    ids, before = rows
    db.session.delete(db.session.get(model, ids[model]))
    with pytest.raises(ImmutableRowError):
        db.session.commit()
    db.session.rollback()
    assert _stored(db, model, ids[model]) == before[model]


@pytest.mark.parametrize("model", [AuditEvent, TransitionLog])
@pytest.mark.parametrize("statement", [
    lambda m, i: update(m).where(m.id == i).values(created_at=AT),
    lambda m, i: delete(m).where(m.id == i),
    lambda m, i: update(m.__table__).where(m.__table__.c.id == i).values(created_at=AT),
    lambda m, i: delete(m.__table__),
], ids=["orm-update", "orm-delete", "table-update", "table-delete-all"])
def test_update_and_delete_statements_through_the_session_raise(db, rows, model, statement):
    ids, before = rows
    with pytest.raises(ImmutableRowError):
        db.session.execute(statement(model, ids[model]))
    db.session.rollback()
    assert _stored(db, model, ids[model]) == before[model]


def test_legacy_query_delete_raises(db, rows):
    ids, before = rows
    with pytest.raises(ImmutableRowError):
        db.session.query(AuditEvent).filter(AuditEvent.id == ids[AuditEvent]).delete()
    db.session.rollback()
    assert _stored(db, AuditEvent, ids[AuditEvent]) == before[AuditEvent]


def test_setting_the_same_values_is_no_change(db, rows):
    # A row touched without a real change (e.g. a relationship set to the same user) must not break
    # the operation that touched it.
    ids, before = rows
    log = db.session.get(TransitionLog, ids[TransitionLog])
    log.actor = log.actor
    log.comment = log.comment
    event = db.session.get(AuditEvent, ids[AuditEvent])
    event.action = event.action
    db.session.commit()
    assert _stored(db, TransitionLog, ids[TransitionLog]) == before[TransitionLog]


def test_new_rows_are_still_written(db, world):
    # The workflow keeps writing its trail: insertions are not affected.
    apply_event(world.contribution, "submit", world.liaison)
    apply_event(world.contribution, "recall", world.liaison)
    db.session.commit()
    events = db.session.scalars(select(TransitionLog.event).where(
        TransitionLog.contribution_id == world.contribution.id).order_by(TransitionLog.id)).all()
    assert events == ["submit", "recall"]


def test_no_route_writes_the_trail(app):
    routes = [r for r in app.url_map.iter_rules() if "audit" in r.endpoint or "/audit" in r.rule]
    assert {r.endpoint for r in routes} >= {"admin.audit", "admin.audit_export"}
    for rule in routes:
        assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule
