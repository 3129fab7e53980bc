"""Assignments: lead and support units, reviewers, due dates per section and per unit."""
from datetime import date

import pytest
from sqlalchemy import func, select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import Assignment, AuditEvent, Contribution, Notification
from fazhi_flow.services import assignments as svc


def test_assign_units_reviewers_and_dates_through_the_page(admin_client, office, db):
    sfj, scj, mmz = office.units
    response = admin_client.post(f"/admin/sections/{office.leaf.id}/assignments", data={
        f"role-{sfj.id}": "lead", f"role-{scj.id}": "support", f"due-{scj.id}": "2025-01-20",
        "section_due": "2025-01-15", "reviewers": [str(office.reviewer.id)]})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    rows = {a.unit_id: a for a in office.leaf.assignments}
    assert rows[sfj.id].role == "lead" and rows[scj.id].role == "support" and mmz.id not in rows
    assert rows[scj.id].effective_due() == date(2025, 1, 20)
    assert rows[sfj.id].effective_due() == date(2025, 1, 15)
    assert [u.id for u in office.leaf.reviewers] == [office.reviewer.id]
    page = admin_client.get(f"/admin/cycles/{office.cycle.id}/assignments").get_data(as_text=True)
    assert "区司法局" in page and "审核人甲" in page
    actions = [a for (a,) in db.session.execute(select(AuditEvent.action))]
    assert actions.count("assignment.add") == 2 and "section.reviewers" in actions and "section.due" in actions


def test_bad_dates_keep_what_was_typed_and_change_nothing(admin_client, office, db):
    sfj = office.units[0]
    response = admin_client.post(f"/admin/sections/{office.leaf.id}/assignments", data={
        f"role-{sfj.id}": "lead", f"due-{sfj.id}": "2025-02-30", "section_due": "明天"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "2025-02-30" in page and "格式不正确" in page and 'value="明天"' in page
    assert db.session.scalar(select(func.count(Assignment.id))) == 0
    response = admin_client.post(f"/admin/sections/{office.leaf.id}/assignments", data={
        f"role-{sfj.id}": "lead", f"due-{sfj.id}": "2031-01-01"})
    assert response.status_code == 400 and "与2024年度报告不相符" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Assignment.id))) == 0


def test_a_non_reviewer_cannot_be_named_reviewer(office, db):
    with pytest.raises(DomainError, match="不是审核人"):
        svc.set_reviewers(office.leaf, office.admin, [office.liaison.id])


def test_adding_while_collecting_creates_material_and_tells_the_liaison(office, factory, db):
    office.cycle.state = "collecting"
    db.session.commit()
    svc.set_section_assignments(office.leaf, office.admin, {office.units[0].id: svc.UnitChoice("lead")})
    db.session.commit()
    contribution = db.session.scalar(select(Contribution))
    assert contribution.unit_id == office.units[0].id and contribution.state == "draft"
    note = db.session.scalar(select(Notification).where(Notification.user_id == office.liaison.id))
    assert "严格规范执法" in note.title


def test_removing_an_assignment_with_material_is_refused(office, factory, db):
    assignment = factory.assignment(office.leaf, office.units[0])
    factory.contribution(assignment, body="已写的内容")
    db.session.commit()
    with pytest.raises(DomainError, match="不能取消其任务分配"):
        svc.set_section_assignments(office.leaf, office.admin, {})
    db.session.rollback()
    assert db.session.scalar(select(func.count(Assignment.id))) == 1
    # An untouched draft may go.
    db.session.get(Contribution, assignment.contribution.id).body = ""
    db.session.commit()
    svc.set_section_assignments(office.leaf, office.admin, {})
    db.session.commit()
    assert db.session.scalar(select(func.count(Assignment.id))) == 0


def test_assignments_are_frozen_after_collection(office, db):
    office.cycle.state = "compiling"
    db.session.commit()
    with pytest.raises(DomainError, match="筹备中或征集中"):
        svc.set_section_assignments(office.leaf, office.admin, {office.units[0].id: svc.UnitChoice("lead")})
