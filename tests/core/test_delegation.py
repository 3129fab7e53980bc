"""委托: a substitute acts on the delegator's work (logged "X 代 Y") for a period only, never with the
delegator's admin role, never across regions, never passed on; refusals in Chinese."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow import policy
from fazhi_flow.errors import DomainError, PermissionDenied
from fazhi_flow.models import AuditEvent, Delegation, Notification, Region, TransitionLog, Unit
from fazhi_flow.services import contributions as svc
from fazhi_flow.services import delegations as dsvc
from fazhi_flow.timeutil import utcnow
from fazhi_flow.workflow.machine import fire


def _period(days=7, start_offset=timedelta(minutes=-1)):
    start = utcnow().replace(microsecond=0) + start_offset
    return dsvc.Period(start, start + timedelta(days=days))


def _delegate(db, delegator, substitute, actor=None, **kw):
    row = dsvc.create(actor or delegator, delegator, substitute, _period(**kw))
    db.session.commit()
    return row


def _move_time(monkeypatch, delta):
    """The clock the delegations read, moved by ``delta`` (the delegation ends by itself)."""
    real = dsvc.utcnow
    monkeypatch.setattr(dsvc, "utcnow", lambda: real() + delta)


def _last_log(db, contribution):
    return db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == contribution.id)
                              .order_by(TransitionLog.id.desc())).first()


def _other_region(factory, db):
    region = Region(code="430902", name="资阳区", level="county")
    db.session.add(region)
    db.session.flush()
    unit = Unit(region=region, code="gaj", name="资阳公安分局")
    db.session.add(unit)
    db.session.flush()
    return factory.user("liaison", unit=unit, name="外区联络员")


# ------------------------------------------------------------------ each delegable role


def test_liaison_substitute_writes_and_submits_as_substitute_for_the_liaison(factory, db):
    w = factory.world()
    colleague = factory.user("liaison", unit=w.other_unit, name="李四")
    w.liaison.name = "张三"
    _delegate(db, w.liaison, colleague)
    c = w.contribution
    assert policy.can(colleague, "contribution.edit", c)
    svc.save_draft(c, colleague, "代为填写的正文。")
    revision = svc.submit_contribution(c, colleague)
    db.session.commit()
    assert c.state == "submitted" and revision.author_id == colleague.id
    log = _last_log(db, c)
    assert (log.actor_id, log.on_behalf_of_id) == (colleague.id, w.liaison.id)
    saved = db.session.scalars(select(AuditEvent).where(AuditEvent.action.in_(
        ("contribution.save", "contribution.submit"))).order_by(AuditEvent.id)).all()
    assert [(e.actor_id, e.on_behalf_of_id) for e in saved] == [(colleague.id, w.liaison.id)] * 2
    # The colleague's own unit's work is theirs: no "代" there.
    own = factory.contribution(factory.assignment(w.section, w.other_unit))
    svc.save_draft(own, colleague, "本单位正文。")
    db.session.commit()
    last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (last.actor_id, last.on_behalf_of_id) == (colleague.id, None)


def test_unit_head_substitute_approves_for_the_unit_head(factory, db):
    w = factory.world(unit_head_review=True)
    deputy = factory.user("reviewer", unit=w.office, name="副主任")
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, w.unit_head, deputy)
    assert policy.can(deputy, "contribution.unit_review", w.contribution)
    svc.unit_approve_contribution(w.contribution, deputy, comment="同意")
    db.session.commit()
    assert w.contribution.state == "submitted"
    log = _last_log(db, w.contribution)
    assert (log.event, log.actor_id, log.on_behalf_of_id) == ("unit_approve", deputy.id, w.unit_head.id)
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contribution.unit_approve")).one()
    assert audit.on_behalf_of_id == w.unit_head.id


def test_reviewer_substitute_approves_for_the_reviewer(factory, db):
    w = factory.world()
    helper = factory.user("liaison", unit=w.office, name="办公室联络员")
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, w.reviewer, helper)
    assert policy.principal_for(helper, w.contribution, "approve") is w.reviewer
    svc.approve_contribution(w.contribution, helper)
    db.session.commit()
    log = _last_log(db, w.contribution)
    assert (log.event, log.actor_id, log.on_behalf_of_id) == ("approve", helper.id, w.reviewer.id)


def test_leader_substitute_signs_for_the_leader(factory, db):
    w = factory.world(state="signoff")
    deputy = factory.user("reviewer", unit=w.office, name="副区长")
    _delegate(db, w.leader, deputy)
    assert policy.can(deputy, "cycle.sign", w.cycle)
    log = fire(w.cycle, "sign", deputy)
    db.session.commit()
    assert w.cycle.state == "signed" and (log.actor_id, log.on_behalf_of_id) == (deputy.id, w.leader.id)


# ------------------------------------------------------------------ limits


def test_after_the_end_the_substitute_may_do_nothing_of_the_delegators(factory, db, monkeypatch):
    w = factory.world()
    helper = factory.user("liaison", unit=w.office)
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, w.reviewer, helper, days=3)
    assert policy.can(helper, "contribution.review", w.contribution)
    _move_time(monkeypatch, timedelta(days=3, minutes=1))
    assert not policy.can(helper, "contribution.review", w.contribution)
    assert not policy.can(helper, "review.queue")
    with pytest.raises(PermissionDenied):
        svc.approve_contribution(w.contribution, helper)
    assert w.contribution.state == "submitted"


def test_a_delegation_not_yet_started_gives_nothing(factory, db):
    w = factory.world()
    helper = factory.user("liaison", unit=w.office)
    _delegate(db, w.reviewer, helper, start_offset=timedelta(days=2))
    assert not policy.can(helper, "review.queue")


def test_the_delegators_admin_role_never_passes(factory, db):
    w = factory.world()
    boss = factory.user("admin", "reviewer", unit=w.office, name="兼审核人的管理员")
    helper = factory.user("liaison", unit=w.office)
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, boss, helper)
    assert policy.can(helper, "review.queue")  # the reviewer's work passes
    for action in ("admin.manage", "compile.view", "audit.view", "search.people_all"):
        assert not policy.can(helper, action), action
    assert not policy.can(helper, "user.manage", w.liaison)
    assert not policy.can(helper, "contribution.reopen", w.contribution)


def test_admin_and_other_roles_cannot_delegate(factory, db):
    w = factory.world()
    with pytest.raises(PermissionDenied):
        dsvc.create(w.admin, w.admin, w.reviewer, _period())
    assert db.session.scalar(select(Delegation)) is None


def test_no_chains(factory, db):
    w = factory.world()
    b = factory.user("liaison", unit=w.office, name="乙")
    c = factory.user("liaison", unit=w.office, name="丙")
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, w.reviewer, b)
    _delegate(db, b, c)
    assert policy.can(b, "contribution.review", w.contribution)
    assert not policy.can(c, "contribution.review", w.contribution)
    assert not policy.can(b, "delegation.create", w.reviewer)  # never delegating what is not theirs
    with pytest.raises(PermissionDenied):
        dsvc.create(b, w.reviewer, c, _period(start_offset=timedelta(days=30)))


def test_substitute_never_reviews_their_own_units_material(factory, db):
    w = factory.world()
    svc.submit_contribution(w.contribution, w.liaison)
    _delegate(db, w.reviewer, w.unit_head)  # a person of the material's own unit
    assert not policy.can(w.unit_head, "contribution.review", w.contribution)
    with pytest.raises(PermissionDenied):
        svc.approve_contribution(w.contribution, w.unit_head)


def test_the_substitute_does_not_approve_what_they_submitted(factory, db):
    w = factory.world(unit_head_review=True)
    _delegate(db, w.unit_head, w.liaison)
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    with pytest.raises(PermissionDenied):
        svc.unit_approve_contribution(w.contribution, w.liaison)


def test_a_reviewer_does_not_approve_what_they_submitted_as_the_liaisons_substitute(factory, db):
    """The liaison delegates to the section's reviewer (another unit): the reviewer may write and
    submit for the liaison, but deciding on it in their own name is refused, after the delegation too."""
    w = factory.world()
    _delegate(db, w.liaison, w.reviewer)
    svc.save_draft(w.contribution, w.reviewer, "审核人代写的正文。")
    svc.submit_contribution(w.contribution, w.reviewer)
    db.session.commit()
    version = w.contribution.version
    with pytest.raises(PermissionDenied, match="这份材料是您提交的"):
        svc.approve_contribution(w.contribution, w.reviewer, comment="同意")
    db.session.rollback()
    assert db.session.get(type(w.contribution), w.contribution.id).state == "submitted"
    assert w.contribution.version == version
    # Someone else (another reviewer) still decides.
    other = factory.user("reviewer", unit=w.office, name="另一审核人")
    w.section.reviewers = [w.reviewer, other]
    svc.approve_contribution(w.contribution, other)
    db.session.commit()
    assert w.contribution.state == "approved"


def test_a_unit_head_does_not_approve_what_they_submitted_as_the_liaisons_substitute(factory, db):
    w = factory.world(unit_head_review=True)
    _delegate(db, w.liaison, w.unit_head)
    svc.submit_contribution(w.contribution, w.unit_head)
    db.session.commit()
    assert w.contribution.state == "unit_review"
    with pytest.raises(PermissionDenied, match="这份材料是您提交的"):
        svc.unit_approve_contribution(w.contribution, w.unit_head, comment="同意")
    db.session.rollback()
    assert db.session.get(type(w.contribution), w.contribution.id).state == "unit_review"


@pytest.mark.parametrize("case, message", [
    ("self", "不能委托给自己"),
    ("other_region", "请选择本地区的一位受托人"),
    ("inactive", "已停用"),
    ("ends_before_start", "结束时间必须晚于开始时间"),
    ("too_long", "委托期限最长90天"),
    ("past", "结束时间已经过去"),
    ("reason", "事由最多200个字"),
])
def test_refusals_say_why_and_change_nothing(factory, db, case, message):
    w = factory.world()
    substitute = factory.user("liaison", unit=w.office)
    period, reason = _period(), "出差" * 100 + "。"  # one over the 200 allowed
    if case == "self":
        substitute = w.reviewer
    elif case == "other_region":
        substitute = _other_region(factory, db)
    elif case == "inactive":
        substitute.active = False
    elif case == "ends_before_start":
        period = dsvc.Period(period.ends_at, period.starts_at)
    elif case == "too_long":
        period = dsvc.Period(period.starts_at, period.starts_at + timedelta(days=90, minutes=1))
    elif case == "past":
        period = dsvc.Period(period.starts_at - timedelta(days=10), period.starts_at - timedelta(days=1))
    if case != "reason":
        reason = "年休假"
    db.session.commit()
    with pytest.raises(DomainError) as refused:
        dsvc.create(w.reviewer, w.reviewer, substitute, period, reason)
    assert message in refused.value.message
    db.session.rollback()
    assert db.session.scalar(select(Delegation)) is None


def test_the_longest_period_and_reason_are_accepted(factory, db):
    w = factory.world()
    substitute = factory.user("liaison", unit=w.office)
    start = utcnow().replace(microsecond=0)
    row = dsvc.create(w.reviewer, w.reviewer, substitute, dsvc.Period(start, start + timedelta(days=90)), "差" * 200)
    db.session.commit()
    assert row.reason == "差" * 200 and row.ends_at - row.starts_at == timedelta(days=90)


def test_overlapping_delegations_of_one_person_are_refused(factory, db):
    w = factory.world()
    first = factory.user("liaison", unit=w.office, name="甲")
    second = factory.user("liaison", unit=w.office, name="乙")
    _delegate(db, w.reviewer, first, days=5)
    with pytest.raises(DomainError) as refused:
        dsvc.create(w.reviewer, w.reviewer, second, _period(days=5, start_offset=timedelta(days=4)))
    assert "已委托给甲" in refused.value.message and "同一时间只能有一位受托人" in refused.value.message
    db.session.rollback()
    # Right after the first one ends is fine.
    first_row = db.session.scalar(select(Delegation))
    after = dsvc.Period(first_row.ends_at, first_row.ends_at + timedelta(days=2))
    dsvc.create(w.reviewer, w.reviewer, second, after)
    db.session.commit()
    assert db.session.scalar(select(Delegation).where(Delegation.substitute_id == second.id)) is not None


def test_a_substitute_of_another_region_in_the_table_gives_nothing(factory, db):
    """Even a row that bypassed the checks (written directly) never crosses regions."""
    w = factory.world()
    outsider = _other_region(factory, db)
    svc.submit_contribution(w.contribution, w.liaison)
    p = _period()
    db.session.add(Delegation(delegator_id=w.reviewer.id, substitute_id=outsider.id, starts_at=p.starts_at,
                              ends_at=p.ends_at, created_by_id=w.reviewer.id))
    db.session.commit()
    assert not policy.can(outsider, "contribution.review", w.contribution)
    assert not policy.can(outsider, "review.queue")


def test_revoke_ends_it_and_tells_both(factory, db):
    w = factory.world()
    helper = factory.user("liaison", unit=w.office, name="帮手")
    row = _delegate(db, w.reviewer, helper)
    assert policy.can(helper, "review.queue")
    with pytest.raises(PermissionDenied):
        dsvc.revoke(w.other_liaison, row)
    db.session.rollback()
    dsvc.revoke(w.reviewer, row)
    db.session.commit()
    assert row.revoked_at is not None and row.revoked_by_id == w.reviewer.id
    assert not policy.can(helper, "review.queue")
    titles = {(n.user_id, n.title) for n in db.session.scalars(select(Notification))}
    assert {(w.reviewer.id, "委托已撤销"), (helper.id, "委托已撤销")} <= titles
    with pytest.raises(DomainError, match="已经撤销"):
        dsvc.revoke(w.reviewer, row)


def test_admin_sets_a_delegation_for_someone_absent(factory, db):
    w = factory.world()
    helper = factory.user("liaison", unit=w.office, name="帮手")
    row = _delegate(db, w.leader, helper, actor=w.admin)
    assert row.created_by_id == w.admin.id and policy.can(helper, "compile.view")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "delegation.create")).one()
    assert event.actor_id == w.admin.id and event.detail["for_absent"] is True
    told = {n.user_id: n.body for n in db.session.scalars(select(Notification))}
    assert "由管理员管理员设置" in told[w.leader.id] and "签发领导" in told[helper.id]
    # Not for someone of another region; not by a non-admin for somebody else.
    outsider = _other_region(factory, db)
    with pytest.raises(PermissionDenied):
        dsvc.create(w.admin, outsider, helper, _period(start_offset=timedelta(days=30)))
    with pytest.raises(PermissionDenied):
        dsvc.create(w.other_liaison, w.liaison, helper, _period())


def test_two_overlapping_delegations_set_at_once_leave_one(app, factory, db, is_postgres):
    """The delegator's own form and an admin's, posted at the same moment: exactly one stands."""
    from fazhi_flow.extensions import db as _db
    from fazhi_flow.models import User
    from fazhi_flow.testing import race

    w = factory.world()
    first = factory.user("liaison", unit=w.office, username="sub_a", name="甲")
    second = factory.user("liaison", unit=w.office, username="sub_b", name="乙")
    db.session.commit()
    names = {"reviewer": w.reviewer.username, "admin": w.admin.username}
    period = _period(days=10)
    db.session.commit()  # end the reading transaction: on SQLite it holds the write lock

    def job(actor_name, substitute_name):
        def run(barrier):
            by_name = {u.username: u for u in _db.session.scalars(select(User).where(
                User.username.in_([actor_name, names["reviewer"], substitute_name])))}
            if barrier:
                barrier.wait()
            dsvc.create(by_name[actor_name], by_name[names["reviewer"]], by_name[substitute_name], period)
        return run

    outcomes = race(app, is_postgres, [job(names["reviewer"], "sub_a"), job(names["admin"], "sub_b")])
    assert outcomes.count("ok") == 1, outcomes
    assert "同一时间只能有一位受托人" in outcomes[1 - outcomes.index("ok")]
    db.session.expire_all()
    rows = db.session.scalars(select(Delegation)).all()
    assert len(rows) == 1
    assert rows[0].substitute_id == (first.id if outcomes[0] == "ok" else second.id)


def test_the_sql_scope_of_what_a_substitute_may_read_agrees_with_can(factory, db):
    """The list and search scope (``contribution_view_clause``) includes the delegator's material as
    ``can`` does: compared for every contribution, for a liaison's and a reviewer's substitute."""
    from fazhi_flow.models import Contribution

    w = factory.world()
    for unit in (w.other_unit, factory.unit("第三单位")):
        factory.contribution(factory.assignment(w.section, unit))
    liaison_sub = factory.user("liaison", unit=w.office, name="代联络员")
    reviewer_sub = factory.user("liaison", unit=w.other_unit, name="代审核人")
    _delegate(db, w.liaison, liaison_sub)
    _delegate(db, w.reviewer, reviewer_sub)
    everything = db.session.scalars(select(Contribution)).all()
    assert len(everything) == 3
    for person in (liaison_sub, reviewer_sub):
        scoped = set(db.session.scalars(select(Contribution.id).where(policy.contribution_view_clause(person))))
        allowed = {c.id for c in everything if policy.can(person, "contribution.view", c)}
        assert scoped == allowed
        assert w.contribution.id in scoped
