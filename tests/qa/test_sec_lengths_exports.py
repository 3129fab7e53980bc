"""Lengths from one source (issue 9): forms and the cycle-file importer accept exactly what the
columns hold, and a cycle whose every title and name is at that maximum exports without an error
(dashboard and figures XLSX, the report as TXT, HTML, DOCX and PDF). Run on PostgreSQL, which
enforces the lengths."""
import io

import pytest

from openpyxl import load_workbook
from sqlalchemy import select

from fazhi_flow.limits import column_length
from fazhi_flow.models import ReportCycle, Section, Unit, User
from fazhi_flow.models.indicator import Indicator
from fazhi_flow.services import importer
from fazhi_flow.services.cycles import compile_cycle
from fazhi_flow.services.figures import define_indicator
from fazhi_flow.testing import FreshUserClient, login
from tests.publish.conftest import build_report_cycle
from tests.qa.test_sec_lengths_messages import ascii_name, chinese, long_email


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def test_admin_forms_take_the_column_maximum_and_refuse_one_more(app, db, factory):
    office = factory.unit("区委依法治区办", code="office")
    admin = factory.user("admin", unit=office)
    db.session.commit()
    client = _client(app, admin)
    name = chinese(column_length(Unit.name), "司法局")
    too_long = client.post("/admin/units/new", data={"code": "sfj", "name": name + "局", "kind": "government"})
    assert too_long.status_code == 400
    page = too_long.get_data(as_text=True)
    assert f"单位名称最多{column_length(Unit.name)}字。" in page and name + "局" in page  # typed text kept
    assert db.session.scalar(select(Unit).where(Unit.code == "sfj")) is None
    code = ascii_name(column_length(Unit.code), "sfj")
    assert client.post("/admin/units/new", data={"code": code, "name": name, "kind": "government"}).status_code in (302, 303)
    unit = db.session.scalar(select(Unit).where(Unit.code == code))
    assert unit.name == name
    user = {"username": ascii_name(column_length(User.username), "liaison"),
            "name": chinese(column_length(User.name), "张"), "unit": str(unit.id), "roles": ["liaison"],
            "email": long_email(column_length(User.email), "zhang"), "phone": "1" * column_length(User.phone)}
    refused = client.post("/admin/users/new", data={**user, "email": "x" + user["email"]})
    assert refused.status_code == 400 and f"邮箱最多{column_length(User.email)}个字符。" in refused.get_data(as_text=True)
    assert client.post("/admin/users/new", data=user).status_code == 200  # shows the one-time password
    created = db.session.scalar(select(User).where(User.username == user["username"]))
    assert (created.name, created.email, created.phone) == (user["name"], user["email"], user["phone"])


def _cycle_file(title: str, section_title: str, unit_name: str) -> str:
    return (f"cycle:\n  title: \"{title}\"\n  year: 2031\n  region: \"{chinese(column_length(ReportCycle.region))}\"\n"
            f"units:\n  - code: {ascii_name(column_length(Unit.code), 'u')}\n    name: \"{unit_name}\"\n"
            f"outline:\n  - code: {ascii_name(column_length(Section.code), 's')}\n"
            f"    title: \"{section_title}\"\n")


def test_cycle_file_takes_the_column_maximum_and_refuses_one_more(app, db, factory):
    admin = factory.user("admin")
    db.session.commit()
    title, section, unit = (chinese(column_length(ReportCycle.title)), chinese(column_length(Section.title)),
                            chinese(column_length(Unit.name)))
    for bad, fragment in ((_cycle_file(title + "报", section, unit), "cycle.title"),
                          (_cycle_file(title, section + "章", unit), ".title"),
                          (_cycle_file(title, section, unit + "局"), ".name")):
        with pytest.raises(importer.CycleFileError) as caught:
            importer.import_cycle(bad, admin)
        assert any(fragment in e and "过长" in e for e in caught.value.errors), caught.value.errors
        db.session.rollback()
    result = importer.import_cycle(_cycle_file(title, section, unit), admin)
    db.session.commit()
    assert result.cycle.title == title
    assert db.session.scalar(select(Section.title).where(Section.cycle_id == result.cycle.id)) == section
    assert db.session.scalar(select(Unit.name).where(Unit.name == unit)) == unit


def _max_out_report(report, db, factory):
    cycle = report.cycle
    cycle.title = chinese(column_length(ReportCycle.title), "示例区")
    cycle.region = chinese(column_length(ReportCycle.region), "示例区")
    cycle.issuers = "\n".join(chinese(column_length(Unit.name), f"落款{i}") for i in range(3))
    for i, section in enumerate(report.sections.values()):
        section.title = chinese(column_length(Section.title), f"第{i}章")
    for i, unit in enumerate(report.units.values()):
        unit.name = chinese(column_length(Unit.name), f"单位{i}")
    for i, user in enumerate((report.admin, report.leader, report.liaison, report.reviewer)):
        user.name = chinese(column_length(User.name), f"姓名{i}")
        user.email = long_email(column_length(User.email), f"u{i}")
    define_indicator(cycle, report.admin, report.sections["rules"], {
        "code": ascii_name(column_length(Indicator.code), "rules_cases"),
        "name": chinese(column_length(Indicator.name), "指标"), "measure": "件" * column_length(Indicator.measure),
        "type": "integer", "reported_by": "all", "guidance": chinese(column_length(Indicator.guidance))})
    db.session.commit()


def test_max_length_cycle_exports_every_format(app, db, factory):
    report = build_report_cycle(factory, db)
    _max_out_report(report, db, factory)
    client = _client(app, report.admin)
    dashboard = client.get("/dashboard/export.xlsx")
    assert dashboard.status_code == 200
    load_workbook(io.BytesIO(dashboard.data))
    figures = client.get(f"/figures/cycle/{report.cycle.id}/summary.xlsx")
    assert figures.status_code == 200
    sheet_text = " ".join(str(c.value) for ws in load_workbook(io.BytesIO(figures.data)).worksheets
                          for row in ws.iter_rows() for c in row if c.value)
    assert chinese(column_length(Indicator.name), "指标") in sheet_text
    compile_cycle(report.cycle, report.admin, force_reason="发改局材料仍在审核，先行汇总")
    db.session.commit()
    for fmt in ("txt", "html", "docx", "pdf"):
        response = client.get(f"/compile/{report.cycle.id}/draft.{fmt}")
        assert response.status_code == 200, (fmt, response.get_data(as_text=True)[:300])
        assert len(response.data) > 1000
    text = client.get(f"/compile/{report.cycle.id}/draft.txt").get_data(as_text=True)
    assert report.sections["rules"].title in text


def test_draft_version_reason_naming_a_long_section_is_fitted(app, db, factory):
    from fazhi_flow.models.publication import ReportDraftVersion

    cycle = factory.cycle(state="compiling")
    reason = f"编辑“{chinese(column_length(Section.title))}”"
    row = ReportDraftVersion(cycle_id=cycle.id, number=1, reason=reason, text="正文", document={})
    db.session.add(row)
    db.session.commit()
    assert len(row.reason) <= column_length(ReportDraftVersion.reason) and row.reason.endswith("…")
    assert reason.startswith(row.reason[:-1])
