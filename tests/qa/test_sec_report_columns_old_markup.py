"""Publications stored before the appendix columns got classes carry <col style="width: …">, which
the site's CSP drops in the browser: the stylesheet sizes those columns by position as well."""
import re

import pytest

from fazhi_flow.publish.document import ReportDocument
from fazhi_flow.publish.html import font_stacks, render_html
from fazhi_flow.publish.layout import TABLE_WIDTHS_MM

ROWS = [{"no": n, "section": "一、（一）健全依法决策机制", "name": f"指标{n}", "measure": "件", "value": str(n)}
        for n in range(1, 4)]


def _column_widths_mm(html: str) -> list[int]:
    weasyprint = pytest.importorskip("weasyprint", reason="WeasyPrint is not installed (pip install weasyprint)")
    tables = []

    def walk(box):
        if type(box).__name__ == "TableBox" and len(box.column_widths) == len(TABLE_WIDTHS_MM):
            tables.append(box)
        for child in getattr(box, "children", []) or []:
            walk(child)

    for page in weasyprint.HTML(string=html).render().pages:
        walk(page._page_box)
    assert tables, "no table laid out"
    return [round(w / (96 / 25.4)) for w in tables[0].column_widths]


def test_old_markup_without_its_dropped_style_attributes_keeps_the_widths(app):
    document = ReportDocument(title="示例区2023年法治政府建设年度报告", opening=["全区坚持依法行政。"],
                              issuers=["示例区人民政府"], appendix=ROWS)
    html = render_html(document, font_stacks(app.config["PDF_FONTS"]))
    # The old markup as the browser applies it under the CSP: bare <col> elements, no class, no style.
    old, replaced = re.subn(r'<col class="gw-c\d+">', "<col>", html)
    assert replaced == len(TABLE_WIDTHS_MM)
    assert _column_widths_mm(old) == list(TABLE_WIDTHS_MM)
