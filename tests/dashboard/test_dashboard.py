"""The progress dashboard: figures, who sees which rows, filters, export."""
import io
from datetime import date, timedelta

from openpyxl import load_workbook
from sqlalchemy import select

from fazhi_flow.models import Assignment
from fazhi_flow.services.dashboard import build_dashboard, percent

from .conftest import build_cycle

TODAY = date(2025, 3, 1)


def test_figures_match_the_states_and_deadlines(factory, db):
    office, cycle, top, sections, units = build_cycle(factory, db, n_units=5, today=TODAY)
    admin = factory.user("admin", unit=office)
    late = db.session.scalar(select(Assignment).where(Assignment.unit_id == units[0].id,
                                                      Assignment.section_id == sections[1].id))
    late.due = TODAY + timedelta(days=10)  # this unit has its own, later date for one section
    dash = build_dashboard(cycle, admin, today=TODAY)
    assert dash.total == 15 and sum(dash.counts.values()) == 15
    assert dash.counts == {"pending": 0, "draft": 3, "unit_review": 3, "submitted": 3, "returned": 3, "approved": 3}
    # Unit 1: draft, submitted, approved -> completion 1/3; the draft is overdue (cycle due 2 days ago).
    row = dash.rows[0]
    assert [c.state if c else None for c in row.line] == ["draft", "submitted", "approved"]
    assert row.completion == 1 / 3 and row.overdue == 1 and row.line[0].overdue_days == 2
    # Every cell's due date follows Assignment.effective_due().
    for assignment in db.session.scalars(select(Assignment)):
        cell = next(r for r in dash.rows if r.unit.id == assignment.unit_id).cells[assignment.section_id]
        assert cell.due == assignment.effective_due()
    assert row.cells[sections[1].id].due == TODAY + timedelta(days=10)
    # On time: submitted 5 days ago, before the due date two days ago; the overdue draft counts against.
    assert (row.on_time, row.on_time_base) == (2, 3) and percent(row.on_time_rate) == "67%"
    assert dash.overdue == sum(r.overdue for r in dash.rows) == 9  # every draft, returned and unit_review
    assert [n.short_number for n in dash.columns] == ["一（一）", "一（二）", "一（三）"]


def test_filters(factory, db):
    office, cycle, top, sections, units = build_cycle(factory, db, n_units=6, today=TODAY)
    admin = factory.user("admin", unit=office)
    dash = build_dashboard(cycle, admin, unit_kind="township", today=TODAY)
    assert {r.unit.kind for r in dash.rows} == {"township"} and dash.total == 9
    dash = build_dashboard(cycle, admin, state="approved", today=TODAY)
    assert all(r.counts["approved"] for r in dash.rows) and len(dash.rows) < 6
    dash = build_dashboard(cycle, admin, overdue_only=True, today=TODAY)
    assert dash.rows and all(r.overdue for r in dash.rows)


def test_setup_cycle_shows_pending_cells(factory, db):
    admin = factory.user("admin")
    cycle = factory.cycle(state="setup")
    section = factory.section(cycle, "甲")
    factory.assignment(section, factory.unit())
    dash = build_dashboard(cycle, admin, today=TODAY)
    assert dash.counts["pending"] == 1 and dash.rows[0].line[0].label == "未开始" and dash.overdue == 0


def test_who_sees_which_rows(factory, db, login_as):
    office, cycle, top, sections, units = build_cycle(factory, db, n_units=3)
    admin = factory.user("admin", unit=office)
    reviewer = factory.user("reviewer", unit=office)
    leader = factory.user("leader", unit=office)
    liaison = factory.user("liaison", unit=units[1])
    head = factory.user("unit_head", unit=units[2])
    db.session.commit()
    for user in (admin, reviewer, leader):
        page = login_as(user).get("/dashboard/").get_data(as_text=True)
        assert all(u.name in page for u in units), user
    page = login_as(liaison).get("/dashboard/").get_data(as_text=True)
    assert units[1].name in page and units[0].name not in page and units[2].name not in page
    assert "只显示本单位" in page
    page = login_as(head).get("/dashboard/").get_data(as_text=True)
    assert units[2].name in page and units[1].name not in page
    # The export follows the same rule.
    book = load_workbook(io.BytesIO(login_as(liaison).get("/dashboard/export.xlsx").data))
    names = [row[0].value for row in book["进度矩阵"].iter_rows(min_row=3)]
    assert names == [units[1].name]


def test_pages_refuse_the_wrong_people(factory, db, login_as, client):
    office, cycle, *_ = build_cycle(factory, db, n_units=2)
    nobody = factory.user("liaison")  # a liaison without a unit
    db.session.commit()
    assert client.get("/dashboard/").status_code == 302
    assert login_as(nobody).get("/dashboard/").status_code == 403
    admin = factory.user("admin", unit=office)
    db.session.commit()
    assert login_as(admin).get("/dashboard/?cycle=999999").status_code == 404
    assert login_as(admin).get("/dashboard/?state=<script>&kind=x&overdue=yes").status_code == 200


def test_page_and_export(factory, db, login_as):
    office, cycle, top, sections, units = build_cycle(factory, db, n_units=4)
    admin = factory.user("admin", unit=office)
    db.session.commit()
    client = login_as(admin)
    page = client.get(f"/dashboard/?cycle={cycle.id}").get_data(as_text=True)
    assert "state-approved" in page and "overdue" in page and "一（二）" in page and "导出Excel" in page
    response = client.get(f"/dashboard/export.xlsx?cycle={cycle.id}&kind=township")
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(response.data))
    matrix, stats, summary = book["进度矩阵"], book["单位统计"], book["状态汇总"]
    assert [c.value for c in matrix[2]][:3] == ["单位", "单位类型", "一、主要举措和成效 › （一）第1项工作"]
    assert [r[0].value for r in matrix.iter_rows(min_row=3)] == [units[1].name, units[3].name]
    assert stats["A1"].value == "单位" and stats.max_row == 3
    assert [r[0].value for r in summary.iter_rows(min_row=2)][-2:] == ["合计", "其中逾期"]
