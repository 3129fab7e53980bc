"""Check-then-act races found in review: each is run with real threads on SQLite and PostgreSQL."""
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Contribution, User
from fazhi_flow.models.indicator import Indicator, IndicatorValue
from fazhi_flow.models.reminder import ExtensionRequest
from fazhi_flow.services import contributions as contribution_svc
from fazhi_flow.services import figures as figures_svc
from fazhi_flow.services import reminders as reminder_svc
from fazhi_flow.testing import race
from fazhi_flow.timeutil import local_today

ROUNDS = 4


def _user(username):
    return _db.session.scalar(select(User).where(User.username == username))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_admins_decide_one_extension(app, factory, db, is_postgres, round_):
    world = factory.world()
    world.cycle.due = local_today() + timedelta(days=5)
    second_admin = factory.user("admin", unit=world.office, username=f"admin2_{round_}")
    request = reminder_svc.request_extension(world.assignment, world.liaison,
                                             (local_today() + timedelta(days=30)).isoformat(), "人手不足")
    db.session.commit()
    rid, names = request.id, (world.admin.username, second_admin.username)
    db.session.commit()

    def decide(username, grant):
        def job(barrier):
            req = _db.session.get(ExtensionRequest, rid)
            actor = _user(username)
            req.status, req.assignment.due  # load before the race
            if barrier:
                barrier.wait()
            reminder_svc.decide_extension(req, actor, grant, comment=None if grant else "不同意")
        return job

    outcomes = race(app, is_postgres, [decide(names[0], True), decide(names[1], False)])
    assert outcomes.count("ok") == 1, outcomes
    db.session.expire_all()
    final = db.session.get(ExtensionRequest, rid)
    assert final.status == ("granted" if outcomes[0] == "ok" else "refused")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_colleagues_ask_for_one_extension(app, factory, db, is_postgres, round_):
    world = factory.world()
    world.cycle.due = local_today() + timedelta(days=5)
    colleague = factory.user("liaison", unit=world.unit, username=f"colleague_{round_}")
    db.session.commit()
    aid, names = world.assignment.id, (world.liaison.username, colleague.username)
    db.session.commit()

    def ask(username):
        def job(barrier):
            from fazhi_flow.models import Assignment

            assignment = _db.session.get(Assignment, aid)
            actor = _user(username)
            assignment.section.cycle.state  # load before the race
            if barrier:
                barrier.wait()
            reminder_svc.request_extension(assignment, actor,
                                           (local_today() + timedelta(days=20)).isoformat(), "材料较多")
        return job

    outcomes = race(app, is_postgres, [ask(names[0]), ask(names[1])])
    assert outcomes.count("ok") == 1, outcomes
    pending = db.session.scalars(select(ExtensionRequest).where(
        ExtensionRequest.assignment_id == aid, ExtensionRequest.status == "pending")).all()
    assert len(pending) == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_figures_saved_during_a_submit_never_differ_from_the_revision(app, factory, db, is_postgres, round_):
    world = factory.world()
    indicator = Indicator(cycle_id=world.cycle.id, section_id=world.section.id, code="cases", name="办理案件",
                          measure="件", type="integer")
    db.session.add(indicator)
    colleague = factory.user("liaison", unit=world.unit, username=f"fig_{round_}")
    db.session.commit()
    cid, names = world.contribution.id, (world.liaison.username, colleague.username)
    db.session.commit()

    def save(barrier):
        contribution = _db.session.get(Contribution, cid)
        actor = _user(names[0])
        contribution.state, contribution.cycle.state
        if barrier:
            barrier.wait()
        figures_svc.save_figures(contribution, actor, {"cases": "126"})
        if barrier:
            # Hold the saved value uncommitted for a moment: a submit must wait for it (and then
            # snapshot it), not slip past and leave a value behind the revision's back.
            time.sleep(0.5)

    def submit(barrier):
        contribution = _db.session.get(Contribution, cid)
        actor = _user(names[1])
        contribution.state, contribution.cycle.state
        if barrier:
            barrier.wait()
        contribution_svc.submit_contribution(contribution, actor)

    outcomes = race(app, is_postgres, [save, submit])
    assert outcomes[1] == "ok", outcomes  # the submit itself never fails here
    db.session.expire_all()
    contribution = db.session.get(Contribution, cid)
    stored = db.session.scalar(select(IndicatorValue.value).where(IndicatorValue.contribution_id == cid))
    snapshot = (contribution.revisions[-1].data or {}).get("figures", {}).get("cases")
    if outcomes[0] == "ok":  # the value landed before the snapshot
        assert stored is not None and snapshot == "126"
    else:  # refused after the submit: nothing stored behind the revision's back
        assert stored is None and snapshot is None
