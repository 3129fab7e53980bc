"""In the browser, the new cycle form's proposed title follows the year as it is typed, and what is
saved is what was shown."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from fazhi_flow.models import ReportCycle

pytestmark = pytest.mark.browser


def test_the_title_follows_the_year_typed(factory, db, person):
    w = factory.world(state="setup")
    w.cycle.title = "测试区2024年法治政府建设年度报告"
    db.session.commit()
    source_id = w.cycle.id
    admin = person(w.admin)
    page = admin.login()
    page.goto("/admin/cycles/new")
    proposed = date.today().year - 1
    assert page.input_value("#t-title") == f"{proposed}年法治政府建设年度报告"
    page.fill("#t-year", "2027")
    assert page.input_value("#t-title") == "2027年法治政府建设年度报告"
    page.fill("#t-region", "测试区")
    page.click("#template button[type=submit]")
    page.wait_for_load_state()
    db.session.expire_all()
    assert db.session.scalar(select(ReportCycle.title).where(ReportCycle.year == 2027)) == "2027年法治政府建设年度报告"
    db.session.commit()  # end the read transaction before the browser writes (SQLite)

    # A title the admin wrote without a year is left alone.
    page.goto("/admin/cycles/new")
    page.fill("#t-title", "法治政府建设情况报告")
    page.fill("#t-year", "2028")
    assert page.input_value("#t-title") == "法治政府建设情况报告"

    # The copy of an earlier report: the proposed title moves with the year too.
    page.goto(f"/admin/cycles/new?source={source_id}")
    assert page.input_value("#c-title") == "测试区2025年法治政府建设年度报告"
    page.fill("#c-year", "2026")
    assert page.input_value("#c-title") == "测试区2026年法治政府建设年度报告"
    page.click("#clone button[type=submit]")
    page.wait_for_load_state()
    assert "复制为2026年度：“测试区2026年法治政府建设年度报告”" in page.content()
