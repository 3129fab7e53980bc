"""The dashboard's matrix kept under the figures token.

Every write the matrix shows — by plain SQL that the application never sees — changes the token, so
the next request shows it: the page then equals one computed afresh, and differs from the page before.
What is kept for one viewer is never shown to another who may see less.
"""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from fazhi_flow.figures.cache import PAGES
from fazhi_flow.models import Assignment, Contribution, Section, Unit

from .conftest import bulk_cycle

ROW = re.compile(r'<th class="unit" scope="row">([^<]*)</th>')


def _matrix(response) -> str:
    """The kept part of the page: from the figures to the end of the page's content."""
    html = response.get_data(as_text=True)
    start = html.index('<ul class="dash-summary"')
    return html[start:html.index("</main>", start)]


@pytest.fixture
def kept(db, factory, login_as):
    """(client of an admin, cycle, page getter): the page getter returns the matrix as served."""
    admin = factory.user("admin")
    db.session.commit()
    cycle = bulk_cycle(db, n_units=6, n_sections=3)
    client = login_as(admin)

    def page(fresh=False, query=""):
        if fresh:
            PAGES.clear()
        response = client.get(f"/dashboard/?cycle={cycle.id}{query}")
        assert response.status_code == 200
        return _matrix(response)

    return client, cycle, page


def _one(db, model, *where):
    return db.session.scalar(select(model).where(*where).order_by(model.id).limit(1))


def _write(db, sql, **params):
    db.session.execute(text(sql), params)
    db.session.commit()
    db.session.expire_all()


def _changes(db, cycle):
    """(name, SQL, parameters[, the page's filters]) of every kind of write the matrix shows."""
    draft, late = db.session.scalars(select(Contribution).where(
        Contribution.cycle_id == cycle.id, Contribution.state == "draft").order_by(Contribution.id).limit(2))
    section = _one(db, Section, Section.cycle_id == cycle.id, Section.parent_id.is_not(None))
    unit = _one(db, Unit, Unit.id == draft.unit_id)
    # A draft past the cycle's due date: its own later date makes it no longer late.
    assignment = _one(db, Assignment, Assignment.id == late.assignment_id)
    today = date.today()
    return [
        ("state", "UPDATE contribution SET state = 'approved' WHERE id = :id", {"id": draft.id}),
        ("first submission", "INSERT INTO revision (contribution_id, number, body, created_at) "
                             "VALUES (:id, 1, '材料', :at)", {"id": draft.id, "at": today - timedelta(days=30)}),
        ("assignment due", "UPDATE assignment SET due = :due WHERE id = :id",
         {"id": assignment.id, "due": today + timedelta(days=30)}),
        ("cycle due", "UPDATE report_cycle SET due = :due WHERE id = :id",
         {"id": cycle.id, "due": today + timedelta(days=60)}),
        ("section title", "UPDATE section SET title = '改名后的工作' WHERE id = :id", {"id": section.id}),
        ("section order", "UPDATE section SET position = 99 WHERE id = :id", {"id": section.id}),
        ("unit name", "UPDATE unit SET name = '改名后的单位' WHERE id = :id", {"id": unit.id}),
        ("unit order", "UPDATE unit SET sort_order = 999 WHERE id = :id", {"id": unit.id}),
        ("unit kind", "UPDATE unit SET kind = 'party' WHERE id = :id", {"id": unit.id}, "&kind=party"),
        ("assignment removed", "DELETE FROM assignment WHERE id = :id AND NOT EXISTS "
                               "(SELECT 1 FROM contribution WHERE assignment_id = :id)", {"id": assignment.id}),
    ]


def test_every_write_the_matrix_shows_is_shown_at_once(db, kept):
    client, cycle, page = kept
    for name, sql, params, *query in _changes(db, cycle):
        query = query[0] if query else ""
        before = page(query=query)
        assert page(query=query) == before  # kept: the same page again
        _write(db, sql, **params)
        shown = page(query=query)
        assert shown == page(fresh=True, query=query), name
        if name != "assignment removed":  # refused by the NOT EXISTS: nothing changed, nothing to show
            assert shown != before, name


def test_a_kept_page_is_served_without_computing_it_again(db, kept, monkeypatch):
    from fazhi_flow.services import dashboard as svc

    _client, _cycle, page = kept
    first = page(fresh=True)
    monkeypatch.setattr(svc, "build_dashboard", lambda *a, **k: pytest.fail("computed again"))
    assert page() == first


def test_a_body_only_save_keeps_the_page(db, kept, monkeypatch):
    from fazhi_flow.services import dashboard as svc

    _client, cycle, page = kept
    first = page(fresh=True)
    draft = _one(db, Contribution, Contribution.cycle_id == cycle.id, Contribution.state == "draft")
    _write(db, "UPDATE contribution SET body = '新的正文' WHERE id = :id", id=draft.id)
    monkeypatch.setattr(svc, "build_dashboard", lambda *a, **k: pytest.fail("computed again"))
    assert page() == first


def test_the_next_day_is_computed_afresh(db, kept, monkeypatch):
    from fazhi_flow.pages import dashboard as page_model

    _client, cycle, page = kept
    today = date.today()
    # Due today: not yet late today, late tomorrow.
    _write(db, "UPDATE report_cycle SET due = :due WHERE id = :id", due=today, id=cycle.id)
    now = page(fresh=True)
    monkeypatch.setattr(page_model, "local_today", lambda: today + timedelta(days=1))
    tomorrow = page()
    assert tomorrow != now and tomorrow == page(fresh=True)
    assert 'class="stat overdue"' in tomorrow and 'class="stat overdue"' not in now


def test_what_one_viewer_was_shown_is_not_shown_to_another(db, factory, login_as):
    cycle = bulk_cycle(db, n_units=5, n_sections=2)
    units = list(db.session.scalars(select(Unit).where(Unit.code.like("b5u%")).order_by(Unit.sort_order)))
    admin = factory.user("admin")
    liaisons = [factory.user("liaison", unit=u) for u in units[:2]]
    db.session.commit()
    PAGES.clear()
    url = f"/dashboard/?cycle={cycle.id}"
    assert ROW.findall(login_as(admin).get(url).get_data(as_text=True)) == [u.name for u in units]
    for liaison, unit in zip(liaisons, units[:2]):
        client = login_as(liaison)
        for _ in range(2):  # computed, then kept
            html = client.get(url).get_data(as_text=True)
            assert ROW.findall(html) == [unit.name]
            others = [c for c in re.findall(r'href="/tasks/(\d+)"', html)]
            own = {str(i) for i in db.session.scalars(select(Contribution.id).where(
                Contribution.cycle_id == cycle.id, Contribution.unit_id == unit.id))}
            assert others and set(others) <= own
    # The admin's cells link to the review page, a liaison's to the own material: never swapped.
    assert "/review/" in login_as(admin).get(url).get_data(as_text=True)


def test_a_substitute_without_a_unit_sees_only_the_units_they_stand_in_for(db, factory, login_as):
    from datetime import timedelta as _td

    from fazhi_flow.services import delegations as dsvc
    from fazhi_flow.timeutil import utcnow

    cycle = bulk_cycle(db, n_units=4, n_sections=2)
    units = list(db.session.scalars(select(Unit).where(Unit.code.like("b4u%")).order_by(Unit.sort_order)))
    delegator = factory.user("liaison", unit=units[2])
    substitute = factory.user("liaison")  # no unit of their own
    db.session.commit()
    client = login_as(substitute)
    url = f"/dashboard/?cycle={cycle.id}"
    PAGES.clear()
    assert ROW.findall(client.get(url).get_data(as_text=True)) == []  # nobody's rows, not everybody's
    start = utcnow().replace(microsecond=0) - _td(minutes=1)
    dsvc.create(delegator, delegator, substitute, dsvc.Period(start, start + _td(days=7)))
    db.session.commit()
    for _ in range(2):  # computed, then kept
        assert ROW.findall(client.get(url).get_data(as_text=True)) == [units[2].name]


def test_a_substitute_with_a_unit_sees_their_own_and_the_delegators_rows(db, factory, login_as):
    from datetime import timedelta as _td

    from fazhi_flow.services import delegations as dsvc
    from fazhi_flow.timeutil import utcnow

    cycle = bulk_cycle(db, n_units=4, n_sections=2)
    units = list(db.session.scalars(select(Unit).where(Unit.code.like("b4u%")).order_by(Unit.sort_order)))
    delegator = factory.user("liaison", unit=units[2])
    substitute = factory.user("liaison", unit=units[0])
    db.session.commit()
    client = login_as(substitute)
    url = f"/dashboard/?cycle={cycle.id}"
    PAGES.clear()
    assert ROW.findall(client.get(url).get_data(as_text=True)) == [units[0].name]
    start = utcnow().replace(microsecond=0) - _td(minutes=1)
    dsvc.create(delegator, delegator, substitute, dsvc.Period(start, start + _td(days=7)))
    db.session.commit()
    for _ in range(2):  # computed, then kept
        html = client.get(url).get_data(as_text=True)
        assert ROW.findall(html) == [units[0].name, units[2].name]
        linked = set(re.findall(r'href="/tasks/(\d+)"', html))
        allowed = {str(i) for i in db.session.scalars(select(Contribution.id).where(
            Contribution.cycle_id == cycle.id, Contribution.unit_id.in_([units[0].id, units[2].id])))}
        assert linked and linked <= allowed
    assert ROW.findall(login_as(delegator).get(url).get_data(as_text=True)) == [units[2].name]


def test_a_page_past_the_last_is_shown_as_the_last_and_not_kept(db, kept):
    _client, cycle, page = kept
    PAGES.clear()
    last = page()
    assert page(query="&page=999") == last
    assert page(query="&page=-3") == last
    assert len(PAGES._items) == 1
