"""Hostile cycle files — deep nesting, a 5,000-digit year, NUL, a non-mapping document, an alias bomb —
are refused with a Chinese message on the upload page and by ``import-cycle``; nothing is written."""
import io
import re

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import AuditEvent, ReportCycle, Section, Unit, User

GOOD = """cycle:
  title: 攻击区2025年法治政府建设年度报告
  year: {year}
  region: 攻击区
units:
  - {{code: sfj, name: 区司法局}}
outline:
  - {{code: s1, title: {title}, lead: [sfj]}}
"""


def _good(year="2025", title="主要举措"):
    return GOOD.format(year=year, title=title)


HOSTILE = {
    "nested": ("cycle: " + "[" * 20000 + "]" * 20000, "嵌套层次过深"),
    "year_5000_digits": (_good(year="9" * 5000), "数字位数过多"),
    "nul_raw": (_good(title="a\x00b"), "空字符"),
    "nul_escape": (_good(title='"a\\0b"'), "空字符"),
    "not_a_mapping": ("- cycle\n- units\n", "顶层应为"),
    "scalar": ("就是一句话", "顶层应为"),
    "alias_bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\ncycle: {title: *c, year: 2025, region: *c}\n",
                   "锚点和别名"),
    "infinite_min": (_good().replace("lead: [sfj]}", "lead: [sfj], indicators: [{code: n, name: 数, min: .inf}]}"),
                     "不是有效的数字"),
}


def _counts(db):
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (ReportCycle, Section, Unit, User,
                                                                                   AuditEvent))


@pytest.fixture()
def admin_client(factory, db, as_user):
    office = factory.unit("区委依法治区办", code="office", kind="party")
    admin = factory.user("admin", unit=office)
    db.session.commit()
    return as_user(admin)

def _confirm_upload(client, preview):
    """Confirm on the preview page an upload shows (nothing is written before)."""
    assert preview.status_code == 200, preview.get_data(as_text=True)[:2000]
    fields = dict(re.findall(r'name="(f-[a-z_]+)" type="hidden" value="([^"]*)"', preview.get_data(as_text=True)))
    return client.post("/admin/cycles/new/file/confirm", data=fields, content_type="multipart/form-data")


def test_the_good_file_is_accepted(admin_client, db):
    # The hostile variants below differ from this one only in the hostile part.
    preview = admin_client.post("/admin/cycles/new/file", data={
        "f-file": (io.BytesIO(_good().encode()), "cycle.yaml")}, content_type="multipart/form-data")
    response = _confirm_upload(admin_client, preview)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_upload_refuses_hostile_file(admin_client, db, name):
    text, message = HOSTILE[name]
    before = _counts(db)
    response = admin_client.post("/admin/cycles/new/file", data={
        "f-file": (io.BytesIO(text.encode()), "cycle.yaml")}, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page[:2000]
    assert message in page
    assert "Traceback" not in page
    assert _counts(db) == before


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_command_refuses_hostile_file(db, runner, tmp_path, name):
    text, message = HOSTILE[name]
    path = tmp_path / "cycle.yaml"
    path.write_text(text, encoding="utf-8")
    before = _counts(db)
    out = runner.invoke(args=["fazhi", "import-cycle", str(path)])
    assert out.exit_code == 1, out.output
    assert "导入失败" in out.output and message in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert _counts(db) == before
