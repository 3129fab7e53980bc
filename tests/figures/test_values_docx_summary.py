"""Entering values, importing a Word draft, and the indicator summary (appendix and XLSX)."""
import io
from decimal import Decimal

import docx
import pytest
from openpyxl import load_workbook

from fazhi_flow.errors import Conflict, DomainError, PermissionDenied
from fazhi_flow.figures.bound import render_bound
from fazhi_flow.figures.docx_import import docx_to_text
from fazhi_flow.figures.summary import appendix_rows, export_xlsx
from fazhi_flow.models.indicator import IndicatorValue
from fazhi_flow.services.figures import (
    FigureFormError, NeedsConfirmation, bound_values, can_view_figures, import_docx_draft, save_figures,
    values_stamp,
)


def test_bad_values_are_refused_all_together(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    with pytest.raises(FigureFormError) as info:
        save_figures(c, seed_world.liaisons["sfj"], {"med_total": "26.5", "med_town": "二十", "mediators": "-3",
                                                     "suit_total": "40余", "med_park": "3"})
    errors = info.value.errors
    assert errors["med_total"] == "“调委会总数”应填写整数（单位：个），您填写的是“26.5”。"
    assert errors["med_town"] == "“镇级调委会数”应填写数字，您填写的是“二十”。"
    assert errors["mediators"] == "“人民调解员人数”不能为负数，您填写的是“-3”。"
    assert "不要带“余”" in errors["suit_total"]
    assert "med_park" not in errors
    values = {r.indicator.code: r.value for r in seed_world.db.session.query(IndicatorValue)
              .filter_by(contribution_id=c.id)}
    assert values["med_park"] == 1 and values["med_total"] == 265  # nothing changed


def test_values_accept_what_people_type(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    report = save_figures(c, seed_world.liaisons["sfj"], {"mediators": "１,１０４人", "appear_rate": "99.5%",
                                                          "suit_total": " 42 ", "suit_closed": ""})
    rows = {r.indicator.code: r.value for r in report.rows}
    assert rows["mediators"] == Decimal(1104) and rows["appear_rate"] == Decimal("99.5")
    assert rows["suit_closed"] is None


def test_min_max_and_permissions(seed_world):
    from fazhi_flow.models.indicator import Indicator

    ind = seed_world.db.session.query(Indicator).filter_by(code="appear_rate").one()
    ind.minimum, ind.maximum = 0, 100
    c = seed_world.contribution_of("sfj", "govern")
    with pytest.raises(FigureFormError, match="不能大于100%"):
        save_figures(c, seed_world.liaisons["sfj"], {"appear_rate": "101"})
    with pytest.raises(PermissionDenied):
        save_figures(c, seed_world.liaisons["town_a"], {"appear_rate": "90"})
    with pytest.raises(FigureFormError, match="不属于本材料"):
        save_figures(seed_world.contribution_of("town_a", "enforce"), seed_world.liaisons["town_a"],
                     {"inspections_total": "5"})
    assert can_view_figures(seed_world.reviewer, c) and can_view_figures(seed_world.admin, c)
    assert can_view_figures(seed_world.leader, c)
    assert not can_view_figures(seed_world.liaisons["town_a"], c)


def test_stale_form_is_refused(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    stamp = values_stamp(c)
    save_figures(c, seed_world.liaisons["sfj"], {"mediators": "1105"}, stamp=stamp)
    with pytest.raises(Conflict):
        save_figures(c, seed_world.liaisons["sfj"], {"mediators": "1106"}, stamp=stamp)


def make_docx(paragraphs, table=None) -> bytes:
    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for k, value in enumerate(row):
                t.cell(r, k).text = value
        document.add_paragraph("表格之后的一段说明。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_and_tables_become_text():
    data = make_docx(["一、调解组织建设", "", "全区调委会实现镇村全覆盖。"],
                     [["类别", "数量（个）"], ["镇级", "18"], ["村级", "242"]])
    assert docx_to_text(data, "材料.docx") == ("一、调解组织建设\n全区调委会实现镇村全覆盖。\n类别 | 数量（个）\n"
                                             "镇级 | 18\n村级 | 242\n表格之后的一段说明。")


@pytest.mark.parametrize("data, name, fragment", [
    (b"", "a.docx", "空的"), (b"not a zip at all", "a.docx", "不是有效的 .docx"),
    (b"PK\x03\x04broken", "a.docx", "不是有效的 .docx"), (b"\xd0\xcf\x11\xe0", "old.doc", "另存为"),
])
def test_bad_documents_get_clear_messages(data, name, fragment):
    with pytest.raises(DomainError, match=fragment):
        docx_to_text(data, name)


def test_import_needs_confirmation_before_replacing_text(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    liaison = seed_world.liaisons["sfj"]
    c.body = ""
    import_docx_draft(c, liaison, make_docx(["从文档导入的第一段。"]), "草稿.docx")
    assert c.body == "从文档导入的第一段。"
    with pytest.raises(NeedsConfirmation):
        import_docx_draft(c, liaison, make_docx(["另一份文档。"]), "草稿2.docx")
    assert c.body == "从文档导入的第一段。"
    import_docx_draft(c, liaison, make_docx(["补充的一段。"]), "补充.docx", mode="append")
    assert c.body == "从文档导入的第一段。\n补充的一段。"
    import_docx_draft(c, liaison, make_docx(["另一份文档。"]), "草稿2.docx", confirm=True)
    assert c.body == "另一份文档。"
    with pytest.raises(PermissionDenied):
        import_docx_draft(c, seed_world.reviewer, make_docx(["x"]), "x.docx", confirm=True)


def test_appendix_and_xlsx_equal_the_bound_numbers(seed_world):
    rows = {r["code"]: r for r in appendix_rows(seed_world.cycle)}
    assert rows["med_total"]["value"] == "265" and rows["inspections"]["value"] == "3812"
    assert rows["lenient_total"]["value"] == "175"
    assert [r["no"] for r in appendix_rows(seed_world.cycle)] == list(range(1, 17))
    lead = seed_world.contribution_of("sfj", "enforce")
    text = "全区涉企柔性执法{{lenient_total}}次，其中不予处罚{{no_penalty}}次；各单位涉企检查合计{{sum(inspections)}}次。"
    rendered = render_bound(text, bound_values(lead))
    for code in ("lenient_total", "no_penalty", "inspections"):
        assert rows[code]["value"] in rendered

    wb = load_workbook(io.BytesIO(export_xlsx(seed_world.cycle)))
    assert wb.sheetnames == ["指标汇总", "分单位数值", "校验结果"]
    summary = {row[2]: row for row in wb["指标汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary["med_total"][5] == 265 and summary["inspections"][5] == 3812
    assert summary["inspections"][6:] == (3, 3)
    per_unit = [(r[0], r[3], r[4]) for r in wb["分单位数值"].iter_rows(min_row=2, values_only=True)
                if r[0] == "inspections"]
    assert per_unit == [("inspections", "区司法局", 1500), ("inspections", "八字哨镇", 1312),
                        ("inspections", "龙光桥街道", 1000)]
    checks = list(wb["校验结果"].iter_rows(min_row=2, values_only=True))
    assert len(checks) == 6 and {r[3] for r in checks} == {"通过"}


def test_xlsx_sheets_have_a_styled_frozen_header_and_whole_numbers(seed_world):
    """The summary export is written with the one XLSX helper: every sheet's first row is the styled,
    frozen header with its column widths; whole totals are integers, not 265.0."""
    wb = load_workbook(io.BytesIO(export_xlsx(seed_world.cycle)))
    for sheet in wb.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        first = [cell for cell in sheet[1] if cell.value is not None]
        assert first and all(c.font.bold and c.fill.fgColor.rgb.endswith("DDE7F3") for c in first), sheet.title
        assert all(c.alignment.wrap_text and c.alignment.horizontal == "center" for c in first), sheet.title
    assert wb["指标汇总"].column_dimensions["B"].width == 40
    assert wb["校验结果"].column_dimensions["E"].width == 90
    total = {row[2]: row[5] for row in wb["指标汇总"].iter_rows(min_row=2, values_only=True)}["med_total"]
    assert total == 265 and isinstance(total, int)
    assert wb.properties.title == f"{seed_world.cycle.title} 统计指标汇总"
