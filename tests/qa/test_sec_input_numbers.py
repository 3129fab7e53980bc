"""One way to read whole numbers: ASCII digits only, within the column's range — in the helper, the URL
converter, the forms, the commands and the figure definitions."""
import pytest

from fazhi_flow.whole_numbers import DB_INT_MAX, optional_int, parse_int

REFUSED = ["²", "①", "１２", "٣", "+1", "-1", "-0", " 1", "1 ", "1_000", "NaN", "Infinity", "1e3", "1e999999",
           "0x10", "1.0", str(10**100), "9" * 5000, "", "\x00", "1\x002", str(DB_INT_MAX + 1)]


@pytest.mark.parametrize("raw", REFUSED)
def test_malformed_or_out_of_range_is_refused(raw):
    with pytest.raises(ValueError):
        parse_int(raw)
    assert optional_int(raw) is None


def test_plain_digits_within_range_are_read():
    assert [parse_int(v) for v in ("0", "7", "0042", str(DB_INT_MAX))] == [0, 7, 42, DB_INT_MAX]
    assert optional_int("2024", 2000, 2100) == 2024 and optional_int("1999", 2000, 2100) is None
    assert optional_int(None) is None and optional_int(True) is None


def test_full_width_and_superscript_digits_in_a_url_name_nothing(as_user, world):
    client = as_user(world.liaison)
    plain = str(world.contribution.id)
    assert client.get(f"/tasks/{plain}/history").status_code == 200
    full_width = "".join(chr(ord(d) + 0xFEE0) for d in plain)
    for path in (f"/tasks/{full_width}/history", "/tasks/²/history", f"/tasks/{plain}/history?a=²&b=①"):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.get(f"/tasks/{full_width}/history").status_code == 404


def test_year_field_refuses_superscript_and_full_width_digits(as_user, world, db):
    from sqlalchemy import func, select

    from fazhi_flow.models import ReportCycle

    client = as_user(world.admin)
    for year in ("２０２５", "2025²", "-2025", "1e3"):
        response = client.post("/admin/cycles/new/template", data={
            "t-year": year, "t-title": "2025年法治政府建设年度报告", "t-region": "新区", "t-due": "2026-01-10"})
        page = response.get_data(as_text=True)
        assert response.status_code == 400, year
        assert "请输入整数（只写阿拉伯数字）" in page and 'value="新区"' in page, year
    assert db.session.scalar(select(func.count(ReportCycle.id))) == 1


@pytest.mark.parametrize("args", [["export", "²", "--format", "txt"], ["export", "9" * 5000, "--format", "txt"],
                                  ["export", "１２", "--format", "txt"]])
def test_command_refuses_malformed_cycle_number(runner, db, tmp_path, args):
    out = runner.invoke(args=["fazhi", *args, "-o", str(tmp_path / "r.txt")])
    assert out.exit_code == 2, out.output
    assert "无效" in out.output and not (tmp_path / "r.txt").exists()


@pytest.mark.parametrize("value", ["²", "-1", "１", str(10**100)])
def test_command_options_refuse_malformed_numbers(runner, db, world, tmp_path, value):
    out = runner.invoke(args=["fazhi", "export", str(world.cycle.id), "--format", "txt", "--version", value,
                              "-o", str(tmp_path / "r.txt")])
    assert out.exit_code == 2, out.output
    assert "只写阿拉伯数字" in out.output
    out = runner.invoke(args=["fazhi", "transition", "--user", world.admin.username, "--contribution", value,
                              "submit"])
    assert out.exit_code == 2 and "只写阿拉伯数字" in out.output, out.output


@pytest.mark.parametrize("bound", ["1e999999", "9" * 30, "NaN", "-Infinity"])
def test_indicator_bounds_beyond_the_column_are_refused(as_user, world, db, bound):
    from sqlalchemy import func, select

    from fazhi_flow.models import Indicator

    client = as_user(world.admin)
    response = client.post(f"/figures/cycle/{world.cycle.id}/definitions", data={
        "form": "indicator", "section_id": world.section.id, "code": "rooms", "name": "调解室数", "measure": "个",
        "type": "integer", "reported_by": "lead", "minimum": "0", "maximum": bound})
    assert response.status_code == 422
    assert "最大值应为数字" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Indicator.id))) == 0


@pytest.mark.parametrize("typed,message", [("NaN", "应填写数字"), ("Infinity", "应填写数字"), ("-Infinity", "应填写数字"),
                                           ("1e999999", "的数值过大"), ("9" * 5000, "的数值过大"), ("²", "应填写数字"),
                                           ("①", "应填写数字")])
def test_figure_values_refuse_non_finite_and_absurd_numbers(as_user, world, db, typed, message):
    from sqlalchemy import func, select

    from fazhi_flow.models import Indicator
    from fazhi_flow.models.indicator import IndicatorValue

    db.session.add(Indicator(cycle_id=world.cycle.id, section_id=world.section.id, code="rooms", name="调解室数",
                             measure="个", type="integer", reported_by="lead"))
    db.session.commit()
    client = as_user(world.liaison)
    response = client.post(f"/figures/contribution/{world.contribution.id}", data={"value-rooms": typed})
    assert response.status_code == 422
    assert f"“调解室数”{message}" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(IndicatorValue.id))) == 0
