"""The dashboard's matrix paged by units: the pages together are the whole matrix, in order, under every
filter; the figures and the totals row (from aggregate SQL) count every unit, as the rows do; the pager
keeps the filters."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import Assignment, ReportCycle, User
from fazhi_flow.services.dashboard import CELL_LABELS, build_dashboard

from .test_compile_queries import _client
from .world import build_world

FILTERS = [{}, {"state": "approved"}, {"state": "draft"}, {"state": "pending"}, {"unit_kind": "township"},
           {"overdue_only": True}, {"state": "returned", "unit_kind": "government", "overdue_only": True}]


def _cells(dash):
    return [(row.unit.id, [(c.state, c.overdue_days, c.overdue_workdays, c.contribution_id) if c else None
                           for c in row.line], row.on_time, row.on_time_base) for row in dash.rows]


@pytest.fixture()
def world(db):
    world = build_world(db, 13, 5)
    cycle_id, admin_id = world.cycle.id, world.admin.id
    # One unit has its own, later date for one section; one section no contribution yet (pending).
    first = db.session.scalar(select(Assignment).where(Assignment.unit_id == world.unit_ids[2],
                                                       Assignment.section_id == world.section_ids[0]))
    first.due = world.cycle.due + timedelta(days=30)
    db.session.commit()
    db.session.expunge_all()
    return db.session.get(ReportCycle, cycle_id), db.session.get(User, admin_id), world


@pytest.mark.parametrize("filters", FILTERS)
def test_the_pages_together_are_the_whole_matrix_and_the_figures_count_every_unit(db, world, filters):
    cycle, admin, _world = world
    today = cycle.due + timedelta(days=9)  # drafts and returned material are late now
    whole = build_dashboard(cycle, admin, today=today, **filters)
    pages, number = [], 1
    while True:
        dash = build_dashboard(cycle, admin, today=today, page=number, per_page=4, **filters)
        assert dash.page == number and dash.unit_count == len(whole.rows)
        pages.append(dash)
        if number >= dash.pages:
            break
        number += 1
    assert len(pages) == max(1, -(-len(whole.rows) // 4))
    assert [cells for dash in pages for cells in _cells(dash)] == _cells(whole)
    assert all(len(dash.rows) <= 4 for dash in pages)
    # The figures: every unit the viewer may see (kind filter applied), as the unfiltered rows add up.
    counted = build_dashboard(cycle, admin, today=today, unit_kind=filters.get("unit_kind"))
    expected = dict.fromkeys(CELL_LABELS, 0)
    for row in counted.rows:
        for state, n in row.counts.items():
            expected[state] += n
    for dash in pages:
        assert dash.counts == expected and dash.total == sum(expected.values())
        assert dash.overdue == sum(row.overdue for row in counted.rows)
        assert dash.columns == whole.columns
        totals = [(t.total, t.approved, t.overdue) for t in dash.column_totals]
        assert totals == [(sum(1 for r in counted.rows if r.line[i]),
                           sum(1 for r in counted.rows if r.line[i] and r.line[i].state == "approved"),
                           sum(1 for r in counted.rows if r.line[i] and r.line[i].overdue)) for i in range(len(dash.columns))]
    if filters.get("overdue_only"):
        assert all(row.overdue for row in whole.rows)
    assert whole.overdue > 0 and whole.counts["approved"] > 0


def test_a_cell_without_contribution_is_pending_in_rows_and_figures(db, world):
    from fazhi_flow.models import Contribution

    cycle, admin, w = world
    # The cell's revisions, values and logs go first (foreign keys).
    cid = w.contribution_id(3, 1)
    for table in ("revision", "indicator_value", "transition_log"):
        db.session.execute(db.text(f"DELETE FROM {table} WHERE contribution_id = :cid"), {"cid": cid})
    db.session.execute(Contribution.__table__.delete().where(Contribution.id == cid))
    db.session.commit()
    dash = build_dashboard(cycle, admin, state="pending", page=1, per_page=4)
    assert dash.counts["pending"] == 1 and dash.unit_count == 1
    assert [row.unit.id for row in dash.rows] == [w.unit_ids[3]]


def test_the_pager_keeps_the_filters_and_a_page_out_of_range_shows_the_last(app, db, world):
    cycle, admin, _w = world
    app.config["DASHBOARD_UNITS_PER_PAGE"] = 4
    try:
        client = _client(app, admin)
        base = f"/dashboard/?cycle={cycle.id}&kind=township"
        html = client.get(base).get_data(as_text=True)
        # 13 units, 6 of them townships (every second): two pages.
        assert "共6个单位，第1–4个（第1/2页）" in html
        assert html.count('<th class="unit" scope="row">') == 4 and "全部单位合计" in html
        nxt = re.search(r'<a class="btn btn-small" href="([^"]+)" rel="next">', html).group(1).replace("&amp;", "&")
        assert nxt == f"/dashboard/?cycle={cycle.id}&kind=township&page=2"
        second = client.get(nxt).get_data(as_text=True)
        assert second.count('<th class="unit" scope="row">') == 2 and "第5–6个（第2/2页）" in second
        assert client.get(base + "&page=99").get_data(as_text=True).count('<th class="unit" scope="row">') == 2
        for bad in ("0", "-3", "abc", "9" * 30):
            response = client.get(base + "&page=" + bad)
            assert response.status_code == 200 and "第1–4个（第1/2页）" in response.get_data(as_text=True)
        # A cycle that fits one page has no pager and no totals row.
        app.config["DASHBOARD_UNITS_PER_PAGE"] = 50
        html = client.get(base).get_data(as_text=True)
        assert 'class="pager"' not in html and 'class="totals"' not in html
        assert html.count('<th class="unit" scope="row">') == 6
    finally:
        app.config.pop("DASHBOARD_UNITS_PER_PAGE", None)
