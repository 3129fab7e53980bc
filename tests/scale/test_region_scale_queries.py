"""The reminder sweep across regions: the same material in 2 or in 6 sibling districts (each with a
unit "gaj") costs the same number of SQL statements; what it queues grows with the districts, the
statements do not (policies, people, unit heads, admins, robots and digests are read for all regions
at once, not per region or per cycle)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from fazhi_flow.models import Region, ReportCycle, Unit, User, WebhookTarget
from fazhi_flow.models.reminder import OutboxMessage, Reminder, ReminderPolicy
from fazhi_flow.reminders.jobs import CYCLES_PER_PASS, deliver, sweep
from fazhi_flow.testing import count_queries
from tests.reminders.helpers import at

DUE = date(2025, 1, 10)
ENTERED = datetime(2025, 1, 6, 2, 0)  # naive UTC: Monday 6 January, 10:00 local
SWEPT = at(2025, 1, 15, 9, 5)
# Per district: overdue + escalation (gaj), reviewer backlog and 待单位审核 (sfj), the digest.
PER_DISTRICT = 5


def _user(db, unit, username, *roles):
    user = User(username=username, name=username, unit=unit, email=f"{username}@example.cn")
    user.set_roles(roles)
    db.session.add(user)
    return user


def build(factory, db, districts: int, custom_policy: bool = False):
    """``districts`` sibling districts under one city, each collecting with the same material: an
    overdue draft of its "gaj", a submission and one in 待单位审核 of its "sfj" (which has no unit
    head), a robot for its gaj. With ``custom_policy`` every other district has its own policy."""
    city = Region(code="120100", name="天津市", level="city")
    db.session.add(city)
    cycles = []
    for i in range(districts):
        name = f"第{i + 1}区"
        region = Region(code=f"1201{i + 10:02d}", name=name, level="county", parent=city)
        office = Unit(region=region, code="yfzqb", name=f"{name}委依法治区办", kind="party")
        gaj = Unit(region=region, code="gaj", name=f"{name}公安分局", kind="judicial")
        sfj = Unit(region=region, code="sfj", name=f"{name}司法局")
        db.session.add_all([region, office, gaj, sfj])
        login = f"d{i}"
        _user(db, office, f"{login}_admin", "admin")
        _user(db, office, f"{login}_reviewer", "reviewer")
        _user(db, gaj, f"{login}_gaj", "liaison")
        _user(db, gaj, f"{login}_gaj_head", "unit_head")
        _user(db, sfj, f"{login}_sfj", "liaison")
        cycle = ReportCycle(year=2024, region=name, owner=region, title=f"{name}2024年法治政府建设年度报告",
                            due=DUE, unit_head_review=True, issuers=f"{name}人民政府", state="collecting",
                            opened_at=datetime(2024, 12, 2, 1, 0))
        db.session.add(cycle)
        db.session.flush()
        if custom_policy and i % 2:
            db.session.add(ReminderPolicy(cycle_id=cycle.id, before_due_days="3,1", overdue_every=1,
                                          overdue_max=5, escalate_after=3, backlog_days=2, backlog_max=3))
        section = factory.section(cycle, "严格规范公正文明执法")
        other = factory.section(cycle, "行政复议和行政应诉")
        factory.contribution(factory.assignment(section, gaj, due=DUE), body="全年办理行政复议案件{{fy_cases}}件。")
        waiting = factory.contribution(factory.assignment(section, sfj, due=DUE), state="submitted")
        held = factory.contribution(factory.assignment(other, sfj, due=DUE), state="unit_review")
        waiting.submitted_at = held.submitted_at = ENTERED
        db.session.add(WebhookTarget(name=f"{name}公安群", kind="wecom", url="http://127.0.0.1:9/robot",
                                     unit_id=gaj.id, active=True, created_at=datetime(2024, 12, 1)))
        cycles.append(cycle)
    db.session.commit()
    return cycles


def _wipe(db):
    db.session.rollback()
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


def measure(factory, db, districts: int, custom_policy: bool = False) -> dict:
    cycle_ids = [c.id for c in build(factory, db, districts, custom_policy)]
    db.session.expunge_all()
    with count_queries(db.engine) as first:
        result = sweep(SWEPT)
    with count_queries(db.engine) as again:
        repeat = sweep(SWEPT)
    queued = {cid: 0 for cid in cycle_ids}
    for cycle_id in db.session.scalars(select(Reminder.cycle_id)):
        queued[cycle_id] += 1
    # Each reminder's people and robots are of its own cycle's region.
    crossed = db.session.execute(
        select(Reminder.id).join(OutboxMessage, OutboxMessage.reminder_id == Reminder.id)
        .join(ReportCycle, ReportCycle.id == Reminder.cycle_id)
        .outerjoin(User, User.id == OutboxMessage.user_id)
        .outerjoin(WebhookTarget, WebhookTarget.id == OutboxMessage.webhook_id)
        .outerjoin(Unit, Unit.id == WebhookTarget.unit_id)
        .where((User.region_id != ReportCycle.region_id) | (Unit.region_id != ReportCycle.region_id))).all()
    out = dict(first=len(first), again=len(again), queued=len(result.queued), repeat=len(repeat.queued),
               per_cycle=set(queued.values()), crossed=len(crossed))
    _wipe(db)
    return out


def test_sweep_statements_do_not_grow_with_the_regions(factory, db):
    two = measure(factory, db, 2)
    six = measure(factory, db, 6)
    assert two["queued"] == 2 * PER_DISTRICT and six["queued"] == 6 * PER_DISTRICT, (two, six)
    assert two["per_cycle"] == six["per_cycle"] == {PER_DISTRICT}
    assert two["crossed"] == six["crossed"] == 0
    assert two["repeat"] == six["repeat"] == 0
    assert six["first"] == two["first"], (two, six)
    assert six["again"] == two["again"], (two, six)


def test_regions_with_their_own_policies_cost_no_more_statements(factory, db):
    """Half the districts keep their own reminder policy: still one candidate statement, one
    directory, one digest count for all of them."""
    two = measure(factory, db, 2, custom_policy=True)
    six = measure(factory, db, 6, custom_policy=True)
    assert six["first"] == two["first"] and six["again"] == two["again"], (two, six)
    assert six["crossed"] == 0 and six["queued"] >= 6 * (PER_DISTRICT - 1)


def test_a_pass_holds_a_bounded_number_of_cycles():
    # 100 districts: two passes, each a fixed number of statements.
    assert 10 <= CYCLES_PER_PASS <= 100


def test_delivery_of_all_regions_reminders_costs_no_more_per_region(factory, db, app):
    """Delivery claims and decides on the outbox in batches, whatever the regions: 2 and 6 districts
    with their reminders due cost the same statements per message batch (no per-region reads)."""
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=9, MAIL_SECURITY="none", MAIL_USERNAME="", MAIL_TIMEOUT=1,
                      WEBHOOK_TIMEOUT=1)
    counts = []
    for districts in (2, 6):
        build(factory, db, districts)
        sweep(SWEPT)
        db.session.expunge_all()
        with count_queries(db.engine) as statements:
            deliver(at(2025, 1, 15, 9, 6), limit=200, batch_size=200)
        counts.append(len(statements))
        _wipe(db)
    # Nothing can be sent (no server listens): every channel is found down on its first message
    # and the rest wait, so the statements are those of the reads and one write per outcome class.
    assert counts[1] - counts[0] <= 2 * 4, counts
