"""督导: the city's oversight user reads the counties below — progress, publication, figures side by side
— and sends a 督办 to one county's admins; nobody else gets in, and nothing crosses to a sibling city.

The world: 益阳市 above 赫山区 (2024 published, 2023 for the year-over-year change), 资阳区 (2024
collecting, material in every state, returns, a publication deadline already past) and 安化县 (no 2024
report). Both 赫山区 and 资阳区 have a unit "gaj". A sibling city 常德市 has its own overseer and county.
"""
from __future__ import annotations

import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import (Assignment, AuditEvent, Contribution, Indicator, Notification, OutboxMessage,
                               Publication, Region, ReportCycle, ReportDraftVersion, Revision, Section,
                               TransitionLog, Unit, User)
from fazhi_flow.models.indicator import IndicatorValue
from fazhi_flow.models.publication import sha256_hex
from fazhi_flow.services import oversight as svc
from fazhi_flow.testing import FreshUserClient, count_queries, login
from fazhi_flow.timeutil import local_today, to_local

BODY = "本年度办理行政复议案件{{xzfy}}件，纠错率{{jzl}}%。"


# ------------------------------------------------------------------ building the world


def _cycle(db, region, year, state, due, publish_deadline=None):
    cycle = ReportCycle(year=year, region=region.name, owner=region, title=f"{year}年法治政府建设年度报告",
                        due=due, state=state, publish_deadline=publish_deadline)
    db.session.add(cycle)
    db.session.flush()
    top = Section(cycle=cycle, code="cs", position=1, title="主要举措和成效")
    db.session.add(top)
    db.session.flush()
    # One section with its own due date, one inheriting its parent's (the cycle's), as outlines do.
    own_due = Section(cycle=cycle, parent=top, code="xzfy", position=1, title="行政复议", due=due - timedelta(days=5))
    inherit = Section(cycle=cycle, parent=top, code="zfjd", position=2, title="执法监督")
    db.session.add_all([own_due, inherit])
    db.session.flush()
    indicators = {
        "xzfy": Indicator(cycle_id=cycle.id, section_id=own_due.id, code="xzfy", name="行政复议案件", measure="件",
                          type="integer", position=1),
        "jzl": Indicator(cycle_id=cycle.id, section_id=own_due.id, code="jzl", name="纠错率", measure="%",
                         type="percent", position=2),
        "rk": Indicator(cycle_id=cycle.id, section_id=own_due.id, code="rk", name="常住人口", measure="万人",
                        type="decimal", position=3, reported_by="lead"),
    }
    db.session.add_all(indicators.values())
    db.session.flush()
    return SimpleNamespace(cycle=cycle, sections=[own_due, inherit], indicators=indicators)


def _cell(db, built, section, unit, state, submitted=None, values=None, own_due=None, role="lead"):
    """An assignment, its contribution (none for ``state`` None), first submitted at ``submitted``
    (a naive UTC datetime), with figures ``values`` {code: Decimal}."""
    assignment = Assignment(section=section, unit=unit, role=role, due=own_due)
    db.session.add(assignment)
    db.session.flush()
    if state is None:
        return assignment, None
    contribution = Contribution(assignment=assignment, cycle_id=built.cycle.id, section_id=section.id,
                                unit_id=unit.id, body=BODY, state=state)
    db.session.add(contribution)
    db.session.flush()
    if submitted is not None:
        db.session.add_all([Revision(contribution_id=contribution.id, number=1, body=BODY, created_at=submitted),
                            Revision(contribution_id=contribution.id, number=2, body=BODY,
                                     created_at=submitted + timedelta(days=9))])
    for code, value in (values or {}).items():
        approved = value if state == "approved" else None
        db.session.add(IndicatorValue(contribution_id=contribution.id, indicator_id=built.indicators[code].id,
                                      value=value, approved_value=approved))
    db.session.flush()
    return assignment, contribution


def _log(db, contribution, event, from_state, to_state, actor):
    db.session.add(TransitionLog(contribution_id=contribution.id, event=event, from_state=from_state,
                                 to_state=to_state, actor_id=actor.id, comment="请补充{{xzfy}}的统计口径。"))


def _publish(db, cycle, version, at, actor, pdf=True):
    draft = ReportDraftVersion(cycle_id=cycle.id, number=version, reason="提请签发", text="正文", document={},
                               created_by_id=actor.id)
    db.session.add(draft)
    db.session.flush()
    html = "<article class=\"gw-report\">正文</article>"
    docx, pdf_bytes = b"PK\x03\x04docx", (b"%PDF-1.4 report" if pdf else None)
    publication = Publication(cycle_id=cycle.id, version=version, draft_version_id=draft.id, year=cycle.year,
                              region=cycle.region, title=cycle.title, text="正文", html=html, docx=docx,
                              pdf=pdf_bytes, text_sha256=sha256_hex("正文"), html_sha256=sha256_hex(html),
                              docx_sha256=sha256_hex(docx), pdf_sha256=sha256_hex(pdf_bytes),
                              published_by_id=actor.id, published_at=at,
                              correction_note="更正第二部分的数字。" if version > 1 else None)
    db.session.add(publication)
    db.session.flush()
    return publication


def _utc(day: date, hour: int) -> datetime:
    """A naive UTC time: ``hour`` o'clock Beijing time on ``day`` (UTC+8)."""
    return datetime(day.year, day.month, day.day, hour) - timedelta(hours=8)


def _sibling_city(db, factory, today):
    """常德市 and its county 武陵区 (a unit "gaj" too): never shown to 益阳市's overseer."""
    cd = Region(code="430700", name="常德市", level="city")
    db.session.add(cd)
    db.session.flush()
    wl = Region(code="430702", name="武陵区", level="county", parent=cd)
    cd_office = Unit(region=cd, code="yfzsb", name="常德市委依法治市办", kind="party")
    db.session.add_all([wl, cd_office])
    db.session.flush()
    wl_office = Unit(region=wl, code="gaj", name="武陵公安分局")
    db.session.add(wl_office)
    db.session.flush()
    admin = factory.user("admin", unit=wl_office, username="wl_admin", name="武陵区管理员")
    _cycle(db, wl, 2024, "collecting", today)
    oversight = factory.user("oversight", unit=cd_office, username="cd_duban", name="常德市督导")
    return SimpleNamespace(city=cd, county=wl, admin=admin, oversight=oversight)


@pytest.fixture()
def ov(two_regions, factory, db):
    w = two_regions
    hs, zy = w.hs, w.zy
    hs.sfj = Unit(region=hs.region, code="sfj", name="赫山区司法局", sort_order=3)
    zy.sfj = Unit(region=zy.region, code="sfj", name="资阳区司法局", sort_order=3)
    db.session.add_all([hs.sfj, zy.sfj])
    ah = Region(code="430923", name="安化县", level="county", parent=w.city, sort_order=9)
    db.session.add(ah)
    db.session.flush()
    ah_office = Unit(region=ah, code="yfzqb", name="安化县委依法治县办", kind="party")
    db.session.add(ah_office)
    db.session.flush()
    ah_admin = factory.user("admin", unit=ah_office, username="ah_admin", name="安化县管理员")

    # 赫山区 2024: published on 20 March 2025 (before the 1 April deadline), corrected in May.
    hs24 = _cycle(db, hs.region, 2024, "published", date(2025, 1, 10))
    s1, s2 = hs24.sections
    _cell(db, hs24, s1, hs.gaj, "approved", _utc(date(2025, 1, 5), 10), {"xzfy": Decimal(120), "jzl": Decimal(10)})
    _cell(db, hs24, s1, hs.office, "approved", _utc(date(2025, 1, 4), 10),
          {"xzfy": Decimal(30), "jzl": Decimal("20.5"), "rk": Decimal("95.5")}, role="lead")
    _cell(db, hs24, s2, hs.sfj, "approved", _utc(date(2025, 1, 12), 9))  # late: due 10 January
    hs_pub1 = _publish(db, hs24.cycle, 1, _utc(date(2025, 3, 20), 15), hs.admin)
    hs_pub2 = _publish(db, hs24.cycle, 2, _utc(date(2025, 5, 8), 15), hs.admin, pdf=False)
    # 赫山区 2023, for the change from last year.
    hs23 = _cycle(db, hs.region, 2023, "published", date(2024, 1, 10))
    _cell(db, hs23, hs23.sections[0], hs.gaj, "approved", _utc(date(2024, 1, 2), 10),
          {"xzfy": Decimal(100), "jzl": Decimal(12)})
    _cell(db, hs23, hs23.sections[0], hs.office, "approved", _utc(date(2024, 1, 2), 10), {"rk": Decimal(95)})

    # 资阳区 2024: collecting, a deadline for publication set to 10 days ago, material in every state.
    today = local_today()
    zy24 = _cycle(db, zy.region, 2024, "collecting", today - timedelta(days=3),
                  publish_deadline=today - timedelta(days=10))
    z1, z2 = zy24.sections  # z1 due 8 days ago, z2 inherits: 3 days ago
    _, z_gaj = _cell(db, zy24, z1, zy.gaj, "approved", _utc(today - timedelta(days=9), 23),
                     {"xzfy": Decimal(80), "jzl": Decimal(30), "rk": Decimal(60)})
    # Submitted at 01:00 Beijing time on the due date: 17:00 UTC the day before, still on time.
    _, z_sfj = _cell(db, zy24, z1, zy.sfj, "submitted", _utc(today - timedelta(days=8), 1),
                     {"xzfy": Decimal(999)}, role="support")
    _, z_off = _cell(db, zy24, z1, zy.office, "returned", _utc(today - timedelta(days=6), 10), role="support")
    _cell(db, zy24, z2, zy.gaj, "draft")  # past due, never submitted
    _cell(db, zy24, z2, zy.sfj, "unit_review", _utc(today - timedelta(days=1), 10),
          own_due=today + timedelta(days=5))  # its own later due date: on time
    _cell(db, zy24, z2, zy.office, "draft", own_due=today + timedelta(days=20))  # not due yet: not counted
    _log(db, z_off, "return", "submitted", "returned", zy.reviewer)
    _log(db, z_off, "unit_return", "unit_review", "returned", zy.admin)
    _log(db, z_gaj, "return", "submitted", "returned", zy.reviewer)
    _log(db, z_gaj, "approve", "submitted", "approved", zy.reviewer)
    _log(db, z_sfj, "submit", "draft", "submitted", zy.liaison)
    # 赫山区's returns are its own: one, not counted for 资阳区.
    hs_c = db.session.scalar(select(Contribution).where(Contribution.cycle_id == hs24.cycle.id))
    _log(db, hs_c, "return", "submitted", "returned", hs.reviewer)

    cd = _sibling_city(db, factory, today)
    db.session.commit()
    return SimpleNamespace(w=w, hs=hs, zy=zy, ah=ah, ah_admin=ah_admin, hs24=hs24, hs23=hs23, zy24=zy24,
                           hs_pubs=(hs_pub1, hs_pub2), cd=cd.city, wl=cd.county, wl_admin=cd.admin, cd_oversight=cd.oversight,
                           today=today)


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


# ------------------------------------------------------------------ the independent count


def _expected(db, cycle, today):
    """The figures of ``cycle`` counted row by row through the ORM (not the page's aggregates)."""
    assignments = list(db.session.scalars(select(Assignment).join(Section).where(Section.cycle_id == cycle.id)))
    total = len(assignments)
    approved = on_time = base = 0
    for a in assignments:
        c = a.contribution
        approved += c is not None and c.state == "approved"
        due = a.effective_due()
        first = None
        if c is not None and c.revisions:
            first = to_local(min(r.created_at for r in c.revisions)).date()
        if due is not None and (first is not None or due < today):
            base += 1
            on_time += first is not None and first <= due
    returns = db.session.scalar(select(func.count()).select_from(TransitionLog).join(
        Contribution, Contribution.id == TransitionLog.contribution_id).where(
        Contribution.cycle_id == cycle.id, TransitionLog.event.in_(("return", "unit_return"))))
    return SimpleNamespace(total=total, approved=approved, on_time=on_time, base=base, returns=returns)


# ------------------------------------------------------------------ the list of regions


def test_list_figures_match_an_independent_count(ov, db, app):
    view = svc.overview(ov.w.oversight, None)
    assert view.year == 2024 and view.years == [2024, 2023]
    names = [(r.region.name, r.depth) for r in view.rows]
    # Only 益阳市's counties, in sort order; never the sibling city's.
    assert names == [("资阳区", 0), ("赫山区", 0), ("安化县", 0)]
    rows = {r.region.name: r for r in view.rows}
    for name, cycle in (("资阳区", ov.zy24.cycle), ("赫山区", ov.hs24.cycle)):
        row, want = rows[name], _expected(db, cycle, view.today)
        assert (row.total, row.approved, row.on_time, row.on_time_base, row.returns) == \
            (want.total, want.approved, want.on_time, want.base, want.returns), name
    zy, hs, ah = rows["资阳区"], rows["赫山区"], rows["安化县"]
    # Counted by hand too: 资阳区 has 6 cells, 1 approved; due so far 4 (the 20-days-ahead draft is not
    # due), of which 3 were submitted by their due date (01:00 Beijing time on the day is on time).
    assert (zy.total, zy.approved, zy.on_time_base, zy.on_time, zy.returns) == (6, 1, 5, 3, 3)
    assert (hs.total, hs.approved, hs.on_time_base, hs.on_time, hs.returns) == (3, 3, 3, 2, 1)
    assert zy.deadline_text == "已逾期10天" and zy.overdue and zy.state_label == "征集中"
    assert hs.deadline == date(2025, 4, 1) and hs.deadline_text == "按期发布" and not hs.overdue
    assert [p.version for p in hs.publications] == [1, 2] and hs.latest_publication.has_pdf is False
    assert ah.cycle is None and ah.state_label == "未创建" and ah.deadline_text == ""


def test_list_page_shows_states_rates_deadlines_and_publication_links(ov, app):
    client = _client(app, ov.w.oversight)
    page = client.get("/oversight/").get_data(as_text=True)
    assert "督导：各地区进度" in page and "常德" not in page and "武陵" not in page
    zy_row = page[page.index("资阳区"):page.index("赫山区")]
    assert "征集中" in zy_row and "17%" in zy_row and "（1/6）" in zy_row and "60%" in zy_row
    assert "（3/5）" in zy_row and "已逾期10天" in zy_row and "未发布" in zy_row
    hs_row = page[page.index("赫山区"):page.index("安化县")]
    pub1, pub2 = ov.hs_pubs
    assert "已发布（2025年3月20日）" in hs_row and "按期发布" in hs_row and "第2版" in hs_row
    assert f'href="/reports/{pub2.id}"' in hs_row and f'href="/reports/{pub2.id}/report.docx"' in hs_row
    assert f"/reports/{pub2.id}/report.pdf" not in hs_row  # the correction has no PDF
    ah_row = page[page.index("安化县"):]
    assert "未创建" in ah_row
    # The links lead to the published documents.
    assert client.get(f"/reports/{pub2.id}/report.docx").data == b"PK\x03\x04docx"
    # An earlier year; a year that is not one is said, not a traceback.
    assert "2023年度" in client.get("/oversight/?year=2023").get_data(as_text=True)
    bad = client.get("/oversight/?year=20x4")
    assert bad.status_code == 200 and "参数 year：“20x4”不是年份" in bad.get_data(as_text=True)


# ------------------------------------------------------------------ the indicator comparison


def test_comparison_values_ratios_and_changes(ov):
    table = svc.comparison(ov.w.oversight, 2024, per="rk")
    assert [c.code for c in table.columns] == ["xzfy", "jzl", "rk"] and table.per.code == "rk"
    rows = {r.region.name: r for r in table.rows}
    hs, zy, ah = rows["赫山区"], rows["资阳区"], rows["安化县"]
    # Approved values only: 资阳区's submitted 999 is not counted; a percentage is the units' average.
    assert hs.value("xzfy") == 150 and zy.value("xzfy") == 80 and ah.value("xzfy") is None
    assert hs.value("jzl") == Decimal("15.25") and zy.value("jzl") == 30
    assert hs.value("rk") == Decimal("95.5")
    assert hs.ratio("xzfy", "rk") == Decimal(150) / Decimal("95.5")
    assert zy.ratio("xzfy", "rk") == Decimal(80) / Decimal(60)
    assert hs.change("xzfy") == Decimal("0.5") and zy.change("xzfy") is None  # 资阳区 has no 2023 report
    assert hs.change("rk") == (Decimal("95.5") - 95) / 95
    assert not table.is_share(table.columns[0]) and table.ratio_label(table.columns[0]) == "每万人"
    assert [table.has_ratio(c) for c in table.columns] == [True, False, False]


def test_comparison_page_and_bad_per(ov, app):
    client = _client(app, ov.w.oversight)
    page = client.get("/oversight/indicators?year=2024&per=rk").get_data(as_text=True)
    assert "行政复议案件" in page and "每万人" in page and "+50.0%" in page and "1.5707" in page
    # A percentage gets no ratio: 纠错率 has its value and change only.
    assert '<th scope="colgroup" colspan="2">纠错率' in page
    assert "审核通过的材料" in page  # the note says which values
    assert "常德" not in page and "武陵" not in page
    bad = client.get("/oversight/indicators?year=2024&per=nosuch")
    text = bad.get_data(as_text=True)
    assert bad.status_code == 200 and "参数 per：2024年各地区的年度报告中没有代码为“nosuch”的统计指标" in text


def test_comparison_xlsx_cells(ov, app):
    from openpyxl import load_workbook

    client = _client(app, ov.w.oversight)
    response = client.get("/oversight/indicators.xlsx?year=2024&per=rk")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert "2024%E5%B9%B4" in disposition and ".xlsx" in disposition and "/" not in disposition.split("=")[-1]
    book = load_workbook(io.BytesIO(response.data))
    sheet = book["指标对比"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["地区", "级别", "年度报告状态", "行政复议案件（xzfy，件）"]
    assert header[4] == "行政复议案件÷常住人口（每万人）" and header[5] == "行政复议案件同比"
    assert header[6:8] == ["纠错率（jzl，%）", "纠错率同比"]
    rows = {r[0].value.strip("　"): [c.value for c in r] for r in sheet.iter_rows(min_row=2)}
    assert set(rows) == {"资阳区", "赫山区", "安化县"}
    hs = rows["赫山区"]
    assert hs[2] == "已发布" and hs[3] == 150 and hs[4] == pytest.approx(150 / 95.5) and hs[5] == pytest.approx(0.5)
    assert rows["资阳区"][3] == 80 and rows["资阳区"][5] is None
    assert rows["安化县"][2] == "未创建" and rows["安化县"][3] is None
    assert "审核通过" in book["说明"]["A2"].value and "常住人口" in book["说明"]["A3"].value


# ------------------------------------------------------------------ 督办


def _notices(db, user):
    return db.session.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == user.id))


def _mails(db, user):
    return db.session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.user_id == user.id))


def test_reminder_reaches_only_that_regions_admins_and_is_audited(ov, app, db):
    client = _client(app, ov.w.oversight)
    form = client.get(f"/oversight/regions/{ov.zy.region.id}/remind?year=2024").get_data(as_text=True)
    assert "资阳区管理员" in form and "赫山区管理员" not in form
    text = "请于本周内完成{{xzfy}}等统计数据的审核，并按期发布年度报告。" + "督" * 470
    text = text[:500]  # the longest allowed
    response = client.post(f"/oversight/regions/{ov.zy.region.id}/remind?year=2024", data={"text": text})
    assert response.status_code == 303
    assert (_notices(db, ov.zy.admin), _mails(db, ov.zy.admin)) == (1, 1)
    for other in (ov.hs.admin, ov.ah_admin, ov.w.city_admin, ov.zy.reviewer, ov.zy.liaison, ov.wl_admin):
        assert (_notices(db, other), _mails(db, other)) == (0, 0), other.username
    note = db.session.scalar(select(Notification).where(Notification.user_id == ov.zy.admin.id))
    assert note.title.startswith("督办") and text in note.body
    mail = db.session.scalar(select(OutboxMessage).where(OutboxMessage.user_id == ov.zy.admin.id))
    assert text in mail.body and "益阳市" in mail.body and mail.cause == "oversight:remind"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "oversight.remind"))
    assert event.actor_id == ov.w.oversight.id and event.target == f"region:{ov.zy.region.id}"
    assert event.detail["note"] == text and event.detail["count"] == 1
    from fazhi_flow.services.audit import action_label

    assert action_label("oversight.remind") == "督办"
    # The list shows when.
    page = client.get("/oversight/?year=2024").get_data(as_text=True)
    zy_row = page[page.index("资阳区"):page.index("赫山区")]
    today = local_today()
    assert f"{today.year}年{today.month}月{today.day}日" in zy_row
    row = next(r for r in svc.overview(ov.w.oversight, 2024).rows if r.region.id == ov.zy.region.id)
    assert row.last_reminder is not None


@pytest.mark.parametrize("text, message", [
    ("", "请填写督办内容。"),
    ("   ", "请填写督办内容。"),
    ("督" * 501, "督办内容不能超过500个字（现在是501个字）。"),
])
def test_bad_reminder_text_is_refused_and_writes_nothing(ov, app, db, text, message):
    client = _client(app, ov.w.oversight)
    response = client.post(f"/oversight/regions/{ov.zy.region.id}/remind", data={"text": text})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and 'name="text"' in page
    assert _notices(db, ov.zy.admin) == 0 and _mails(db, ov.zy.admin) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "oversight.remind")) == 0


def test_reminder_needs_the_csrf_token(ov, app, db):
    client = _client(app, ov.w.oversight)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        url = f"/oversight/regions/{ov.zy.region.id}/remind"
        assert client.post(url, data={"text": "请按期发布。"}).status_code == 400
        assert _notices(db, ov.zy.admin) == 0
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)
        assert client.post(url, data={"text": "请按期发布。", "csrf_token": token}).status_code == 303
        assert _notices(db, ov.zy.admin) == 1
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_a_region_without_admins_is_told_not_written(ov, app, db):
    db.session.get(User, ov.ah_admin.id).active = False
    db.session.commit()
    client = _client(app, ov.w.oversight)
    response = client.post(f"/oversight/regions/{ov.ah.id}/remind", data={"text": "请尽快创建年度报告。"})
    assert response.status_code == 400 and "安化县还没有启用的管理员账号" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "oversight.remind")) == 0


# ------------------------------------------------------------------ who gets in


def test_county_people_and_the_city_admin_are_refused(ov, app):
    for user in (ov.hs.admin, ov.zy.liaison, ov.zy.leader, ov.w.city_admin, ov.w.sysadmin):
        client = _client(app, user)
        for url in ("/oversight/", "/oversight/indicators", "/oversight/indicators.xlsx"):
            assert client.get(url).status_code == 403, (user.username, url)
        response = client.post(f"/oversight/regions/{ov.zy.region.id}/remind", data={"text": "越权督办"})
        assert response.status_code == 403, user.username
    anonymous = FreshUserClient(app, app.response_class, use_cookies=True)
    assert anonymous.get("/oversight/").status_code == 302


def test_regions_not_below_answer_404(ov, app, db):
    sibling = _client(app, ov.cd_oversight)
    page = sibling.get("/oversight/").get_data(as_text=True)
    assert "武陵区" in page and "资阳区" not in page and "赫山区" not in page
    for region in (ov.zy.region, ov.hs.region, ov.w.city):
        assert sibling.get(f"/oversight/regions/{region.id}/remind").status_code == 404
        assert sibling.post(f"/oversight/regions/{region.id}/remind", data={"text": "越权督办"}).status_code == 404
    own = _client(app, ov.w.oversight)
    # Its own region (not strictly below), the sibling city's county, a missing id.
    for region_id in (ov.w.city.id, ov.wl.id, ov.cd.id, 99_999_999):
        assert own.get(f"/oversight/regions/{region_id}/remind").status_code == 404
        assert own.post(f"/oversight/regions/{region_id}/remind", data={"text": "越权督办"}).status_code == 404
    assert _notices(db, ov.wl_admin) == 0 and _notices(db, ov.w.city_admin) == 0


def test_an_oversight_user_of_a_county_sees_no_region(ov, app, db, factory):
    county_overseer = factory.user("oversight", unit=ov.zy.office, username="zy_duban", name="资阳区督导")
    db.session.commit()
    client = _client(app, county_overseer)
    page = client.get("/oversight/").get_data(as_text=True)
    assert "资阳区以下还没有地区" in page and "赫山区" not in page
    assert client.get(f"/oversight/regions/{ov.hs.region.id}/remind").status_code == 404


# ------------------------------------------------------------------ statements constant in regions


def _scale_city(db, factory, code, n):
    """A city with ``n`` counties, each with a cycle in a different state, material, figures, a return,
    and (every third) a publication; returns the city's overseer."""
    city = Region(code=code, name=f"规模市{n}", level="city")
    db.session.add(city)
    db.session.flush()
    office = Unit(region=city, code="yfzsb", name=f"规模市{n}依法治市办", kind="party")
    db.session.add(office)
    db.session.flush()
    overseer = factory.user("oversight", unit=office, username=f"scale{n}_duban")
    states = ("setup", "collecting", "compiling", "published")
    for i in range(n):
        county = Region(code=f"{code[:4]}{i + 1:02d}", name=f"规模{n}县{i + 1}", level="county", parent=city,
                        sort_order=i)
        db.session.add(county)
        db.session.flush()
        gaj = Unit(region=county, code="gaj", name=f"规模{n}县{i + 1}公安局")
        db.session.add(gaj)
        db.session.flush()
        factory.user("admin", unit=gaj, username=f"scale{n}_admin{i}")
        for year in (2023, 2024):
            built = _cycle(db, county, year, states[i % 4], date(year + 1, 1, 10))
            _, c = _cell(db, built, built.sections[0], gaj, "approved", _utc(date(year + 1, 1, 2), 9),
                         {"xzfy": Decimal(10 + i), "rk": Decimal(50)})
            _log(db, c, "return", "submitted", "returned", overseer)
            if i % 3 == 0:
                _publish(db, built.cycle, 1, _utc(date(year + 1, 3, 2), 9), overseer)
    db.session.commit()
    return overseer


def test_statement_count_is_the_same_for_2_and_6_regions(app, db, factory):
    small = _scale_city(db, factory, "431000", 2)
    large = _scale_city(db, factory, "431100", 6)
    db.session.add(AuditEvent(actor_id=small.id, action="oversight.remind", target="region:1"))
    db.session.commit()
    counts = {}
    for name, user in (("small", small), ("large", large)):
        client = _client(app, user)
        client.get("/oversight/")  # warm up: first-request work is not the page's
        for url in ("/oversight/?year=2024", "/oversight/indicators?year=2024&per=rk",
                    "/oversight/indicators.xlsx?year=2024&per=rk"):
            with count_queries(db.engine) as statements:
                response = client.get(url)
            assert response.status_code == 200, url
            counts[(name, url)] = len(statements)
        page = client.get("/oversight/?year=2024").get_data(as_text=True)
        assert page.count('class="region depth-0"') == (2 if name == "small" else 6)
    for url in ("/oversight/?year=2024", "/oversight/indicators?year=2024&per=rk",
                "/oversight/indicators.xlsx?year=2024&per=rk"):
        assert counts[("small", url)] == counts[("large", url)], (url, counts)
        # 15: the page's 14, and the one statement per request reading the viewer's delegations (委托),
        # asked when a menu entry is not the viewer's own.
        assert counts[("large", url)] <= 15, (url, counts)


# ------------------------------------------------------------------ a province over cities that roll up


def test_a_province_compares_cities_whose_figures_roll_up_and_shows_shares(db, factory, app):
    """湖南省 over 长沙市 (its 2024 report sums 行政复议案件 over its districts) and 株洲市 (its own units'
    values); 纠错案件 over 行政复议案件 (both 件) is a share."""
    province = Region(code="430000", name="湖南省", level="province")
    db.session.add(province)
    db.session.flush()
    office = Unit(region=province, code="yfzsb", name="省委依法治省办", kind="party")
    cs = Region(code="430100", name="长沙市", level="city", parent=province, sort_order=1)
    zz = Region(code="430200", name="株洲市", level="city", parent=province, sort_order=2)
    db.session.add_all([office, cs, zz])
    db.session.flush()
    districts = [Region(code=f"43010{i}", name=name, level="county", parent=cs, sort_order=i)
                 for i, name in ((2, "芙蓉区"), (3, "天心区"))]
    db.session.add_all(districts)
    db.session.flush()
    overseer = factory.user("oversight", unit=office, username="hn_duban", name="省督导")

    def report(region, xzfy, corrected, rollup=None):
        gaj = Unit(region=region, code="gaj", name=f"{region.name}公安局")
        db.session.add(gaj)
        db.session.flush()
        built = _cycle(db, region, 2024, "published", date(2025, 1, 10))
        built.indicators["jz"] = Indicator(
            cycle_id=built.cycle.id, section_id=built.sections[0].id, code="jz", name="纠错案件", measure="件",
            type="integer", position=4)
        db.session.add(built.indicators["jz"])
        built.indicators["xzfy"].rollup = rollup
        db.session.flush()
        values = {"jz": Decimal(corrected)} if rollup else {"xzfy": Decimal(xzfy), "jz": Decimal(corrected)}
        _cell(db, built, built.sections[0], gaj, "approved", _utc(date(2025, 1, 2), 9), values)
        return built

    report(districts[0], 40, 4)
    report(districts[1], 60, 3)
    report(cs, None, 10, rollup="sum")  # 长沙市's own 行政复议 figure is its districts' sum
    report(zz, 50, 5)
    db.session.commit()

    table = svc.comparison(overseer, 2024, per="xzfy")
    rows = {r.region.name: r for r in table.rows}
    assert [(r.region.name, r.depth) for r in table.rows] == [
        ("长沙市", 0), ("芙蓉区", 1), ("天心区", 1), ("株洲市", 0)]
    assert rows["长沙市"].value("xzfy") == 100 and rows["株洲市"].value("xzfy") == 50
    jz_column = next(c for c in table.columns if c.code == "jz")
    assert table.is_share(jz_column)
    assert rows["长沙市"].ratio("jz", "xzfy") == Decimal("0.1") and rows["芙蓉区"].ratio("jz", "xzfy") == Decimal("0.1")
    client = _client(app, overseer)
    page = client.get("/oversight/indicators?year=2024&per=xzfy").get_data(as_text=True)
    assert "占比" in page and "10.0%" in page and "5.0%" in page  # 天心区 3/60
    assert 'class="region depth-1"' in page


def test_the_overseer_lands_on_the_list_and_reads_a_region_dashboard_from_it(ov, app):
    client = _client(app, ov.w.oversight)
    assert client.get("/").headers["Location"].endswith("/oversight/")
    page = client.get("/oversight/?year=2024").get_data(as_text=True)
    link = f'/dashboard/?cycle={ov.zy24.cycle.id}'
    assert f'href="{link}"' in page
    assert client.get(link).status_code == 200
    # The sibling city's overseer gets no such read.
    assert _client(app, ov.cd_oversight).get(link).status_code == 404


def test_deadline_words():
    today = date(2025, 3, 30)

    def row(deadline, published=None):
        cycle = ReportCycle(year=2024, region="赫山区", title="2024年法治政府建设年度报告", state="collecting",
                            publish_deadline=deadline)
        r = svc.RegionRow(Region(name="赫山区", code="430903", level="county"), 0, cycle, today)
        if published is not None:
            r.publications.append(svc.PublicationRef(1, 1, published, True))
        return r

    assert row(date(2025, 4, 1)).deadline_text == "还有2天"
    assert row(today).deadline_text == "今天截止" and not row(today).overdue
    assert row(date(2025, 3, 1)).deadline_text == "已逾期29天" and row(date(2025, 3, 1)).overdue
    # Published at 23:30 Beijing time on the deadline: in time; 00:30 the next day: one day late.
    assert row(today, _utc(today, 23) + timedelta(minutes=30)).deadline_text == "按期发布"
    late = row(today, _utc(today + timedelta(days=1), 0) + timedelta(minutes=30))
    assert late.deadline_text == "逾期1天发布" and not late.overdue
    assert row(None).deadline == date(2025, 4, 1)  # the default: 1 April of the following year
