"""会签: a section approved by all its named reviewers ('all') against one approved by any one ('any').

The expected table is written out here, independently of fazhi_flow.workflow.states: every (state,
event, actor) in both review modes, including the countersign state "submitted, one reviewer has
approved this revision". Then the cases around it: a resubmission resets the approvals, a reviewer
removed or deactivated (or added) while the material waits, a return that keeps every comment, and
the last two approvers racing.
"""
import pytest
from sqlalchemy import func, select

from fazhi_flow import policy
from fazhi_flow.errors import DomainError
from fazhi_flow.models import ContributionApproval, Revision, TransitionLog
from fazhi_flow.services import contributions as svc
from fazhi_flow.services.contributions import apply_event
from fazhi_flow.testing import race

# "half": submitted, and the first named reviewer has approved the revision under review.
STATES = ["draft", "unit_review", "submitted", "half", "returned", "approved"]
EVENTS = ["submit", "recall", "unit_approve", "unit_return", "approve", "return", "reopen"]
ACTORS = ["liaison", "other_liaison", "unit_head", "reviewer", "reviewer2", "outsider_reviewer",
          "own_unit_reviewer", "admin", "leader"]
BOTH = ("reviewer", "reviewer2")


def expected(mode: str, unit_head_review: bool) -> dict:
    """(state, event) -> {actor: new state}; every other actor is refused."""
    after_submit = "unit_review" if unit_head_review else "submitted"
    table = {
        ("draft", "submit"): {"liaison": after_submit},
        ("returned", "submit"): {"liaison": after_submit},
        ("unit_review", "unit_approve"): {"unit_head": "submitted"},
        ("unit_review", "unit_return"): {"unit_head": "returned"},
        ("unit_review", "recall"): {"liaison": "draft"},
        ("submitted", "recall"): {"liaison": "draft"},
        ("half", "recall"): {"liaison": "draft"},
        ("submitted", "return"): dict.fromkeys(BOTH, "returned"),
        # Any return sends it back, also from the reviewer who approved already.
        ("half", "return"): dict.fromkeys(BOTH, "returned"),
        ("approved", "reopen"): {"admin": "returned"},
    }
    if mode == "any":
        # One approval decides; an approval left from a time the section was 'all' changes nothing.
        table[("submitted", "approve")] = dict.fromkeys(BOTH, "approved")
        table[("half", "approve")] = dict.fromkeys(BOTH, "approved")
    else:
        # Two required reviewers (the own unit's reviewer named too is never required).
        table[("submitted", "approve")] = dict.fromkeys(BOTH, "submitted")
        table[("half", "approve")] = {"reviewer2": "approved"}
    return table


def countersign_world(factory, db, mode="all", state="submitted", unit_head_review=False):
    world = factory.world(unit_head_review=unit_head_review,
                          contribution_state="submitted" if state == "half" else state)
    world.reviewer2 = factory.user("reviewer", unit=world.office, name="第二审核人")
    world.section.reviewers = [world.reviewer, world.reviewer2, world.own_unit_reviewer]
    world.section.review_mode = mode
    c = world.contribution
    if state != "draft":
        db.session.add(Revision(contribution=c, number=1, body=c.body, author_id=world.liaison.id))
    if state == "half":
        db.session.add(ContributionApproval(contribution_id=c.id, revision_number=1,
                                            reviewer_id=world.reviewer.id, actor_id=world.reviewer.id,
                                            comment="第一段表述准确。"))
    db.session.flush()
    return world


def _count(db, model, **where):
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.session.scalar(query)


def _snapshot(db, contribution):
    db.session.flush()
    db.session.expire_all()
    fresh = db.session.get(type(contribution), contribution.id)
    return (fresh.state, fresh.version, _count(db, TransitionLog), _count(db, Revision),
            _count(db, ContributionApproval))


@pytest.mark.parametrize("unit_head_review", [False, True], ids=["direct", "unit-review"])
@pytest.mark.parametrize("mode", ["any", "all"])
@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("state", STATES)
def test_countersign_table(factory, db, state, event, mode, unit_head_review):
    world = countersign_world(factory, db, mode=mode, state=state, unit_head_review=unit_head_review)
    db.session.commit()
    allowed = expected(mode, unit_head_review).get((state, event), {})
    from_state = "submitted" if state == "half" else state
    for name in ACTORS:
        actor = getattr(world, name)
        contribution = world.contribution
        before = _snapshot(db, contribution)
        savepoint = db.session.begin_nested()
        if name in allowed:
            apply_event(contribution, event, actor, comment="请核实第2段的数据。")
            assert contribution.state == allowed[name], (name, state, event, mode)
            log = db.session.scalars(select(TransitionLog).where(
                TransitionLog.contribution_id == contribution.id).order_by(TransitionLog.id.desc())).first()
            assert (log.from_state, log.to_state, log.event, log.actor_id) == (
                from_state, allowed[name], event, actor.id)
            after = _snapshot(db, contribution)
            # Every transition updates the row, a 会签同意 that stays in submitted too.
            assert after[1] > before[1]
            assert after[2] == before[2] + 1
            assert after[3] == before[3] + (1 if event == "submit" else 0)
            assert after[4] == before[4] + (1 if event == "approve" and mode == "all" else 0)
        else:
            with pytest.raises(DomainError) as refused:
                apply_event(contribution, event, actor, comment="请核实第2段的数据。")
            assert refused.value.message
            assert _snapshot(db, contribution) == before, (name, state, event, mode)
        # The policy answers as the workflow acts (the review page shows the buttons by it).
        db.session.expire_all()
        savepoint.rollback()
        db.session.expire_all()
        assert policy.can(actor, f"contribution.{event}", world.contribution) == (name in allowed), (
            name, state, event, mode)


def _approve(world, who, comment=None):
    return svc.approve_contribution(world.contribution, who, comment=comment)


def test_approval_twice_is_refused_with_a_message(factory, db):
    world = countersign_world(factory, db)
    _approve(world, world.reviewer, "同意。")
    with pytest.raises(DomainError) as refused:
        _approve(world, world.reviewer, "再次同意。")
    assert "已会签同意" in refused.value.message
    assert _count(db, ContributionApproval, contribution_id=world.contribution.id) == 1
    assert world.contribution.state == "submitted"


def test_resubmission_resets_the_approvals(factory, db):
    world = countersign_world(factory, db)
    c = world.contribution
    _approve(world, world.reviewer, "第一轮同意。")
    svc.return_contribution(c, world.reviewer2, comment="第二段数据有误。")
    assert c.state == "returned"
    svc.submit_contribution(c, world.liaison)
    assert policy.current_revision_number(c) == 2
    # The first reviewer's approval was of revision 1: both are pending again.
    assert {u.id for u in policy.pending_approvers(c)} == {world.reviewer.id, world.reviewer2.id}
    _approve(world, world.reviewer2)
    assert c.state == "submitted"
    _approve(world, world.reviewer)
    assert c.state == "approved"
    numbers = db.session.execute(select(ContributionApproval.revision_number, ContributionApproval.reviewer_id)
                                 .where(ContributionApproval.contribution_id == c.id)).all()
    assert sorted(numbers) == sorted([(1, world.reviewer.id), (2, world.reviewer2.id), (2, world.reviewer.id)])


def test_recall_and_resubmit_also_resets(factory, db):
    world = countersign_world(factory, db)
    c = world.contribution
    _approve(world, world.reviewer)
    svc.recall_contribution(c, world.liaison)
    svc.submit_contribution(c, world.liaison)
    _approve(world, world.reviewer2)
    assert c.state == "submitted"
    assert [u.id for u in policy.pending_approvers(c)] == [world.reviewer.id]


@pytest.mark.parametrize("how", ["removed", "deactivated", "moved_to_the_unit"])
def test_a_reviewer_gone_while_waiting_no_longer_holds_it_up(factory, db, how):
    world = countersign_world(factory, db)
    third = factory.user("reviewer", unit=world.office, name="第三审核人")
    world.section.reviewers = [world.reviewer, world.reviewer2, third]
    _approve(world, world.reviewer)
    _approve(world, world.reviewer2)
    assert world.contribution.state == "submitted"
    assert [u.id for u in policy.pending_approvers(world.contribution)] == [third.id]
    if how == "removed":
        world.section.reviewers = [world.reviewer, world.reviewer2]
    elif how == "deactivated":
        third.active = False
    else:
        third.unit = world.unit
    db.session.flush()
    assert policy.pending_approvers(world.contribution) == []
    # Nobody is pending: one who approved already may now settle it (no second approval row).
    assert policy.can(world.reviewer2, "contribution.approve", world.contribution)
    _approve(world, world.reviewer2)
    assert world.contribution.state == "approved"
    assert _count(db, ContributionApproval, contribution_id=world.contribution.id) == 2


def test_a_reviewer_added_while_waiting_must_approve_too(factory, db):
    world = countersign_world(factory, db)
    _approve(world, world.reviewer)
    added = factory.user("reviewer", unit=world.office, name="新增审核人")
    world.section.reviewers = [*world.section.reviewers, added]
    db.session.flush()
    _approve(world, world.reviewer2)
    assert world.contribution.state == "submitted"
    assert [u.id for u in policy.pending_approvers(world.contribution)] == [added.id]
    _approve(world, added)
    assert world.contribution.state == "approved"


def test_parent_sections_reviewers_are_the_required_set(factory, db):
    world = countersign_world(factory, db)
    child = factory.section(world.cycle, "行政执法监督", parent=world.section, review_mode="all")
    assignment = factory.assignment(child, world.unit)
    c = factory.contribution(assignment, state="submitted")
    db.session.add(Revision(contribution=c, number=1, body=c.body, author_id=world.liaison.id))
    db.session.flush()
    assert [u.id for u in policy.countersign_required(c)] == [world.reviewer.id, world.reviewer2.id]
    svc.approve_contribution(c, world.reviewer)
    assert c.state == "submitted"
    svc.approve_contribution(c, world.reviewer2)
    assert c.state == "approved"


def test_all_with_nobody_named_behaves_as_any(factory, db):
    world = countersign_world(factory, db)
    world.section.reviewers = []
    db.session.flush()
    assert policy.countersign_required(world.contribution) == []
    _approve(world, world.outsider_reviewer)
    assert world.contribution.state == "approved"
    assert _count(db, ContributionApproval) == 0


def test_who_approved_hears_of_a_return(factory, db):
    from fazhi_flow.models import Notification

    world = countersign_world(factory, db)
    _approve(world, world.reviewer, "同意。")
    svc.return_contribution(world.contribution, world.reviewer2, comment="第二段需补充。")
    told = db.session.execute(select(Notification.user_id, Notification.kind, Notification.body)
                              .where(Notification.title == "您会签同意的材料已被其他审核人退回修改")).all()
    assert [(uid, kind) for uid, kind, _ in told] == [(world.reviewer.id, "returned")]
    assert "第二段需补充。" in told[0][2]


def test_a_return_keeps_every_comment_of_the_round(factory, db):
    world = countersign_world(factory, db)
    c = world.contribution
    longest = "数" * 2000
    _approve(world, world.reviewer, "第一段同意。" + longest)
    svc.return_contribution(c, world.reviewer2, comment="第二段需补充案例。", paragraph=2)
    logs = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == c.id)
                              .order_by(TransitionLog.id)).all()
    assert [(log.event, log.from_state, log.to_state, log.comment) for log in logs] == [
        ("approve", "submitted", "submitted", "第一段同意。" + longest),
        ("return", "submitted", "returned", "第二段需补充案例。"),
    ]
    approval = db.session.scalar(select(ContributionApproval).where(ContributionApproval.contribution_id == c.id))
    assert (approval.reviewer_id, approval.actor_id, approval.comment, approval.revision_number) == (
        world.reviewer.id, world.reviewer.id, "第一段同意。" + longest, 1)


def test_partial_approval_is_not_a_decision_for_the_unit(factory, db):
    """The unit hears of 通过 when the material is approved, not at each 会签同意."""
    from fazhi_flow.models import Notification

    world = countersign_world(factory, db)
    before = _count(db, Notification)
    _approve(world, world.reviewer)
    assert world.contribution.decided_at is None
    assert _count(db, Notification) == before
    _approve(world, world.reviewer2)
    assert world.contribution.decided_at is not None
    assert _count(db, Notification) > before


@pytest.mark.parametrize("round_", range(4))
def test_last_two_approvers_race(app, factory, db, is_postgres, round_):
    """Two required reviewers approve at the same moment: on PostgreSQL one wins and the other gets a
    Conflict (both had read the same version); on SQLite the second waits for the first and then
    decides. Either way the material never stays submitted with every approval in."""
    from fazhi_flow.extensions import db as _db
    from fazhi_flow.models import Contribution, User

    world = countersign_world(factory, db)
    db.session.commit()
    cid = world.contribution.id
    names = world.reviewer.username, world.reviewer2.username
    db.session.commit()

    def approver(username):
        def job(barrier):
            contribution = _db.session.get(Contribution, cid)
            user = _db.session.scalar(select(User).where(User.username == username))
            contribution.state, contribution.version, contribution.cycle.state  # read before the race
            if barrier:
                barrier.wait()
            svc.approve_contribution(contribution, user, comment=f"{username}同意")
        return job

    outcomes = race(app, is_postgres, [approver(names[0]), approver(names[1])])
    db.session.expire_all()
    final = db.session.get(Contribution, cid)
    approvals = _count(db, ContributionApproval, contribution_id=cid)
    logs = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == cid)
                              .order_by(TransitionLog.id)).all()
    if outcomes == ["ok", "ok"]:
        assert not is_postgres
        assert (final.state, approvals, [log.to_state for log in logs]) == ("approved", 2, ["submitted", "approved"])
        return
    assert outcomes.count("ok") == 1, outcomes
    loser = 1 - outcomes.index("ok")
    assert "刚被" in outcomes[loser]
    assert (final.state, approvals, [log.to_state for log in logs]) == ("submitted", 1, ["submitted"])
    # The loser tries again on the fresh page and decides.
    user = db.session.scalar(select(User).where(User.username == names[loser]))
    svc.approve_contribution(final, user)
    db.session.commit()
    assert final.state == "approved"

