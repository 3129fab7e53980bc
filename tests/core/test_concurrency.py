"""Two users firing on one contribution at the same moment: exactly one wins, on SQLite and PostgreSQL.

Each thread has its own application context, session and database connection, as two web requests do.
"""
import threading
import time

import pytest
from sqlalchemy import func, select, text

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Contribution, Section, TransitionLog, Unit, User
from fazhi_flow.services import contributions as svc
from fazhi_flow.testing import race

ROUNDS = 8


def _load(contribution_id, username):
    contribution = _db.session.get(Contribution, contribution_id)
    user = _db.session.scalar(select(User).where(User.username == username))
    contribution.state, contribution.cycle.state  # load before the race
    return contribution, user


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_approve_and_returnrace(app, factory, db, is_postgres, round_):
    world = factory.world(contribution_state="submitted")
    second = factory.user("reviewer", unit=world.office, username=f"r2_{round_}")
    world.section.reviewers.append(second)
    db.session.commit()
    cid, first_name, second_name = world.contribution.id, world.reviewer.username, second.username
    db.session.commit()  # end the reading transaction: on SQLite it holds the write lock

    def approve(barrier):
        contribution, user = _load(cid, first_name)
        if barrier:
            barrier.wait()
        svc.approve_contribution(contribution, user)

    def send_back(barrier):
        contribution, user = _load(cid, second_name)
        if barrier:
            barrier.wait()
        svc.return_contribution(contribution, user, comment="数据需要核实")

    outcomes = race(app, is_postgres, [approve, send_back])
    assert outcomes.count("ok") == 1, outcomes
    db.session.expire_all()
    final = db.session.get(Contribution, cid)
    logs = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == cid)).all()
    assert len(logs) == 1  # no double transition
    assert final.state == logs[0].to_state
    assert final.state == ("approved" if outcomes[0] == "ok" else "returned")


def test_two_editors_save_the_same_draft(app, factory, db, is_postgres):
    world = factory.world()
    colleague = factory.user("liaison", unit=world.unit, name="同事")
    db.session.commit()
    cid, version = world.contribution.id, world.contribution.version
    names = world.liaison.username, colleague.username
    db.session.commit()
    texts = {"a": "第一位同事写的内容。", "b": "第二位同事写的内容。"}

    def editor(username, text):
        def job(barrier):
            contribution, user = _load(cid, username)
            contribution.updated_by  # as the editor page has it: the last editor before the race
            if barrier:
                barrier.wait()
            svc.save_draft(contribution, user, text, expected_version=version)
        return job

    outcomes = race(app, is_postgres, [editor(names[0], texts["a"]), editor(names[1], texts["b"])])
    assert outcomes.count("ok") == 1, outcomes
    loser = outcomes[1 - outcomes.index("ok")]
    assert "修改" in loser  # told that somebody else changed it, and who
    assert (world.liaison.name if outcomes[0] == "ok" else "同事") in loser, loser
    db.session.expire_all()
    final = db.session.get(Contribution, cid)
    assert final.body == (texts["a"] if outcomes[0] == "ok" else texts["b"])
    assert final.version == version + 1


def test_many_concurrent_submits_make_one_revision(app, factory, db, is_postgres):
    world = factory.world()
    colleagues = [factory.user("liaison", unit=world.unit) for _ in range(3)]
    db.session.commit()
    cid = world.contribution.id
    names = [world.liaison.username] + [c.username for c in colleagues]
    db.session.commit()

    def submitter(username):
        def job(barrier):
            contribution, user = _load(cid, username)
            if barrier:
                barrier.wait()
            svc.submit_contribution(contribution, user)
        return job

    outcomes = race(app, is_postgres, [submitter(n) for n in names])
    assert outcomes.count("ok") == 1, outcomes
    db.session.expire_all()
    final = db.session.get(Contribution, cid)
    assert final.state == "submitted"
    assert len(final.revisions) == 1
    count = db.session.scalar(select(func.count()).select_from(TransitionLog)
                              .where(TransitionLog.contribution_id == cid))
    assert count == 1


def _a_then_b(app, admin_a, admin_b, a_took_its_lock, a_may_go_on) -> list:
    """Run two administrators' transactions in their own threads: A until it sets
    ``a_took_its_lock``, then B until it queues behind a lock, then A on. The errors raised (a
    deadlock is what these tests look for)."""
    errors = []

    def run(job):
        with app.app_context():
            try:
                job()
                _db.session.commit()
            except Exception as exc:  # noqa: BLE001 - a deadlock error is what the callers look for
                errors.append(exc)
                _db.session.rollback()
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=run, args=(job,)) for job in (admin_a, admin_b)]
    for t in threads:
        t.start()
    a_took_its_lock.wait(30)
    for _ in range(100):  # until B queues behind A (on the token with the fix, on a row's lock without)
        if _waiting_on_a_lock(_db.engine):
            break
        time.sleep(0.05)
    a_may_go_on.set()
    for t in threads:
        t.join(60)
    return errors


def _waiting_on_a_lock(engine) -> bool:
    with engine.connect() as conn:  # a new transaction each time: pg_stat_activity is a snapshot
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar())


@pytest.mark.parametrize("kind", ["section", "unit"])
def test_two_admins_editing_two_rows_in_opposite_order_do_not_deadlock(app, factory, db, is_postgres, kind):
    """A edits row 1, B edits row 2, then A edits row 2: B must wait for A at its first write.

    The figures-token triggers lock a cycle's token after the written row (a unit's, every cycle of
    its region); without taking the tokens first, B would hold row 2 while waiting for A's token, A
    would wait for row 2, and PostgreSQL would end one of them with a deadlock error."""
    if not is_postgres:
        pytest.skip("row locks are a PostgreSQL matter: on SQLite a writer holds the write lock from BEGIN")
    cycles = [factory.cycle(year=2024), factory.cycle(year=2025)]
    model = Section if kind == "section" else Unit
    rows = ([factory.section(cycles[0], title="一"), factory.section(cycles[0], title="二")] if kind == "section"
            else [factory.unit("甲局"), factory.unit("乙局")])
    factory.section(cycles[1], title="三")  # every cycle has its token row
    db.session.commit()
    first, second = rows[0].id, rows[1].id
    column = "title" if kind == "section" else "name"
    a_wrote_first, a_may_go_on = threading.Event(), threading.Event()

    def write(ident, value):
        row = _db.session.get(model, ident)
        setattr(row, column, value)
        _db.session.flush()

    def admin_a():
        write(first, "A 改一")
        a_wrote_first.set()
        a_may_go_on.wait(30)
        write(second, "A 改二")

    def admin_b():
        a_wrote_first.wait(30)
        write(second, "B 改二")

    assert not _a_then_b(app, admin_a, admin_b, a_wrote_first, a_may_go_on)
    db.session.expire_all()
    assert getattr(db.session.get(model, first), column) == "A 改一"
    assert getattr(db.session.get(model, second), column) == "B 改二"  # B went on after A committed


def test_a_cycle_locked_for_a_transition_and_a_section_added_meanwhile_do_not_deadlock(app, factory, db, is_postgres):
    """A locks the cycle (as signing does), B adds a section to it, A changes the cycle's state.

    B's insert takes the figures token first and then a key-share lock on the cycle row (its foreign
    key); had A locked the cycle row before the token, each would wait for the other."""
    if not is_postgres:
        pytest.skip("row locks are a PostgreSQL matter: on SQLite a writer holds the write lock from BEGIN")
    from fazhi_flow.database import lock_row
    from fazhi_flow.models import ReportCycle

    cycle = factory.cycle(year=2024)
    factory.section(cycle, title="一")  # the cycle has its token row
    db.session.commit()
    cycle_id = cycle.id
    a_locked, a_may_go_on = threading.Event(), threading.Event()

    def admin_a():
        row = _db.session.get(ReportCycle, cycle_id)
        lock_row(row)
        a_locked.set()
        a_may_go_on.wait(30)
        row.title = row.title + "（改）"  # a watched column, as a state change is
        _db.session.flush()

    def admin_b():
        a_locked.wait(30)
        _db.session.add(Section(cycle_id=cycle_id, title="新增章节", code="new", position=9))
        _db.session.flush()

    assert not _a_then_b(app, admin_a, admin_b, a_locked, a_may_go_on)
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle_id).title.endswith("（改）")
    assert db.session.scalar(select(func.count(Section.id)).where(Section.cycle_id == cycle_id)) == 2
