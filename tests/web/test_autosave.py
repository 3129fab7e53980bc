"""Autosave (自动保存) of the editor: the endpoint the editor's script posts to while the liaison types.

It saves the draft version-checked, answers JSON, never adds a revision and writes at most one audit
row per editing session; everything it refuses leaves the stored text as it was.
"""
from __future__ import annotations

import importlib.util
import re
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import AuditEvent, Contribution, ReportCycle, Revision
from fazhi_flow.services import contributions as svc
from fazhi_flow.testing import count_queries
from fazhi_flow.timeutil import to_local

from .test_keep_text import _login, _token



def _regions_fixtures():
    """tests/regions/conftest.py, whose ``two_regions`` these tests use too (its directory is not a
    package these modules can import from under --import-mode=importlib)."""
    path = Path(__file__).resolve().parents[1] / "regions" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_autosave_regions_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Two counties, each with a unit "gaj" and a liaison of it.
two_regions = _regions_fixtures().two_regions

# A paragraph citing a figure as liaisons write them; the longest text the editor allows is built of it.
CITING = "全年办理行政复议案件{{xzfy_cases}}件，纠错率{{xzfy_fix_rate}}%。"


def _longest() -> str:
    text = (CITING + "\n") * (svc.MAX_BODY_CHARS // (len(CITING) + 1) + 1)
    return text[:svc.MAX_BODY_CHARS - 1] + "。"


def _stored(db, cid) -> Contribution:
    db.session.expire_all()
    return db.session.get(Contribution, cid)


def _count(db, model, **where) -> int:
    stmt = select(func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    value = db.session.scalar(stmt)
    db.session.commit()
    return value


def _audit_rows(db, cid) -> int:
    return _count(db, AuditEvent, target=f"contribution:{cid}", action="contribution.save")


def _autosave(client, cid, body, version):
    return client.post(f"/tasks/{cid}/autosave", data={"body": body, "version": version})


def test_autosave_saves_the_text_and_answers_the_new_version(as_user, world, db):
    cid, version = world.contribution.id, world.contribution.version
    client = as_user(world.liaison)
    text = _longest()
    assert len(text) == svc.MAX_BODY_CHARS and "{{xzfy_cases}}" in text

    r = _autosave(client, cid, text.replace("\n", "\r\n"), version)

    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    stored = _stored(db, cid)
    assert stored.body == text and stored.version == version + 1 == answer["version"]
    assert stored.updated_by_id == world.liaison.id
    local = to_local(stored.updated_at)
    assert answer["message"] == f"已自动保存 {local:%H:%M}"
    # Server time in the configured zone (Beijing time here), not the browser's and not UTC.
    assert datetime.fromisoformat(answer["saved_at"]).utcoffset() == timedelta(hours=8)
    assert datetime.fromisoformat(answer["saved_at"]) == local.replace(microsecond=0)
    db.session.commit()

    # Typing goes on: the next autosave carries the version just answered.
    r = _autosave(client, cid, CITING + "\n第二段", answer["version"])
    assert r.status_code == 200 and r.get_json()["version"] == version + 2
    assert _stored(db, cid).body == CITING + "\n第二段"


def test_autosaves_add_no_revision_and_one_audit_row_per_session(as_user, world, db):
    cid, version = world.contribution.id, world.contribution.version
    client = as_user(world.liaison)
    for n in range(1, 6):
        r = _autosave(client, cid, f"{CITING}\n第{n}次自动保存", version)
        assert r.status_code == 200
        version = r.get_json()["version"]
    assert _count(db, Revision, contribution_id=cid) == 0
    assert _audit_rows(db, cid) == 1
    row = db.session.scalars(select(AuditEvent).where(AuditEvent.target == f"contribution:{cid}")).one()
    assert row.actor_id == world.liaison.id and row.detail["via"] == "自动保存"
    db.session.commit()

    # The same text again writes nothing at all: no new version.
    r = _autosave(client, cid, f"{CITING}\n第5次自动保存", version)
    assert r.status_code == 200 and r.get_json()["version"] == version == _stored(db, cid).version
    db.session.commit()

    # After a pause longer than a session the next autosave is audited once more.
    stored = _stored(db, cid)
    stored.updated_at = stored.updated_at - svc.AUTOSAVE_SESSION - timedelta(minutes=1)
    db.session.commit()
    version = _stored(db, cid).version
    db.session.commit()
    for n in range(2):
        r = _autosave(client, cid, f"第二次打开页面后写的第{n}段", version)
        assert r.status_code == 200
        version = r.get_json()["version"]
    assert _audit_rows(db, cid) == 2
    assert _count(db, Revision, contribution_id=cid) == 0

    # Submitting still takes exactly one revision, of the autosaved text.
    r = client.post(f"/tasks/{cid}/submit", data={"version": version})
    assert r.status_code == 302
    revision = db.session.scalars(select(Revision).where(Revision.contribution_id == cid)).one()
    assert revision.body == "第二次打开页面后写的第1段"
    db.session.commit()


def test_a_colleagues_save_in_between_is_a_conflict_and_keeps_the_stored_text(as_user, world, factory, db):
    colleague = factory.user("liaison", unit=world.unit, name="同事小王")
    db.session.commit()
    cid, loaded = world.contribution.id, world.contribution.version
    svc.save_draft(world.contribution, colleague, "同事先保存的内容{{xzfy_cases}}", expected_version=loaded)
    db.session.commit()
    client = as_user(world.liaison)

    r = _autosave(client, cid, "我自己写的长段落", loaded)

    assert r.status_code == 409
    answer = r.get_json()
    assert answer["kind"] == "conflict"
    assert "同事小王" in answer["message"] and "您的内容尚未保存" in answer["message"]
    stored = _stored(db, cid)
    assert stored.body == "同事先保存的内容{{xzfy_cases}}" and stored.version == loaded + 1
    db.session.commit()
    # The same message the editor shows for 保存草稿 with that version.
    page = client.post(f"/tasks/{cid}", data={"body": "我自己写的长段落", "version": loaded, "action": "save"})
    assert page.status_code == 409 and answer["message"] in page.get_data(as_text=True)
    assert _stored(db, cid).body == "同事先保存的内容{{xzfy_cases}}"
    db.session.commit()
    # That page holds the colleague's version: only a deliberate 保存草稿 replaces it, never an autosave.
    assert "data-autosave-url" not in page.get_data(as_text=True)
    assert "合并完成前不会自动保存" in page.get_data(as_text=True)
    # It carries the stored version, so that 保存草稿 there replaces the colleague's text as it says.
    assert re.search(rf'<input[^>]*name="version"[^>]*value="{loaded + 1}"', page.get_data(as_text=True))
    again = client.post(f"/tasks/{cid}", data={"body": "合并后的内容", "version": loaded + 1, "action": "save"})
    assert again.status_code == 302 and _stored(db, cid).body == "合并后的内容"
    db.session.commit()


def test_only_the_units_liaison_reaches_the_draft(as_user, world, db):
    cid, version, before = world.contribution.id, world.contribution.version, world.contribution.body
    db.session.commit()
    for user in (world.other_liaison, world.reviewer, world.unit_head, world.admin, world.own_unit_reviewer):
        r = _autosave(as_user(user), cid, "不该写进去的内容", version)
        assert r.status_code == 404, user.name
        assert r.get_json()["message"] == "这份材料不存在，或不由您填写。"
    r = _autosave(as_user(world.liaison), 2_000_000_000, "没有这份材料", 1)
    assert r.status_code == 404
    stored = _stored(db, cid)
    assert stored.body == before and stored.version == version
    db.session.commit()
    assert _audit_rows(db, cid) == 0


def _county_material(factory, db, county, printed):
    cycle = ReportCycle(owner=county.region, year=2025, region=printed, title="2025年法治政府建设年度报告",
                        due=date(2026, 1, 10), state="collecting")
    db.session.add(cycle)
    section = factory.section(cycle, title="推进依法行政")
    contribution = factory.contribution(factory.assignment(section, county.gaj), body=f"{printed}：{CITING}")
    db.session.commit()
    return contribution


def test_another_regions_same_coded_unit_gets_404(two_regions, factory, db, as_user):
    zy = _county_material(factory, db, two_regions.zy, "益阳市资阳区")
    hs = _county_material(factory, db, two_regions.hs, "益阳市赫山区")
    zy_id, zy_version, zy_body = zy.id, zy.version, zy.body
    hs_id, hs_version = hs.id, hs.version
    db.session.commit()

    # 赫山区's liaison of "gaj" with 资阳区's "gaj" material: as if it did not exist.
    client = as_user(two_regions.hs.liaison)
    r = _autosave(client, zy_id, "赫山区写进资阳区的内容", zy_version)
    assert r.status_code == 404 and "不存在" in r.get_json()["message"]
    stored = _stored(db, zy_id)
    assert stored.body == zy_body and stored.version == zy_version
    db.session.commit()
    # Her own region's material of the same unit code saves.
    r = _autosave(client, hs_id, "赫山区自己的内容", hs_version)
    assert r.status_code == 200 and _stored(db, hs_id).body == "赫山区自己的内容"
    db.session.commit()
    # And the reverse way round.
    r = _autosave(as_user(two_regions.zy.liaison), hs_id, "资阳区写进赫山区的内容", hs_version + 1)
    assert r.status_code == 404 and _stored(db, hs_id).body == "赫山区自己的内容"
    db.session.commit()


def test_a_draft_no_longer_editable_is_refused_with_the_state(as_user, world, db):
    cid = world.contribution.id
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{cid}/submit", data={"version": world.contribution.version})
    assert r.status_code == 302
    stored = _stored(db, cid)
    version, body = stored.version, stored.body
    db.session.commit()

    r = _autosave(client, cid, "提交之后又打的字", version)

    assert r.status_code == 409
    assert r.get_json() == {"message": "材料当前为“待审核”，不能编辑。如需修改，请先撤回。", "kind": "state"}
    stored = _stored(db, cid)
    assert stored.body == body and stored.version == version and stored.state == "submitted"
    db.session.commit()


def test_a_cycle_no_longer_collecting_is_refused(as_user, factory, db):
    w = factory.world(state="compiling")
    db.session.commit()
    cid, version, body = w.contribution.id, w.contribution.version, w.contribution.body
    r = _autosave(as_user(w.liaison), cid, "汇总以后打的字", version)
    assert r.status_code == 409 and r.get_json()["kind"] == "state"
    assert "材料只能在征集中修改" in r.get_json()["message"]
    assert _stored(db, cid).body == body
    db.session.commit()


def test_over_long_text_is_refused_with_the_editors_message(as_user, world, db):
    cid, version, before = world.contribution.id, world.contribution.version, world.contribution.body
    client = as_user(world.liaison)
    too_long = _longest() + "多"

    r = _autosave(client, cid, too_long, version)

    assert r.status_code == 400
    message = f"正文过长（{svc.MAX_BODY_CHARS + 1}字），最多{svc.MAX_BODY_CHARS}字。"
    assert r.get_json() == {"message": message, "kind": "invalid"}
    # The very message the editor's 保存草稿 gives.
    page = client.post(f"/tasks/{cid}", data={"body": too_long, "version": version, "action": "save"})
    assert message in page.get_data(as_text=True)
    stored = _stored(db, cid)
    assert stored.body == before and stored.version == version
    db.session.commit()


def test_missing_or_malformed_fields_are_refused_in_chinese(as_user, world, db):
    cid, version, before = world.contribution.id, world.contribution.version, world.contribution.body
    client = as_user(world.liaison)
    for data, message in (({"body": "没有版本"}, "页面缺少版本信息"), ({"body": "版本不是数", "version": "１２"}, "页面缺少版本信息"),
                          ({"version": str(version)}, "没有收到正文"), ({"body": "版本太大", "version": "9" * 40}, "")):
        r = client.post(f"/tasks/{cid}/autosave", data=data)
        assert r.status_code in (400, 409), data
        assert r.is_json and message in r.get_json()["message"] and r.get_json()["message"], data
    assert _stored(db, cid).body == before
    db.session.commit()
    assert client.get(f"/tasks/{cid}/autosave").status_code == 405


def test_logged_out_and_expired_page_answer_json_and_change_nothing(csrf_app, world, db):
    username, cid, version, before = (world.liaison.username, world.contribution.id,
                                      world.contribution.version, world.contribution.body)
    db.session.commit()
    client = csrf_app.test_client()
    r = client.post(f"/tasks/{cid}/autosave", data={"body": "登录过期时打的字", "version": version,
                                                    "csrf_token": "old"})
    assert r.status_code in (400, 401) and "本机浏览器" in r.get_json()["message"]

    _login(client, username)
    r = client.post(f"/tasks/{cid}/autosave", data={"body": "页面过期时打的字", "version": version,
                                                    "csrf_token": "expired-token"})
    assert r.status_code == 400 and r.get_json()["kind"] == "expired"
    assert "本机浏览器" in r.get_json()["message"]
    assert _stored(db, cid).body == before
    db.session.commit()

    # With the editor page's token it saves.
    token = _token(client.get(f"/tasks/{cid}").get_data(as_text=True))
    r = client.post(f"/tasks/{cid}/autosave", data={"body": "带着令牌保存", "version": version, "csrf_token": token})
    assert r.status_code == 200
    assert _stored(db, cid).body == "带着令牌保存"
    db.session.commit()


def test_the_editor_page_carries_the_autosave_address(as_user, world, db):
    page = as_user(world.liaison).get(f"/tasks/{world.contribution.id}").get_data(as_text=True)
    assert f'data-autosave-url="/tasks/{world.contribution.id}/autosave"' in page
    assert 'id="autosave-status"' in page and 'id="autosave-alert"' in page


def _queries(app, client, url, data) -> int:
    with count_queries(_db.engine) as statements:
        r = client.post(url, data=data)
    assert r.status_code in (200, 302), r.get_data(as_text=True)[:300]
    return len(statements)


def test_one_autosave_takes_a_constant_number_of_queries_no_more_than_a_save(app, as_user, factory, db):
    w = factory.world()
    db.session.commit()
    client = as_user(w.liaison)
    cid = w.contribution.id

    def autosave(text):
        return _queries(app, client, f"/tasks/{cid}/autosave",
                        {"body": text, "version": _stored(db, cid).version})

    first = autosave("第一次")          # starts the session (audit row)
    db.session.commit()
    small = autosave("第二次")
    db.session.commit()
    # More of everything around the draft: revisions, other units on the section, a long text.
    c = _stored(db, cid)
    for n in range(1, 6):
        db.session.add(Revision(contribution_id=cid, number=n, body=f"第{n}版", created_at=datetime(2025, 1, n)))
        other = factory.unit(f"配合单位{n}")
        factory.contribution(factory.assignment(c.section, other, role="support"))
    db.session.commit()
    large = autosave(_longest())
    db.session.commit()
    assert small == large
    assert first == small + 1  # the session's one audit row, then nothing more per autosave

    saved = _queries(app, client, f"/tasks/{cid}",
                     {"body": "普通保存", "version": _stored(db, cid).version, "action": "save"})
    db.session.commit()
    assert first <= saved and large <= saved


def test_a_refused_save_from_a_stale_page_never_lets_autosave_replace_a_colleagues_draft(as_user, world, factory, db):
    """保存草稿 refused for another reason (too long) from a page loaded before a colleague saved: the page
    keeps the version its text is based on, so the next autosave meets the conflict instead of silently
    replacing the colleague's text. A page whose version is missing is shown without autosave."""
    colleague = factory.user("liaison", unit=world.unit, name="同事小王")
    db.session.commit()
    cid, loaded = world.contribution.id, world.contribution.version
    client = as_user(world.liaison)
    svc.save_draft(world.contribution, colleague, "同事先保存的内容", expected_version=loaded)
    db.session.commit()
    page = client.post(f"/tasks/{cid}", data={"body": _longest() + "多", "version": loaded, "action": "save"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "正文过长" in html
    shown = int(re.search(r'<input[^>]*name="version"[^>]*value="(\d+)"', html).group(1))
    assert shown == loaded
    answer = _autosave(client, cid, "我自己的文字", shown)
    assert answer.status_code == 409 and "同事小王" in answer.get_json()["message"]
    assert _stored(db, cid).body == "同事先保存的内容"

    page = client.post(f"/tasks/{cid}", data={"body": "我自己的文字", "action": "save"})
    assert page.status_code == 400 and "data-autosave-url" not in page.get_data(as_text=True)
    assert _stored(db, cid).body == "同事先保存的内容"


def test_a_draft_save_reads_the_draft_once_under_its_lock(app, as_user, factory, db, is_postgres):
    """Draft save at city scale (issue 11): the login's user with its roles in one query, ONE read of
    the draft with its cycle (locked: FOR UPDATE on PostgreSQL), one audit row and one conditional
    UPDATE — no second read of the row before the check."""
    w = factory.world()
    db.session.commit()
    client = as_user(w.liaison)
    cid = w.contribution.id
    for url, data in ((f"/tasks/{cid}", {"body": "第一次保存", "action": "save"}),
                      (f"/tasks/{cid}/autosave", {"body": "自动保存的内容"})):
        data["version"] = _stored(db, cid).version
        db.session.close()  # the request starts with an empty session, as in a web worker
        with count_queries(_db.engine) as statements:
            response = client.post(url, data=data)
        assert response.status_code in (200, 302), response.get_data(as_text=True)[:300]
        sql = [str(s) for s in statements if not str(s).startswith("BEGIN")]
        reads = [s for s in sql if s.lstrip().startswith("SELECT") and "FROM contribution" in s]
        assert len(reads) == 1, sql
        assert "report_cycle" in reads[0]  # the cycle in the same query
        assert ("FOR UPDATE OF contribution" in reads[0]) == is_postgres, reads[0]
        assert sum(s.lstrip().startswith("UPDATE contribution") for s in sql) == 1
        assert "contribution.version" in next(s for s in sql if s.lstrip().startswith("UPDATE contribution"))
        assert not any("FROM user_role" in s for s in sql), sql  # joined to the user's query
        assert len(sql) <= 4, sql
        db.session.commit()
        assert _stored(db, cid).body == data["body"]


def test_a_row_read_with_its_cycle_joined_can_be_locked_again(factory, db):
    """lock_row after get_locked (cycle joined): FOR UPDATE OF the contribution only — PostgreSQL refuses
    to lock the nullable side of an outer join (a submit after such a read was a 500)."""
    from sqlalchemy.orm import joinedload

    from fazhi_flow.database import get_locked, lock_row

    w = factory.world()
    db.session.commit()
    cid, cycle_id = w.contribution.id, w.contribution.cycle_id
    db.session.close()  # loaded afresh, with the joined option, as in a request
    c = get_locked(Contribution, cid, [joinedload(Contribution.cycle)])
    lock_row(c)
    lock_row(c, columns_only=True)
    assert c.cycle.id == cycle_id
    db.session.rollback()
