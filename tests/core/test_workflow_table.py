"""Every (state, event, actor) of both workflows against the documented transition tables.

The expected tables are written out here, independently of fazhi_flow.workflow.states, so that a
change to the implementation that is not also a change to the documentation fails.
"""
import pytest
from sqlalchemy import func, select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import Revision, TransitionLog
from fazhi_flow.services.contributions import apply_event
from fazhi_flow.services.cycles import apply_cycle_event

C_STATES = ["draft", "unit_review", "submitted", "returned", "approved"]
C_EVENTS = ["submit", "recall", "unit_approve", "unit_return", "approve", "return", "reopen"]
# (state, event) -> (the one actor allowed, new state); unit head review off / on.
C_TABLE = {
    ("draft", "submit"): ("liaison", "submitted"),
    ("returned", "submit"): ("liaison", "submitted"),
    ("unit_review", "unit_approve"): ("unit_head", "submitted"),
    ("unit_review", "unit_return"): ("unit_head", "returned"),
    ("unit_review", "recall"): ("liaison", "draft"),
    ("submitted", "recall"): ("liaison", "draft"),
    ("submitted", "approve"): ("reviewer", "approved"),
    ("submitted", "return"): ("reviewer", "returned"),
    ("approved", "reopen"): ("admin", "returned"),
}
C_TABLE_UNIT_REVIEW = C_TABLE | {
    ("draft", "submit"): ("liaison", "unit_review"),
    ("returned", "submit"): ("liaison", "unit_review"),
}
ACTORS = ["liaison", "other_liaison", "unit_head", "reviewer", "outsider_reviewer", "own_unit_reviewer",
          "admin", "leader"]

Y_STATES = ["setup", "collecting", "compiling", "signoff", "signed", "published", "correcting"]
Y_EVENTS = ["open", "compile", "reopen_collection", "request_signoff", "sign", "return", "publish",
            "request_correction"]
Y_TABLE = {
    ("setup", "open"): ("admin", "collecting"),
    ("collecting", "compile"): ("admin", "compiling"),
    ("compiling", "reopen_collection"): ("admin", "collecting"),
    ("compiling", "request_signoff"): ("admin", "signoff"),
    ("signoff", "sign"): ("leader", "signed"),
    ("signoff", "return"): ("leader", "compiling"),
    ("signed", "publish"): ("admin", "published"),
    # A correction (更正) is signed by the leader: signing publishes it, returning leaves it unpublished.
    ("published", "request_correction"): ("admin", "correcting"),
    ("correcting", "sign"): ("leader", "published"),
    ("correcting", "return"): ("leader", "published"),
}
Y_ACTORS = ["admin", "leader", "reviewer", "liaison"]


def _snapshot(db, obj):
    db.session.flush()
    db.session.expire_all()
    logs = db.session.scalar(select(func.count()).select_from(TransitionLog))
    revisions = db.session.scalar(select(func.count()).select_from(Revision))
    fresh = db.session.get(type(obj), obj.id)
    return fresh.state, fresh.version, logs, revisions


@pytest.mark.parametrize("unit_head_review", [False, True], ids=["direct", "unit-review"])
@pytest.mark.parametrize("event", C_EVENTS)
@pytest.mark.parametrize("state", C_STATES)
def test_contribution_table(factory, db, state, event, unit_head_review):
    world = factory.world(unit_head_review=unit_head_review, contribution_state=state)
    db.session.commit()
    table = C_TABLE_UNIT_REVIEW if unit_head_review else C_TABLE
    allowed = table.get((state, event))
    for name in ACTORS:
        actor = getattr(world, name)
        contribution = world.contribution
        before = _snapshot(db, contribution)
        savepoint = db.session.begin_nested()
        if allowed and allowed[0] == name:
            apply_event(contribution, event, actor, comment="请核实第2段的数据。")
            assert contribution.state == allowed[1], (name, state, event)
            log = db.session.scalars(select(TransitionLog).where(
                TransitionLog.contribution_id == contribution.id).order_by(TransitionLog.id.desc())).first()
            assert (log.from_state, log.to_state, log.event, log.actor_id) == (
                state, allowed[1], event, actor.id)
            after = _snapshot(db, contribution)
            assert after[2] == before[2] + 1  # one log row
            assert after[3] == before[3] + (1 if event == "submit" else 0)  # a revision per submit
        else:
            with pytest.raises(DomainError) as refused:
                apply_event(contribution, event, actor, comment="请核实第2段的数据。")
            assert refused.value.message  # a message for the user
            assert _snapshot(db, contribution) == before, (name, state, event)
        savepoint.rollback()
        db.session.expire_all()


@pytest.mark.parametrize("event", Y_EVENTS)
@pytest.mark.parametrize("state", Y_STATES)
def test_cycle_table(factory, db, state, event):
    world = factory.world(state=state, contribution_state="approved")
    db.session.commit()
    allowed = Y_TABLE.get((state, event))
    for name in Y_ACTORS:
        actor = getattr(world, name)
        cycle = world.cycle
        before = _snapshot(db, cycle)
        savepoint = db.session.begin_nested()
        if allowed and allowed[0] == name:
            log = apply_cycle_event(cycle, event, actor, comment="第三部分请再精简。")
            assert cycle.state == allowed[1]
            assert (log.from_state, log.to_state, log.event) == (state, allowed[1], event)
            assert _snapshot(db, cycle)[2] == before[2] + 1
        else:
            with pytest.raises(DomainError):
                apply_cycle_event(cycle, event, actor, comment="第三部分请再精简。")
            assert _snapshot(db, cycle) == before, (name, state, event)
        savepoint.rollback()
        db.session.expire_all()
