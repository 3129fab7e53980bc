"""Fixtures of the dashboard tests: a cycle with several units in every state."""
from datetime import date, datetime, timedelta

import pytest

from fazhi_flow.models import Revision
from fazhi_flow.testing import PASSWORD, FreshUserClient, login  # noqa: F401  (used by the tests here)


@pytest.fixture()
def login_as(app, db):
    def _login(user):
        client = FreshUserClient(app, app.response_class, use_cookies=True)
        response = client.post("/login", data={"username": user.username, "password": PASSWORD})
        assert response.status_code == 302
        return client

    return _login


def build_cycle(factory, db, n_units, n_sections=3, today=None):
    """A collecting cycle: every unit leads every section; states rotate through the workflow."""
    today = today or date.today()
    office = factory.unit("区委依法治区办", code="office", kind="party")
    cycle = factory.cycle(state="collecting", region=f"测试区{n_units}")
    cycle.due = today - timedelta(days=2)
    top = factory.section(cycle, "主要举措和成效", position=0)
    sections = [factory.section(cycle, f"第{i + 1}项工作", parent=top, position=i) for i in range(n_sections)]
    units = [factory.unit(f"单位{i + 1:03d}", code=f"unit{i + 1:03d}",
                          kind="township" if i % 2 else "government") for i in range(n_units)]
    states = ["draft", "submitted", "approved", "returned", "unit_review"]
    for u_index, unit in enumerate(units):
        for s_index, section in enumerate(sections):
            assignment = factory.assignment(section, unit, role="lead" if s_index == 0 else "support")
            state = states[(u_index + s_index) % len(states)]
            contribution = factory.contribution(assignment, state=state)
            if state in ("submitted", "approved", "returned"):
                db.session.add(Revision(contribution_id=contribution.id, number=1, body="材料",
                                        created_at=datetime(today.year, today.month, today.day) - timedelta(days=5)))
    db.session.flush()
    return office, cycle, top, sections, units


def bulk_cycle(db, n_units, n_sections, today=None):
    """Like build_cycle, but inserted in bulk so that hundreds of units stay fast to set up."""
    from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section, Unit

    today = today or date.today()
    cycle = ReportCycle(year=2024, region=f"批量区{n_units}", title="2024年法治政府建设年度报告",
                        due=today - timedelta(days=2), state="collecting")
    db.session.add(cycle)
    db.session.flush()
    top = Section(cycle_id=cycle.id, code="top", position=0, title="主要举措和成效")
    db.session.add(top)
    db.session.flush()
    sections = [Section(cycle_id=cycle.id, parent_id=top.id, code=f"s{i}", position=i, title=f"第{i + 1}项工作")
                for i in range(n_sections)]
    units = [Unit(code=f"b{n_units}u{i}", name=f"批量单位{i + 1:03d}", kind="township" if i % 2 else "government",
                  sort_order=i) for i in range(n_units)]
    db.session.add_all(sections + units)
    db.session.flush()
    assignments = [Assignment(section_id=s.id, unit_id=u.id, role="lead") for u in units for s in sections]
    db.session.add_all(assignments)
    db.session.flush()
    states = ["draft", "submitted", "approved", "returned", "unit_review"]
    contributions = [Contribution(assignment_id=a.id, cycle_id=cycle.id, section_id=a.section_id, unit_id=a.unit_id,
                                  body="", state=states[i % len(states)]) for i, a in enumerate(assignments)]
    db.session.add_all(contributions)
    db.session.flush()
    db.session.add_all([Revision(contribution_id=c.id, number=1, body="材料",
                                 created_at=datetime(today.year, today.month, today.day) - timedelta(days=5))
                        for c in contributions if c.state != "draft"])
    db.session.commit()
    return cycle
