"""The region is said once in public titles, page titles, download names and the audit log's names,
whether or not the cycle's title already names it."""
import re
from urllib.parse import unquote

import pytest

from fazhi_flow.publish.naming import full_title
from fazhi_flow.services import compile as svc


@pytest.mark.parametrize(("region", "title", "shown"), [
    ("益阳市赫山区", "益阳市赫山区2024年法治政府建设年度报告", "益阳市赫山区2024年法治政府建设年度报告"),
    ("益阳市赫山区", "2024年法治政府建设年度报告", "益阳市赫山区2024年法治政府建设年度报告"),
    # Only the lower level in the title: the upper one is added, the district not repeated.
    ("益阳市赫山区", "赫山区2024年法治政府建设年度报告", "益阳市赫山区2024年法治政府建设年度报告"),
    ("益阳市赫山区", "关于益阳市赫山区2024年法治政府建设情况的报告", "关于益阳市赫山区2024年法治政府建设情况的报告"),
    # A title merely starting with the same characters as a level is not taken for it.
    ("湘潭市岳塘区", "岳阳楼区2024年报告", "湘潭市岳塘区岳阳楼区2024年报告"),
    ("", "2024年法治政府建设年度报告", "2024年法治政府建设年度报告"),
])
def test_full_title(region, title, shown):
    assert full_title(region, title) == shown


def _publish(report, db, client):
    from fazhi_flow.services.cycles import compile_cycle

    compile_cycle(report.cycle, report.admin, force_reason="发改局材料仍在审核，先行汇总")
    svc.request_signoff(report.cycle, report.admin)
    svc.sign_report(report.cycle, report.leader, svc.latest_version(report.cycle).number)
    publication = svc.publish_report(report.cycle, report.admin)
    db.session.commit()
    return publication


@pytest.mark.parametrize("title", ["示例区2024年法治政府建设年度报告", "2024年法治政府建设年度报告"])
def test_public_pages_and_downloads_name_the_region_once(report, db, client, title):
    report.cycle.title = title
    publication = _publish(report, db, client)
    listing = client.get("/reports/").get_data(as_text=True)
    shown = client.get(f"/reports/{publication.id}").get_data(as_text=True)
    for html in (listing, shown):
        assert "示例区2024年法治政府建设年度报告" in html and "示例区示例区" not in html
    assert re.search(r"<title>示例区2024年法治政府建设年度报告", shown)
    response = client.get(f"/reports/{publication.id}/report.docx?download=1")
    disposition = unquote(response.headers["Content-Disposition"])
    assert disposition.endswith("示例区2024年法治政府建设年度报告.docx") and "示例区示例区" not in disposition
    assert svc.download_name(report.cycle, "pdf", draft=True) == "示例区2024年法治政府建设年度报告（草稿）.pdf"
