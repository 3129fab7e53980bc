"""A new cycle's proposed title follows the chosen year: on the server (the page without JavaScript,
or a title left empty) for both the standard outline and the copy of an earlier cycle."""
import re
from datetime import date

from sqlalchemy import select

from fazhi_flow.models import ReportCycle


def _value(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html).group(0)
    match = re.search(r'value="([^"]*)"', tag)
    return match.group(1) if match else ""


def test_the_proposed_title_follows_a_changed_year_without_javascript(admin_client, office, db):
    page = admin_client.get("/admin/cycles/new").get_data(as_text=True)
    shown_year = date.today().year - 1
    assert _value(page, "t-year") == str(shown_year) and _value(page, "t-title_year") == str(shown_year)
    assert _value(page, "t-title") == f"{shown_year}年法治政府建设年度报告"
    # The admin changes only the year; the title on the page was proposed for the other year.
    data = {"t-year": "2026", "t-region": "某某区", "t-title": _value(page, "t-title"),
            "t-title_year": _value(page, "t-title_year"), "t-due": "2027-01-10"}
    assert admin_client.post("/admin/cycles/new/template", data=data).status_code == 303
    assert db.session.scalar(select(ReportCycle.title).where(ReportCycle.year == 2026)) == "2026年法治政府建设年度报告"


def test_a_typed_title_is_kept_and_an_empty_one_is_proposed(admin_client, office, db):
    typed = {"t-year": "2026", "t-region": "某某区", "t-title": "某某区2026年度法治政府建设情况报告",
             "t-title_year": "2025"}
    assert admin_client.post("/admin/cycles/new/template", data=typed).status_code == 303
    empty = {"t-year": "2027", "t-region": "某某区", "t-title": "  "}
    assert admin_client.post("/admin/cycles/new/template", data=empty).status_code == 303
    titles = dict(db.session.execute(select(ReportCycle.year, ReportCycle.title)).all())
    assert titles[2026] == "某某区2026年度法治政府建设情况报告"
    assert titles[2027] == "2027年法治政府建设年度报告"


def test_a_copy_titled_for_the_year_chosen_not_the_year_proposed(admin_client, office, db):
    office.cycle.title = "某某区2024年法治政府建设年度报告"
    db.session.commit()
    page = admin_client.get(f"/admin/cycles/new?source={office.cycle.id}").get_data(as_text=True)
    assert _value(page, "c-title") == "某某区2025年法治政府建设年度报告" and _value(page, "c-title_year") == "2025"
    data = {"c-source": str(office.cycle.id), "c-year": "2026", "c-title": _value(page, "c-title"),
            "c-title_year": "2025"}
    preview = admin_client.post("/admin/cycles/new/clone", data=data).get_data(as_text=True)
    assert "复制为2026年度：“某某区2026年法治政府建设年度报告”" in preview
    confirm = {"c-source": str(office.cycle.id), "c-year": _value(preview, "c-year"),
               "c-title": _value(preview, "c-title"), "c-title_year": _value(preview, "c-title_year"),
               "confirm": "1"}
    assert admin_client.post("/admin/cycles/new/clone", data=confirm).status_code == 303
    assert db.session.scalar(select(ReportCycle.title).where(ReportCycle.year == 2026)) == \
        "某某区2026年法治政府建设年度报告"
