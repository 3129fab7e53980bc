"""The everyday pages of two sibling counties (赫山区, 资阳区, both with a unit "gaj") under 益阳市:
lists show the own region only, an id of the other county is 404 on every page, download and export,
and the city's overseer (督导) reads the counties' dashboards and published reports but never their
material, drafts or compile area. A sibling city's overseer reads neither county."""
from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest

from fazhi_flow.testing import FreshUserClient, count_queries, login

# Words that appear only in 资阳区's rows: a page of 赫山区 containing one has read across regions.
ZY_ONLY = ("资阳", "桃花江")


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def _cycle(db, region, year: int):
    """A collecting cycle of ``region`` (named explicitly: with several regions nothing is guessed)."""
    from fazhi_flow.models import ReportCycle

    cycle = ReportCycle(region_id=region.id, year=year, region=region.name,
                        title=f"{region.name}{year}年法治政府建设年度报告", due=date(year + 1, 1, 10),
                        issuers=f"中共{region.name}委员会\n{region.name}人民政府", issue_date=date(year + 1, 1, 6),
                        state="collecting")
    db.session.add(cycle)
    db.session.flush()
    return cycle


def _material(factory, db, county, river):
    """A collecting 2024 cycle of ``county``: one section naming no reviewer (open to the county's
    reviewers), an indicator cited by the texts, material of "gaj" submitted with an attachment and
    of the office in draft."""
    from fazhi_flow.models import Revision
    from fazhi_flow.models.indicator import Indicator, IndicatorValue
    from fazhi_flow.services import attachments

    cycle = _cycle(db, county.region, 2024)
    section = factory.section(cycle, f"严格规范公正文明执法（{river}沿线）", code="zf")
    indicator = Indicator(cycle_id=cycle.id, section_id=section.id, code="xzfy", name="行政复议案件数", measure="件")
    db.session.add(indicator)
    db.session.flush()
    lead = factory.assignment(section, county.gaj, role="lead", due=date(2025, 1, 10))
    support = factory.assignment(section, county.office, role="support", due=date(2025, 1, 10))
    body = f"一是{river}沿线开展联合执法。全年办理行政复议案件{{{{xzfy}}}}件，纠错率下降。"
    submitted = factory.contribution(lead, state="draft", body=body)
    db.session.flush()
    attachment = attachments.add_attachment(submitted, county.liaison, f"{river}执法记录.pdf", _pdf())
    submitted.state = "submitted"
    db.session.add(Revision(contribution=submitted, number=1, body=body))
    db.session.add(IndicatorValue(contribution_id=submitted.id, indicator_id=indicator.id, value=Decimal(37)))
    draft = factory.contribution(support, state="draft", body=f"二是{river}片区普法宣传{{{{xzfy}}}}场次。")
    db.session.flush()
    return SimpleNamespace(cycle=cycle, section=section, submitted=submitted, draft=draft, attachment=attachment)


def _published(factory, db, county, river):
    """A 2023 cycle of ``county`` compiled, signed and published (no PDF: not needed here)."""
    from fazhi_flow.models import Revision
    from fazhi_flow.services import compile as compile_svc
    from fazhi_flow.services.cycles import compile_cycle

    cycle = _cycle(db, county.region, 2023)
    section = factory.section(cycle, "加强党对法治政府建设的领导", code="ld")
    body = f"{river}流域综合执法改革全面完成，区委常委会专题研究法治建设4次。"
    contribution = factory.contribution(factory.assignment(section, county.office), state="approved", body=body)
    db.session.add(Revision(contribution=contribution, number=1, body=body))
    db.session.flush()
    compile_cycle(cycle, county.admin)
    compile_svc.request_signoff(cycle, county.admin)
    compile_svc.sign_report(cycle, county.leader, compile_svc.latest_version(cycle).number)
    publication = compile_svc.publish_report(cycle, county.admin)
    db.session.flush()
    return SimpleNamespace(cycle=cycle, publication=publication)


@pytest.fixture()
def counties(two_regions, factory, db, monkeypatch):
    """``two_regions`` with each county's material, both counties' 2023 reports published, and a
    sibling city 常德市 with a county 武陵区 and its own overseer."""
    from fazhi_flow.models import Region, Unit

    monkeypatch.setitem(sys.modules, "weasyprint", None)  # no PDF: faster, and not what is tested here
    w = two_regions
    w.hs.unit_head = factory.user("unit_head", unit=w.hs.gaj, username="hs_gaj_head", name="赫山公安负责人")
    w.hs.m = _material(factory, db, w.hs, "志溪河")
    w.zy.m = _material(factory, db, w.zy, "桃花江")
    w.hs.pub = _published(factory, db, w.hs, "志溪河")
    w.zy.pub = _published(factory, db, w.zy, "桃花江")
    other_city = Region(code="430700", name="常德市", level="city")
    db.session.add(other_city)
    db.session.flush()
    wuling = Region(code="430702", name="武陵区", level="county", parent=other_city)
    db.session.add(wuling)
    db.session.flush()
    cd_office = Unit(region=other_city, code="yfzsb", name="常德市委依法治市办", kind="party")
    wl_office = Unit(region=wuling, code="yfzqb", name="武陵区委依法治区办", kind="party")
    db.session.add_all([cd_office, wl_office])
    db.session.flush()
    w.cd_oversight = factory.user("oversight", unit=cd_office, username="cd_duban", name="常德督导")
    w.wl_admin = factory.user("admin", unit=wl_office, username="wl_admin", name="武陵管理员")
    w.wl_cycle = _cycle(db, wuling, 2024)
    db.session.commit()
    return w


def _xlsx_text(data: bytes) -> str:
    """Every cell text of a workbook."""
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True)
    return "\n".join(str(value) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)
                     for value in row if value is not None)


def _text(response) -> str:
    return response.get_data().decode("utf-8", "replace")  # a file sent by mistake still reads


# ---------------------------------------------------------------- lists


def test_lists_show_only_the_own_region(app, counties):
    w = counties
    pages = {
        w.hs.admin: ["/dashboard/", "/compile/"],
        w.hs.reviewer: ["/review/", "/dashboard/"],
        w.hs.leader: ["/compile/", "/dashboard/"],
        w.hs.liaison: ["/tasks/", "/dashboard/", "/inbox/"],
        w.hs.unit_head: ["/tasks/unit-queue", "/tasks/"],
    }
    for user, urls in pages.items():
        client = _client(app, user)
        for url in urls:
            response = client.get(url)
            html = _text(response)
            assert response.status_code == 200, (user.username, url)
            leaked = [word for word in ZY_ONLY if word in html]
            assert not leaked, (user.username, url, leaked)
    # And what the own region has is there: the queue names 赫山's submitted material, the compile
    # list its published report, the dashboard its cycle and both its units.
    queue = _text(_client(app, w.hs.reviewer).get("/review/"))
    assert "赫山公安分局" in queue and "志溪河沿线" in queue and f"/review/{w.hs.m.submitted.id}" in queue
    compile_list = _text(_client(app, w.hs.admin).get("/compile/"))
    assert f"/compile/{w.hs.pub.cycle.id}" in compile_list and f"/compile/{w.zy.pub.cycle.id}\"" not in compile_list
    board = _text(_client(app, w.hs.admin).get("/dashboard/"))
    assert "赫山区2024年法治政府建设年度报告" in board and "赫山公安分局" in board and "赫山区委依法治区办" in board
    tasks = _text(_client(app, w.hs.liaison).get("/tasks/"))
    assert "志溪河沿线开展联合执法" in tasks


def test_the_review_queue_counts_and_approves_only_the_own_region(app, counties, db):
    """A section naming no reviewer is open to the reviewers of its region only: the queue's rows, its
    count and the bulk approval never include the other county's material."""
    from fazhi_flow.models import Contribution
    from fazhi_flow.pages.review import PendingReviewPage, reviewable_refs, reviewable_submissions

    w = counties
    for county in (w.hs, w.zy):
        rows, _kept = reviewable_refs(county.reviewer)
        assert [r.id for r in rows] == [county.m.submitted.id]
        assert [c.id for c in reviewable_submissions(county.reviewer)] == [county.m.submitted.id]
        page = PendingReviewPage.build(county.reviewer, {"cycle": None, "section": None, "unit": None}, 1)
        assert page.total == 1 and [r.id for r in page.rows] == [county.m.submitted.id]
        assert page.units == [(county.gaj.id, county.gaj.name)]
    client = _client(app, w.hs.reviewer)
    both = [w.hs.m.submitted.id, w.zy.m.submitted.id]
    confirm = _text(client.get("/review/bulk", query_string={"ids": both}))
    assert "桃花江" not in confirm and "志溪河" in confirm
    form = {"ids": both, f"v{w.hs.m.submitted.id}": str(w.hs.m.submitted.version),
            f"v{w.zy.m.submitted.id}": str(w.zy.m.submitted.version)}
    client.post("/review/bulk", data=form)
    db.session.expire_all()
    # The other county's id makes the confirmed set differ: nothing is approved, least of all 资阳's.
    assert db.session.get(Contribution, w.zy.m.submitted.id).state == "submitted"
    client.post("/review/bulk", data={"ids": [w.hs.m.submitted.id],
                                      f"v{w.hs.m.submitted.id}": str(w.hs.m.submitted.version)})
    db.session.expire_all()
    assert db.session.get(Contribution, w.hs.m.submitted.id).state == "approved"
    assert db.session.get(Contribution, w.zy.m.submitted.id).state == "submitted"


# ---------------------------------------------------------------- ids of the other region


def _snapshot(db, county):
    """Everything of ``county``'s material a write could change."""
    from fazhi_flow.models import Attachment, Contribution, Publication, ReportCycle, Revision, TransitionLog

    db.session.expire_all()
    cycle_ids = [county.m.cycle.id, county.pub.cycle.id]
    contributions = db.session.query(Contribution).filter(Contribution.cycle_id.in_(cycle_ids)).all()
    ids = [c.id for c in contributions]
    return (
        sorted((c.id, c.state, c.body, c.version) for c in contributions),
        sorted((c.id, c.state) for c in db.session.query(ReportCycle).filter(ReportCycle.id.in_(cycle_ids))),
        sorted((a.id, a.filename, a.sha256) for a in db.session.query(Attachment).filter(
            Attachment.contribution_id.in_(ids))),
        db.session.query(Revision).filter(Revision.contribution_id.in_(ids)).count(),
        db.session.query(TransitionLog).filter(TransitionLog.cycle_id.in_(cycle_ids)).count(),
        db.session.query(Publication).filter(Publication.cycle_id.in_(cycle_ids)).count(),
    )


def _zy_urls(w):
    """(method, url, form) of every page of the material, review, compile and dashboard areas, with
    资阳区's ids."""
    c, d, a = w.zy.m.submitted.id, w.zy.m.draft.id, w.zy.m.attachment.id
    cycle, pub_cycle = w.zy.m.cycle.id, w.zy.pub.cycle.id
    section = w.zy.pub.cycle.sections[0].id
    version = {"version": "1"}
    gets = [f"/tasks/{c}", f"/tasks/{d}", f"/tasks/{c}/history", f"/tasks/{c}/history?a=1&b=draft",
            f"/tasks/{d}/submit", f"/tasks/{c}/unit-review", f"/tasks/attachments/{a}", f"/review/{c}",
            f"/dashboard/?cycle={cycle}", f"/dashboard/export.xlsx?cycle={cycle}",
            f"/compile/{pub_cycle}", f"/compile/{pub_cycle}/sections/{section}", f"/compile/{pub_cycle}/preview",
            f"/compile/{pub_cycle}/draft.docx", f"/compile/{pub_cycle}/draft.txt?version=1",
            f"/compile/{pub_cycle}/signoff", f"/compile/{pub_cycle}/versions", f"/compile/{pub_cycle}/versions/1",
            f"/compile/{pub_cycle}/diff", f"/compile/{pub_cycle}/correction", f"/compile/{cycle}/preview"]
    if "figures.contribution" in w.app.view_functions:
        gets.append(f"/figures/contribution/{c}")
    posts = [
        (f"/tasks/{d}", {"body": "改写别区的材料", **version}),
        (f"/tasks/{d}/submit", version), (f"/tasks/{c}/recall", version),
        (f"/tasks/{c}/unit-approve", version), (f"/tasks/{c}/unit-return", {"comment": "退回", **version}),
        (f"/tasks/{c}/attachments/{a}/delete", {}),
        (f"/review/{c}/approve", version), (f"/review/{c}/return", {"comment": "请补充", **version}),
        (f"/compile/{pub_cycle}/sections/{section}", {"body": "改写", "version": "0"}),
        (f"/compile/{pub_cycle}/sections/{section}/reset", {}), (f"/compile/{pub_cycle}/appendix", {"appendix": "y"}),
        (f"/compile/{pub_cycle}/request-signoff", {}), (f"/compile/{pub_cycle}/sign", version),
        (f"/compile/{pub_cycle}/return", {"comment": "退回"}), (f"/compile/{pub_cycle}/publish", {}),
        (f"/compile/{pub_cycle}/correction", {"note": "更正", "published": "1", "draft": "1"}),
    ]
    return [("GET", url, None) for url in gets] + [("POST", url, form) for url, form in posts]


def test_every_page_answers_an_id_of_the_other_region_with_404(app, counties, db):
    w = counties
    w.app = app
    before = _snapshot(db, w.zy)
    users = [w.hs.admin, w.hs.reviewer, w.hs.leader, w.hs.liaison, w.hs.unit_head]
    wrong = []
    for user in users:
        client = _client(app, user)
        for method, url, form in _zy_urls(w):
            response = client.get(url) if method == "GET" else client.post(url, data=form)
            html = _text(response)
            if response.status_code not in (403, 404) or any(word in html for word in ZY_ONLY):
                wrong.append((user.username, method, url, response.status_code))
            elif response.status_code == 403:
                # A role-level refusal (the page is not for this role at all) is fine; an object of
                # the other region must not be what decided it: the role's own region's id gives 403 too.
                own = url.replace(str(w.zy.m.submitted.id), str(w.hs.m.submitted.id))
                if own != url and client.get(own).status_code != 403 and method == "GET":
                    wrong.append((user.username, method, url, 403))
    assert not wrong, wrong
    assert _snapshot(db, w.zy) == before


def test_downloads_and_exports_of_the_own_region_still_work(app, counties):
    """The 404s above are about the region, not the pages: the same routes with 赫山's ids answer."""
    w = counties
    liaison = _client(app, w.hs.liaison)
    download = liaison.get(f"/tasks/attachments/{w.hs.m.attachment.id}")
    data = download.data
    download.close()  # a file sent from the folder stays open until the response is closed
    assert download.status_code == 200 and data.startswith(b"%PDF-")
    assert liaison.get(f"/tasks/{w.hs.m.submitted.id}/history").status_code == 200
    admin = _client(app, w.hs.admin)
    assert admin.get(f"/review/{w.hs.m.submitted.id}").status_code == 200
    export = admin.get(f"/dashboard/export.xlsx?cycle={w.hs.m.cycle.id}")
    assert export.status_code == 200 and export.data.startswith(b"PK")
    draft = admin.get(f"/compile/{w.hs.pub.cycle.id}/draft.docx")
    assert draft.status_code == 200 and draft.data.startswith(b"PK")
    assert admin.get(f"/compile/{w.hs.pub.cycle.id}/versions/1").status_code == 200


# ---------------------------------------------------------------- oversight


def test_the_overseer_reads_the_dashboards_below_and_nothing_of_their_material(app, counties):
    w = counties
    overseer = _client(app, w.oversight)
    for county, river, other in ((w.hs, "志溪河", "资阳"), (w.zy, "桃花江", "赫山")):
        response = overseer.get(f"/dashboard/?cycle={county.m.cycle.id}")
        html = _text(response)
        assert response.status_code == 200
        assert f"{county.region.name}2024年法治政府建设年度报告" in html
        # Every unit of the county, read only: the cells lead nowhere, the choices are its own cycles.
        assert county.gaj.name in html and county.office.name in html and "督导查看" in html
        assert "/review/" not in html and "/tasks/" not in html and other not in html
        assert f'value="{county.pub.cycle.id}"' in html
        export = overseer.get(f"/dashboard/export.xlsx?cycle={county.m.cycle.id}")
        assert export.status_code == 200
        cells = _xlsx_text(export.data)
        assert f"{county.region.name}2024年法治政府建设年度报告" in cells
        assert county.gaj.name in cells and county.office.name in cells and other not in cells
        # The published reports are public pages.
        assert overseer.get(f"/reports/{county.pub.publication.id}").status_code == 200
        assert overseer.get(f"/reports/{county.pub.publication.id}/report.docx").status_code == 200
        # Never the material, its attachments, the drafts or the compile area.
        for url in (f"/tasks/{county.m.submitted.id}", f"/tasks/{county.m.submitted.id}/history",
                    f"/review/{county.m.submitted.id}", f"/tasks/attachments/{county.m.attachment.id}",
                    f"/compile/{county.pub.cycle.id}", f"/compile/{county.pub.cycle.id}/preview",
                    f"/compile/{county.pub.cycle.id}/draft.docx", f"/compile/{county.pub.cycle.id}/versions/1"):
            assert overseer.get(url).status_code in (403, 404), url
        assert river not in _text(overseer.get(f"/tasks/{county.m.submitted.id}"))
    # Without a cycle named: the city's own cycles (none), and the way to the regions below.
    own = _text(overseer.get("/dashboard/"))
    assert "还没有任何年度报告" in own and "志溪河" not in own and "桃花江" not in own
    if "oversight.index" in app.view_functions:
        assert 'href="/oversight/">督导</a>页面进入' in own
    # The area lists are not the overseer's (role level) and list nothing of the counties anyway.
    for url in ("/compile/", "/review/", "/tasks/"):
        response = overseer.get(url)
        assert response.status_code == 403 and "志溪河" not in _text(response) and "桃花江" not in _text(response)


def test_no_one_else_reads_a_dashboard_across_regions(app, counties):
    w = counties
    # A sibling city's overseer, and the city's overseer over another city's county: 404.
    assert _client(app, w.cd_oversight).get(f"/dashboard/?cycle={w.hs.m.cycle.id}").status_code == 404
    assert _client(app, w.cd_oversight).get(f"/dashboard/export.xlsx?cycle={w.zy.m.cycle.id}").status_code == 404
    assert _client(app, w.oversight).get(f"/dashboard/?cycle={w.wl_cycle.id}").status_code == 404
    # The city's admin is no overseer; a county's admin does not read its sibling, nor the city's.
    assert _client(app, w.city_admin).get(f"/dashboard/?cycle={w.hs.m.cycle.id}").status_code == 404
    assert _client(app, w.zy.admin).get(f"/dashboard/?cycle={w.hs.m.cycle.id}").status_code == 404
    refused = _client(app, w.zy.liaison).get(f"/dashboard/?cycle={w.hs.m.cycle.id}")
    assert refused.status_code == 404 and "志溪河" not in _text(refused) and "赫山" not in _text(refused)
    # 武陵区's admin sees its own dashboard and nothing of 益阳市's counties in its choices.
    own = _text(_client(app, w.wl_admin).get("/dashboard/"))
    assert "武陵区" in own and "赫山" not in own and "资阳" not in own


# ---------------------------------------------------------------- public pages


def test_public_pages_list_each_regions_reports_under_its_name(app, counties, client):
    w = counties
    html = _text(client.get("/reports/"))
    hs_at, zy_at = html.index('id="region-430903"'), html.index('id="region-430902"')
    hs_title, zy_title = html.index("赫山区2023年法治政府建设年度报告"), html.index("资阳区2023年法治政府建设年度报告")
    # Each report under its own region's heading (the sections follow each other in the page).
    first, second = sorted([(hs_at, "hs"), (zy_at, "zy")])
    titles = {"hs": hs_title, "zy": zy_title}
    assert first[0] < titles[first[1]] < second[0] < titles[second[1]]
    assert '<a href="/reports/?region=430903">只看赫山区</a>' in html
    only = client.get("/reports/?region=430902")
    assert only.status_code == 200
    assert "资阳区2023年" in _text(only) and "赫山区2023年" not in _text(only)
    unknown = client.get("/reports/?region=999999")
    assert unknown.status_code == 404 and "没有代码为“999999”的地区" in _text(unknown)
    # A region without publications says so; a publication's URL works whatever its region.
    quiet = client.get("/reports/?region=430702")
    assert quiet.status_code == 200 and "武陵区还没有发布的年度报告" in _text(quiet)
    for county in (w.hs, w.zy):
        shown = client.get(f"/reports/{county.pub.publication.id}")
        assert shown.status_code == 200 and county.region.name in _text(shown)
        assert client.get(f"/reports/{county.pub.publication.id}/report.txt").status_code == 200


def test_the_public_list_reads_a_fixed_number_of_statements(app, counties, db, factory, client):
    """Regions add headings, not statements: the list costs the same for two regions as for three."""
    with count_queries(db.engine) as two:
        assert client.get("/reports/").status_code == 200
    from fazhi_flow.models import Region, Unit
    from types import SimpleNamespace as NS

    # The longest code and name a region may have (20 and 100 characters).
    long_name = ("益阳高新技术产业开发区管理委员会" * 7)[:97] + "管委会"
    third = Region(code="GX-430900-2024-00001", name=long_name, level="county", parent=counties.city)
    db.session.add(third)
    db.session.flush()
    office = Unit(region=third, code="yfzqb", name="南县委依法治县办", kind="party")
    db.session.add(office)
    db.session.flush()
    county = NS(region=third, office=office,
                admin=factory.user("admin", unit=office, username="nx_admin"),
                leader=factory.user("leader", unit=office, username="nx_leader"))
    _published(factory, db, county, "沱江")
    db.session.commit()
    with count_queries(db.engine) as three:
        html = _text(client.get("/reports/"))
    assert len(long_name) == 100 and f"{long_name}2023年法治政府建设年度报告" in html
    assert f'<a href="/reports/?region=GX-430900-2024-00001">只看{long_name}</a>' in html
    assert len(three) == len(two), (len(two), len(three))
    only = _text(client.get("/reports/?region=GX-430900-2024-00001"))
    assert f"{long_name}2023年" in only and "赫山区2023年" not in only
    # An over-long code is refused like any unknown one, its echo cut short.
    refused = client.get("/reports/?region=" + "9" * 5000)
    assert refused.status_code == 404 and "没有代码为“" + "9" * 20 + "”的地区" in _text(refused)


# ---------------------------------------------------------------- menu


def test_the_overseer_has_a_menu_item_when_the_area_exists(app, counties):
    w = counties
    html = _text(_client(app, w.oversight).get("/reports/"))
    if "oversight.index" in app.view_functions:
        assert 'href="/oversight/"' in html and ">督导<" in html
    else:
        assert ">督导<" not in html
    assert ">督导<" not in _text(_client(app, w.hs.admin).get("/reports/"))
