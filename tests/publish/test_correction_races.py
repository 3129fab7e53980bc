"""更正 is serialised: admins asking for a correction at once (or one admin submitting twice), and a
leader's double-submitted 签发, yield exactly one new published version; the others get a message.
Real threads with their own connections, on SQLite and PostgreSQL (where the reads really overlap)."""
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Publication, ReportCycle, TransitionLog, User
from fazhi_flow.services import compile as svc
from fazhi_flow.testing import race

ROUNDS = 2
NOTE = "第二部分涉企检查次数录入有误，由3812次更正为3821次。"


def _user(username):
    return _db.session.scalar(select(User).where(User.username == username))


@pytest.fixture()
def published(compiling, factory, db):
    """Version 1 published, the draft edited for a correction, and nine more admins; committed.

    Returns plain values: touching a row after the commit would begin a transaction in this thread,
    which on SQLite holds the write lock the racing threads need.
    """
    cycle = compiling.cycle
    svc.request_signoff(cycle, compiling.admin)
    svc.sign_report(cycle, compiling.leader, svc.latest_version(cycle).number)
    svc.publish_report(cycle, compiling.admin)
    view = next(v for v in svc.section_views(cycle) if v.section.code == "enforcement")
    svc.save_section_text(cycle, view.section, compiling.admin, view.text.replace("3812次", "3821次"))
    office = compiling.admin.unit
    world = SimpleNamespace(
        cycle_id=cycle.id,
        admins=[compiling.admin.username] + [
            factory.user("admin", unit=office, username=f"admin_more{i}").username for i in range(9)],
        leaders=[compiling.leader.username, factory.user("leader", unit=office).username],
        seen={"seen_publication": 1, "seen_draft": svc.latest_version(cycle).number},
    )
    db.session.commit()
    return world


def _ask(cycle_id, username, seen):
    def job(barrier):
        cycle = _db.session.get(ReportCycle, cycle_id)
        actor = _user(username)
        cycle.state  # read before the race, as a request that loaded its page
        if barrier:
            barrier.wait()
        svc.request_correction(cycle, actor, NOTE, **seen)
    return job


def _sign(cycle_id, username, number):
    def job(barrier):
        cycle = _db.session.get(ReportCycle, cycle_id)
        actor = _user(username)
        cycle.state
        if barrier:
            barrier.wait()
        svc.sign_report(cycle, actor, number)
    return job


def _count(db, model, *where):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _one_winner(outcomes):
    assert outcomes.count("ok") == 1, outcomes
    # Every loser got a message for the user (a crash would leave None): no 500, no UniqueViolation.
    assert all(o == "ok" or (isinstance(o, str) and o) for o in outcomes), outcomes


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_ten_admins_at_once_make_one_request_and_one_new_version(app, published, db, is_postgres, round_):
    cid = published.cycle_id
    outcomes = race(app, is_postgres, [_ask(cid, name, published.seen) for name in published.admins])
    _one_winner(outcomes)
    assert any("已提请签发" in o for o in outcomes if o != "ok"), outcomes
    assert _count(db, TransitionLog, TransitionLog.cycle_id == cid,
                  TransitionLog.event == "request_correction") == 1
    cycle = db.session.get(ReportCycle, cid)
    assert cycle.state == "correcting"
    number = svc.latest_version(cycle).number
    db.session.commit()  # end this thread's transaction before the next race

    # Both leaders (one of them clicking twice) sign at once: one publication, version 2.
    leaders = published.leaders + published.leaders[:1]
    outcomes = race(app, is_postgres, [_sign(cid, name, number) for name in leaders])
    _one_winner(outcomes)
    assert all("已发布" in o for o in outcomes if o != "ok"), outcomes
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, cid)
    assert [p.version for p in svc.publications(cycle)] == [1, 2]
    assert cycle.state == "published" and svc.latest_publication(cycle).correction_note == NOTE


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_admin_submitting_twice_makes_one_request(app, published, db, is_postgres, round_):
    cid, name = published.cycle_id, published.admins[0]
    outcomes = race(app, is_postgres, [_ask(cid, name, published.seen), _ask(cid, name, published.seen)])
    _one_winner(outcomes)
    assert _count(db, TransitionLog, TransitionLog.cycle_id == cid,
                  TransitionLog.event == "request_correction") == 1
    assert _count(db, Publication, Publication.cycle_id == cid) == 1
