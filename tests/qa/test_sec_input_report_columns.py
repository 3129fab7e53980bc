"""The appendix table keeps its column widths under the site's CSP: no style attributes (style-src
'self' drops them in the browser); the widths come from the stylesheet, for the browser and the PDF."""
import re

import pytest

from fazhi_flow.publish.document import ReportDocument
from fazhi_flow.publish.html import font_stacks, render_article, render_html, report_css
from fazhi_flow.publish.layout import TABLE_WIDTHS_MM

ROWS = [{"no": n, "section": "一、（三）规范公正文明执法", "name": f"指标{n}", "measure": "次", "value": str(n * 7)}
        for n in range(1, 4)]


def _document():
    return ReportDocument(title="示例区2024年法治政府建设年度报告", opening=["全区坚持依法行政。"],
                          issuers=["示例区人民政府"], appendix=ROWS)


def _widths_by_class(css: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"col\.(gw-c\d+)\s*\{\s*width:\s*([\d.]+)mm;\s*\}", css)}


def test_appendix_markup_has_no_style_attribute_and_the_stylesheet_sizes_its_columns():
    article = render_article(_document())
    assert "<colgroup>" in article
    assert not re.search(r"\sstyle\s*=", article), "a style attribute is dropped by the CSP"
    classes = re.findall(r'<col class="([^"]+)">', article)
    assert len(classes) == len(TABLE_WIDTHS_MM)
    widths = _widths_by_class(report_css(font_stacks({})))
    assert [widths[c] for c in classes] == list(TABLE_WIDTHS_MM)


def test_the_in_app_stylesheet_served_under_the_csp_has_the_widths(client):
    response = client.get("/reports/report.css")
    assert response.status_code == 200
    assert sorted(_widths_by_class(response.get_data(as_text=True)).values()) == sorted(TABLE_WIDTHS_MM)
    page_csp = client.get("/reports/").headers.get("Content-Security-Policy", "")
    assert "style-src 'self'" in page_csp and "unsafe-inline" not in page_csp.split("style-src")[1].split(";")[0]


def test_pdf_keeps_the_column_widths(app):
    weasyprint = pytest.importorskip("weasyprint", reason="WeasyPrint is not installed (pip install weasyprint)")
    html = render_html(_document(), font_stacks(app.config["PDF_FONTS"]))
    pages = weasyprint.HTML(string=html).render().pages
    tables = []

    def walk(box):
        if type(box).__name__ == "TableBox" and len(box.column_widths) == len(TABLE_WIDTHS_MM):
            tables.append(box)  # the appendix (the closing block is laid out as small tables too)
        for child in getattr(box, "children", []) or []:
            walk(child)

    for page in pages:
        walk(page._page_box)
    assert tables, "no table laid out"
    px_per_mm = 96 / 25.4
    measured = [round(w / px_per_mm) for w in tables[0].column_widths]
    assert measured == list(TABLE_WIDTHS_MM)
