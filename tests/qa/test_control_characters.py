"""Control characters typed into forms never reach the database, so the report still exports.

XML 1.0 forbids C0 controls other than tab, LF and CR: a cycle title carrying a BEL (pasted from a
terminal) would make every DOCX and XLSX of the report fail.
"""
from fazhi_flow.models import ReportCycle


def test_control_characters_in_cycle_settings_are_dropped_and_exports_work(as_user, world, db):
    client = as_user(world.admin)
    data = {"title": "甲区\x07二〇二四年\x0b法治政府建设年度报告\ufffe", "issuers": "甲区人民政府\x1b\n甲区\x08司法局",
            "issue_date": "2025-01-06"}
    response = client.post(f"/admin/cycles/{world.cycle.id}/edit", data=data)
    assert response.status_code == 303
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, world.cycle.id)
    assert cycle.title == "甲区二〇二四年法治政府建设年度报告"
    assert cycle.issuers == "甲区人民政府\n甲区司法局"  # the line break is kept

    docx = client.get(f"/compile/{world.cycle.id}/draft.docx")
    assert docx.status_code == 200 and docx.data[:2] == b"PK"
    xlsx = client.get(f"/figures/cycle/{world.cycle.id}/summary.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"


def test_tab_and_line_breaks_in_a_draft_are_kept(as_user, world, db):
    from fazhi_flow.models import Contribution

    client = as_user(world.liaison)
    response = client.post(f"/tasks/{world.contribution.id}",
                           data={"body": "第一段\t甲\r\n第二段\x0c", "version": world.contribution.version})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contribution, world.contribution.id).body.replace("\r\n", "\n") == "第一段\t甲\n第二段"
