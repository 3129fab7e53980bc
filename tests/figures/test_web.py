"""The figures pages: values form, confirmation steps, Word upload, definitions, summary and XLSX."""
import io

import pytest

from openpyxl import load_workbook
from sqlalchemy import select

from fazhi_flow.models import ReportCycle
from fazhi_flow.models.indicator import Indicator, IndicatorValue, Rule

from .conftest import build_seed_world, good_values
from .test_values_docx_summary import make_docx


@pytest.fixture()
def seed_world(seed_world, db):
    # Routes commit or roll back the request's session, which in tests is the test's own session.
    db.session.commit()
    return seed_world


def page(response):
    return response.get_data(as_text=True)


def test_liaison_saves_values_and_sees_rule_results(client, login, seed_world, db):
    c = seed_world.contribution_of("sfj", "govern")
    login(seed_world.liaisons["sfj"])
    response = client.get(f"/figures/contribution/{c.id}")
    assert response.status_code == 200
    html = page(response)
    assert "调委会总数（265）应等于 镇级调委会数（18）" in html and 'name="value-med_total"' in html

    form = {f"value-{code}": v for code, v in good_values()["sfj"].items()}
    form["value-med_total"] = "266"
    response = client.post(f"/figures/contribution/{c.id}", data=form)
    assert response.status_code == 302
    html = page(client.get(f"/figures/contribution/{c.id}"))
    assert "数字对不上：调委会总数（266）" in html


def test_bad_input_keeps_what_was_typed_and_changes_nothing(client, login, seed_world, db):
    c = seed_world.contribution_of("sfj", "govern")
    login(seed_world.liaisons["sfj"])
    response = client.post(f"/figures/contribution/{c.id}", data={"value-med_total": "两百", "value-mediators": "1200"})
    assert response.status_code == 422
    html = page(response)
    assert "“调委会总数”应填写数字，您填写的是“两百”。" in html
    assert 'value="两百"' in html and 'value="1200"' in html
    db.session.expire_all()
    ind = db.session.scalar(select(Indicator).where(Indicator.code == "mediators", Indicator.cycle_id == seed_world.cycle.id))
    row = db.session.scalar(select(IndicatorValue).where(IndicatorValue.indicator_id == ind.id))
    assert row.value == 1104


def test_other_units_cannot_see_or_edit(client, login, seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    login(seed_world.liaisons["town_a"])
    assert client.get(f"/figures/contribution/{c.id}").status_code == 403
    assert client.post(f"/figures/contribution/{c.id}", data={"value-med_total": "1"}).status_code == 403
    assert client.get(f"/figures/cycle/{seed_world.cycle.id}/summary").status_code == 403
    login(seed_world.reviewer)
    response = client.get(f"/figures/contribution/{c.id}")
    assert response.status_code == 200 and 'name="value-med_total"' not in page(response)
    assert client.post(f"/figures/contribution/{c.id}", data={"value-med_total": "1"}).status_code == 403
    assert client.get(f"/figures/contribution/{c.id}/checks").status_code == 200


def test_word_import_asks_before_replacing(client, login, seed_world, db):
    c = seed_world.contribution_of("sfj", "govern")
    c.body = "原有的草稿文字。"
    db.session.commit()
    login(seed_world.liaisons["sfj"])
    data = {"mode": "replace", "file": (io.BytesIO(make_docx(["导入的新段落。"], [["类别", "数量"], ["镇级", "18"]])), "材料.docx")}
    response = client.post(f"/figures/contribution/{c.id}/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 409
    html = page(response)
    assert "确认替换" in html and "原有的草稿文字。" in html and "镇级 | 18" in html
    db.session.expire_all()
    assert c.body == "原有的草稿文字。"
    response = client.post(f"/figures/contribution/{c.id}/import/apply",
                           data={"confirm": "1", "text": "导入的新段落。\n类别 | 数量\n镇级 | 18", "version": c.version})
    assert response.status_code == 302
    db.session.expire_all()
    assert c.body == "导入的新段落。\n类别 | 数量\n镇级 | 18"
    bad = {"mode": "replace", "file": (io.BytesIO(b"plain text"), "材料.docx")}
    response = client.post(f"/figures/contribution/{c.id}/import", data=bad, content_type="multipart/form-data")
    assert response.status_code == 400 and "不是有效的 .docx" in page(response)


def test_admin_defines_indicators_and_rules_with_validation(client, login, seed_world, db):
    login(seed_world.admin)
    url = f"/figures/cycle/{seed_world.cycle.id}/definitions"
    assert client.get(url).status_code == 200
    section = seed_world.sections["govern"]
    response = client.post(url, data={"form": "rule", "section_id": section.id,
                                      "expression": "med_total = med_town +", "severity": "error"})
    assert response.status_code == 422
    html = page(response)
    assert "第23个字符处（表达式末尾）不完整" in html and 'value="med_total = med_town +"' in html
    response = client.post(url, data={"form": "rule", "section_id": section.id,
                                      "expression": "med_total >= unknown_code", "severity": "warning"})
    assert "指标代码“unknown_code”未定义" in page(response)
    before = db.session.scalar(select(Rule.id).where(Rule.expression.like("%unknown_code%")))
    assert before is None
    response = client.post(url, data={"form": "indicator", "section_id": section.id, "code": "new_rooms",
                                      "name": "特色调解室数", "measure": "个", "type": "integer",
                                      "reported_by": "lead", "minimum": "0", "maximum": "abc"})
    assert response.status_code == 422 and "最大值应为数字" in page(response)
    response = client.post(url, data={"form": "indicator", "section_id": section.id, "code": "new_rooms",
                                      "name": "特色调解室数", "measure": "个", "type": "integer",
                                      "reported_by": "lead", "required": "1"})
    assert response.status_code == 302
    response = client.post(url, data={"form": "rule", "section_id": section.id,
                                      "expression": "new_rooms <= med_total", "severity": "error"})
    assert response.status_code == 302
    assert db.session.scalar(select(Rule).where(Rule.expression == "new_rooms <= med_total")) is not None
    ind = db.session.scalar(select(Indicator).where(Indicator.code == "med_total", Indicator.cycle_id == seed_world.cycle.id))
    response = client.post(url, data={"form": "delete_indicator", "indicator_id": ind.id})
    assert "已有单位填报" in page(response)


def test_summary_and_xlsx_download(client, login, db, factory):
    world = build_seed_world(db, factory, values=good_values(sfj__med_total="266"))
    db.session.commit()
    login(world.reviewer)
    html = page(client.get(f"/figures/cycle/{world.cycle.id}/summary"))
    assert "校验未通过（1项）" in html and "调委会总数（266）" in html
    response = client.get(f"/figures/cycle/{world.cycle.id}/summary.xlsx")
    assert response.status_code == 200
    wb = load_workbook(io.BytesIO(response.data))
    values = {r[2]: r[5] for r in wb["指标汇总"].iter_rows(min_row=2, values_only=True)}
    assert values["med_total"] == 266 and values["inspections"] == 3812


def test_clone_goes_through_the_admin_preview(client, login, seed_world, db):
    """The 复制为新年度 links and the old clone address all lead to the admin page, which previews
    every change and creates the cycle only after confirmation."""
    login(seed_world.admin)
    cid = seed_world.cycle.id
    new_page = f"/admin/cycles/new?source={cid}#clone"
    assert f'href="{new_page}"' in page(client.get(f"/figures/cycle/{cid}/definitions"))
    assert f'href="{new_page}"' in page(client.get(f"/admin/cycles/{cid}"))
    old = f"/figures/cycle/{cid}/clone"
    response = client.get(old)
    assert response.status_code == 303 and response.location == new_page
    response = client.post(old, data={"year": "2025"})
    assert response.status_code == 303 and response.location == new_page
    assert db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025)) is None
    assert "需先预览" in page(client.get(new_page))
    for bad in ("abc", "99999999999", "0", "-1", "424242"):  # a malformed or unknown source: an empty form
        assert client.get(f"/admin/cycles/new?source={bad}").status_code == 200, bad
    html = page(client.get(new_page))  # the cycle, the next year and its title are filled in
    assert f'<option selected value="{cid}">' in html and 'value="2025"' in html
    data = {"c-source": str(cid), "c-year": "明年", "c-title": "2025年报告"}
    response = client.post("/admin/cycles/new/clone", data=data)
    assert response.status_code == 400 and 'value="2025年报告"' in page(response)
    data["c-year"] = "2025"
    assert "确认复制并创建" in page(client.post("/admin/cycles/new/clone", data=data))
    assert db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025)) is None
    assert client.post("/admin/cycles/new/clone", data={**data, "confirm": "1"}).status_code == 303
    new = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2025))
    assert new.cloned_from_id == cid and new.state == "setup"
    login(seed_world.liaisons["sfj"])
    assert client.post(old, data={"year": "2026"}).status_code == 403
    assert client.get(old).status_code == 403


def test_from_last_year_button_confirms_when_draft_has_text(client, login, db, factory):
    from .test_yoy_clone import LAST_YEAR_TEXT, _approve_last_year
    from fazhi_flow.models import Contribution, Section
    from fazhi_flow.services.clone import clone_cycle
    from fazhi_flow.services.cycles import open_cycle

    old = build_seed_world(db, factory, values=good_values())
    _approve_last_year(old)
    new = clone_cycle(old.cycle, old.admin)
    open_cycle(new, old.admin)
    c = db.session.scalar(select(Contribution).join(Section).where(Contribution.cycle_id == new.id, Section.code == "govern"))
    c.body = "今年新写的开头。"
    db.session.commit()
    login(old.liaisons["sfj"])
    html = page(client.get(f"/figures/contribution/{c.id}"))
    assert "以上年度文字开始起草" in html and "镇、村两级调委会实现全覆盖" in html
    response = client.post(f"/figures/contribution/{c.id}/from-last-year", data={"version": c.version})
    assert response.status_code == 409 and "确认替换" in page(response)
    db.session.expire_all()
    assert c.body == "今年新写的开头。"
    response = client.post(f"/figures/contribution/{c.id}/from-last-year", data={"version": c.version, "confirm": "1"})
    assert response.status_code == 302
    db.session.expire_all()
    assert c.body == LAST_YEAR_TEXT
