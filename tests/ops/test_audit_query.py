"""Reading the trail in chunks and pages gives every row exactly once, in order, even where audit rows
and transitions share a moment (the order is time, then kind, then id)."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from fazhi_flow.models import AuditEvent, TransitionLog
from fazhi_flow.services import audit as svc

T0 = datetime(2025, 3, 1, 2, 0)


@pytest.fixture()
def tied(world, db):
    """37 rows over 5 moments, both kinds at every moment, several of a kind per moment."""
    w = world
    for n in range(37):
        at = T0 + timedelta(seconds=n % 5)
        if n % 3:
            db.session.add(AuditEvent(actor_id=w.admin.id, action="user.update", target=f"user:{n}",
                                      created_at=at))
        else:
            db.session.add(TransitionLog(cycle_id=w.cycle.id, event="open", from_state="setup",
                                         to_state="collecting", actor_id=w.admin.id, created_at=at))
    db.session.commit()
    events = [(r.created_at, svc.EVENT, r.id) for r in db.session.query(AuditEvent)]
    transitions = [(r.created_at, svc.TRANSITION, r.id) for r in db.session.query(TransitionLog)]
    return sorted(events + transitions)


def _keys(rows):
    return [(r.created_at, r.kind, r.id) for r in rows]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_chunks_give_every_row_once_in_order(db, tied, monkeypatch, chunk):
    monkeypatch.setattr(svc, "CHUNK", chunk)
    q = svc.AuditQuery()
    assert _keys(svc.iter_rows(q, newest_first=False)) == tied
    assert _keys(svc.iter_rows(q)) == tied[::-1]
    assert _keys(svc.iter_rows(q, limit=10)) == tied[::-1][:10]
    assert _keys(svc.iter_rows(q, newest_first=False, release=True)) == tied


@pytest.mark.parametrize("per_page", [1, 4, 10, 50])
def test_pages_give_every_row_once_in_order(db, tied, per_page):
    q = svc.AuditQuery()
    first = svc.page(q, 1, per_page)
    assert first.total == svc.count(q) == len(tied)
    rows = list(itertools.chain.from_iterable(svc.page(q, n, per_page).rows for n in range(1, first.pages + 1)))
    assert _keys(rows) == tied[::-1]


def test_filtered_chunks_and_count(db, tied, monkeypatch):
    monkeypatch.setattr(svc, "CHUNK", 2)
    q = svc.AuditQuery(action="flow:cycle:open")
    expected = [k for k in tied if k[1] == svc.TRANSITION]
    assert _keys(svc.iter_rows(q, newest_first=False)) == expected
    assert svc.count(q) == len(expected) == 13
    assert svc.count(svc.AuditQuery(target="user:4")) == 1
    assert svc.count(svc.AuditQuery(target="section:4")) == 0  # no transitions of sections either
