"""Indicator bounds must fit the NUMERIC(20, 4) columns: a cycle file's ``min``/``max`` and the
administrator's 最小值/最大值 beyond them (1e300, 19 nines, 1E-999999, NaN, five decimal places) are
refused with a Chinese message naming the field, instead of a database error (PostgreSQL) or a stored
NaN that breaks every later save of the indicator's figures."""
import io
import re

import pytest
from sqlalchemy import func, select

from fazhi_flow.figures.numbers import STORABLE, storable_number
from fazhi_flow.models import Indicator, ReportCycle

CYCLE_FILE = """cycle:
  title: 边界区2025年法治政府建设年度报告
  year: 2025
  region: 边界区
units:
  - {{code: sfj, name: 区司法局}}
outline:
  - {{code: s1, title: 主要举措, lead: [sfj], indicators: [{{code: n, name: 案件数, {key}: {value}}}]}}
"""
BEYOND = ["1e300", "9999999999999999999", "'1E-999999'", "'NaN'", "0.00001", "-1000000000000000"]


@pytest.fixture()
def admin(factory, db):
    office = factory.unit("区委依法治区办", code="office", kind="party")
    user = factory.user("admin", unit=office)
    db.session.commit()
    return user


def _upload(client, key, value):
    text = CYCLE_FILE.format(key=key, value=value)
    return client.post("/admin/cycles/new/file", data={"f-file": (io.BytesIO(text.encode()), "cycle.yaml")},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("key", ["min", "max"])
@pytest.mark.parametrize("value", BEYOND)
def test_cycle_file_bound_beyond_the_column_is_refused(admin, as_user, db, key, value):
    client = as_user(admin)
    response = _upload(client, key, value)
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page[:2000]
    assert f"outline[0].indicators[0].{key}" in page and STORABLE in page
    assert db.session.scalar(select(func.count()).select_from(ReportCycle)) == 0

def _confirm_upload(client, preview):
    """Confirm on the preview page an upload shows (nothing is written before)."""
    assert preview.status_code == 200, preview.get_data(as_text=True)[:2000]
    fields = dict(re.findall(r'name="(f-[a-z_]+)" type="hidden" value="([^"]*)"', preview.get_data(as_text=True)))
    return client.post("/admin/cycles/new/file/confirm", data=fields, content_type="multipart/form-data")


def test_cycle_file_bound_within_the_column_is_stored(admin, as_user, db):
    client = as_user(admin)
    response = _confirm_upload(client, _upload(client, "min", "-12345.6789"))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert str(db.session.scalar(select(Indicator.minimum))) == "-12345.6789"


@pytest.mark.parametrize("field, label", [("minimum", "最小值"), ("maximum", "最大值")])
@pytest.mark.parametrize("typed", ["1E-999999", "NaN", "1e300", "0.00001", "9999999999999999999"])
def test_admin_bound_beyond_the_column_is_a_field_error(admin, as_user, factory, db, field, label, typed):
    cycle = factory.cycle(state="setup")
    section = factory.section(cycle)
    db.session.commit()
    form = {"form": "indicator", "section_id": section.id, "code": "cases", "name": "案件数", "measure": "件",
            "type": "integer", "reported_by": "all", field: typed}
    response = as_user(admin).post(f"/figures/cycle/{cycle.id}/definitions", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page[:2000]
    assert f"{label}应为{STORABLE}，您填写的是“{typed}”" in page
    assert f'value="{typed}"' in page and 'value="案件数"' in page  # nothing typed is lost
    assert db.session.scalar(select(func.count()).select_from(Indicator)) == 0


def test_storable_number_bounds():
    assert storable_number(" 12.5000 ") == storable_number(12.5) == storable_number("12.5")
    assert storable_number("999999999999999.9999") and storable_number("-0.0001")
    for bad in ["1e15", "0.00001", "1E-999999", "NaN", "sNaN", "-Infinity", "1E+999999999", "", "abc", 1e300]:
        with pytest.raises(ValueError):
            storable_number(bad)
