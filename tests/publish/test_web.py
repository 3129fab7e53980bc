"""The compile, sign-off and public pages, driven through the real login form."""
import hashlib
import sys
from urllib.parse import unquote

import pytest

from fazhi_flow.models import Publication, ReportCycle

PASSWORD = "secret-Pass1"


def logout(client):
    client.post("/logout")
    client.delete_cookie("remember_token")


def login(client, user):
    logout(client)
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


@pytest.fixture()
def site(compiling, db, client):
    db.session.commit()
    compiling.client = client
    return compiling


def page(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_compile_page_shows_material_side_by_side_and_flags_missing(site, db):
    site.contributions[("duty", "区人民政府办公室")].state = "returned"
    db.session.commit()
    client = login(site.client, site.admin)
    html = page(client.get(f"/compile/{site.cycle.id}"))
    rules = html[html.index(f'id="s{site.sections["rules"].id}"'):html.index(f'id="s{site.sections["business"].id}"')]
    assert rules.index("区司法局") < rules.index("区人民政府办公室")          # lead unit first
    assert "牵头" in rules and "配合" in rules
    assert "区发展和改革局（待审核）" in rules                               # listed, not merged
    assert "一是把牢决策法制审查关口" in rules and "<textarea" in rules
    duty = html[html.index(f'id="s{site.sections["duty"].id}"'):]
    assert "无已通过材料" in duty[:600]
    assert "以下1个章节没有已通过的材料" in html


def test_others_cannot_compile(site, factory, db):
    liaison = factory.user("liaison", unit=site.units["区司法局"])
    db.session.commit()
    client = login(site.client, liaison)
    assert client.get("/compile/").status_code == 403
    assert client.get(f"/compile/{site.cycle.id}").status_code == 403
    response = client.post(f"/compile/{site.cycle.id}/sections/{site.sections['plans'].id}",
                           data={"body": "越权修改", "version": 0})
    assert response.status_code == 403
    # A leader reads the draft but is sent to the sign-off page, and cannot save.
    client = login(site.client, site.leader)
    assert client.get(f"/compile/{site.cycle.id}").status_code == 302
    response = client.post(f"/compile/{site.cycle.id}/sections/{site.sections['plans'].id}",
                           data={"body": "越权修改", "version": 0})
    assert response.status_code == 403


def test_edit_preview_signoff_return_sign_publish(site, db, app):
    cycle_id = site.cycle.id
    admin = login(site.client, site.admin)
    section = site.sections["plans"]
    response = admin.post(f"/compile/{cycle_id}/sections/{section.id}",
                          data={"body": "一是压实主体责任。\r\n二是提高决策质量。", "version": 0})
    assert response.status_code == 303
    html = page(admin.get(f"/compile/{cycle_id}/preview"))
    assert '<p class="gw-runin gw-l2"><span class="gw-hd">（二）优化法治化营商环境。</span>' in html
    assert '<h2 class="gw-h gw-l1">四、下一年度工作安排</h2>\n<p>一是压实主体责任。</p>' in html
    assert '<p class="gw-opening">' in html and "2025年1月6日" in html
    assert page(admin.get(f"/compile/{cycle_id}/diff?a=1&b=2")).count('class="line add"') == 1
    assert admin.post(f"/compile/{cycle_id}/request-signoff", data={"comment": "请审阅"}).status_code == 303

    leader = login(site.client, site.leader)
    html = page(leader.get(f"/compile/{cycle_id}/signoff"))
    assert "签发第2稿" in html and "退回修改" in html and "一是压实主体责任。" in html
    response = leader.post(f"/compile/{cycle_id}/return", data={"comment": ""})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle_id).state == "signoff"
    leader.post(f"/compile/{cycle_id}/return", data={"comment": "第四部分请写得更具体。"})
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle_id).state == "compiling"

    admin = login(site.client, site.admin)
    assert "第四部分请写得更具体。" in page(admin.get(f"/compile/{cycle_id}"))
    admin.post(f"/compile/{cycle_id}/sections/{section.id}",
               data={"body": "一是压实主体责任，开展述法评议。\n二是提高决策质量。", "version": 1})
    admin.post(f"/compile/{cycle_id}/request-signoff", data={"comment": ""})

    leader = login(site.client, site.leader)
    stale = leader.post(f"/compile/{cycle_id}/sign", data={"version": "2"},
                        headers={"Referer": f"http://localhost/compile/{cycle_id}/signoff"})
    assert stale.status_code == 303
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle_id).state == "signoff"
    for tampered in ("", "latest"):  # a version that is not a number proves nothing was read
        refused = leader.post(f"/compile/{cycle_id}/sign", data={"version": tampered},
                              headers={"Referer": f"http://localhost/compile/{cycle_id}/signoff"})
        assert refused.status_code == 303
        db.session.expire_all()
        assert db.session.get(ReportCycle, cycle_id).state == "signoff"
    leader.post(f"/compile/{cycle_id}/sign", data={"version": "3", "comment": "同意"})
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle_id).state == "signed"

    admin = login(site.client, site.admin)
    assert admin.post(f"/compile/{cycle_id}/publish").status_code == 303
    db.session.expire_all()
    publication = db.session.query(Publication).filter_by(cycle_id=cycle_id).one()
    assert "开展述法评议" in publication.text
    html = page(admin.get(f"/compile/{cycle_id}/versions"))
    assert "发布第1版" in html and "第3稿" in html


def _publish(site, db):
    from fazhi_flow.services import compile as svc

    svc.request_signoff(site.cycle, site.admin)
    svc.sign_report(site.cycle, site.leader, svc.latest_version(site.cycle).number)
    publication = svc.publish_report(site.cycle, site.admin)
    db.session.commit()
    return publication


def test_public_page_without_login_lists_downloads_and_hashes(site, db):
    publication = _publish(site, db)
    client = site.client
    html = page(client.get("/reports/"))
    assert "2024年度" in html and "示例区2024年法治政府建设年度报告" in html and "示例区示例区" not in html
    for digest in (publication.text_sha256, publication.docx_sha256, publication.html_sha256):
        assert digest in html
    response = client.get(f"/reports/{publication.id}/report.docx?download=1")
    assert response.status_code == 200
    assert response.data == publication.docx
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(response.data).hexdigest()
    assert unquote(response.headers["Content-Disposition"]).endswith("年度报告.docx")
    response = client.get(f"/reports/{publication.id}/report.html")
    assert "style-src 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.data.decode("utf-8") == publication.html
    shown = page(client.get(f"/reports/{publication.id}"))
    assert '<article class="gw-report"' in shown and "（一）夯实制度根基" in shown
    assert client.get("/reports/report.css").mimetype == "text/css"
    assert client.get("/reports/999999").status_code == 404


def svc_latest_draft(site):
    from fazhi_flow.services import compile as svc

    return svc.latest_version(site.cycle).number


def test_correction_through_the_pages_keeps_old_version_visible(site, db):
    first = _publish(site, db)
    admin = login(site.client, site.admin)
    html = page(admin.get(f"/compile/{site.cycle.id}/correction"))
    assert "合并稿与当前发布版本相同" in html
    section = site.sections["shortcomings"]
    admin.post(f"/compile/{site.cycle.id}/sections/{section.id}",
               data={"body": "一是部分单位学法形式较为单一。二是基层执法衔接仍需理顺。", "version": 0})
    seen = {"published": 1, "draft": svc_latest_draft(site)}
    response = admin.post(f"/compile/{site.cycle.id}/correction", data={"note": "", **seen})
    assert response.status_code == 200 and "请填写更正说明" in response.get_data(as_text=True)
    response = admin.post(f"/compile/{site.cycle.id}/correction", data={"note": "第三部分表述有误，已更正。", **seen})
    assert response.status_code == 303
    # The correction is published once the leader signs it.
    leader = login(site.client, site.leader)
    assert leader.post(f"/compile/{site.cycle.id}/sign", data={"version": seen["draft"]}).status_code == 303
    logout(site.client)
    html = page(site.client.get("/reports/"))
    assert "第2版" in html and "第1版" in html and "更正说明：第三部分表述有误，已更正。" in html
    old = page(site.client.get(f"/reports/{first.id}"))
    assert "本版本已被更正" in old


def test_pdf_button_explains_what_to_install_when_missing(site, monkeypatch):
    admin = login(site.client, site.admin)
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    html = page(admin.get(f"/compile/{site.cycle.id}/preview"))
    assert "PDF 不可用" in html and "pip install weasyprint" in html
    response = admin.get(f"/compile/{site.cycle.id}/draft.pdf")
    assert response.status_code == 503
    assert "pip install weasyprint" in response.get_data(as_text=True)
    docx = admin.get(f"/compile/{site.cycle.id}/draft.docx")
    assert docx.status_code == 200 and docx.data.startswith(b"PK")
