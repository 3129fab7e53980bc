"""The real workflow through the API, person by person with their own tokens: a liaison drafts, saves
(version-checked), submits and recalls; a reviewer returns with a comment and approves; an admin reads
the progress figures; another unit's liaison and another region see none of it (404)."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from fazhi_flow.api import tokens as token_svc
from fazhi_flow.models import Contribution, Indicator, Region, ReportCycle, TransitionLog, Unit
from fazhi_flow.services.contributions import MAX_BODY_CHARS

PROBLEM = "application/problem+json"


class Api:
    """A token's view of the API: ``api.get(path)`` and so on, JSON in and out."""

    def __init__(self, client, text):
        self.client, self.headers = client, {"Authorization": f"Bearer {text}"}

    def __call__(self, method, path, json=None, **kw):
        return self.client.open(f"/api/v1{path}", method=method, json=json, headers=self.headers, **kw)

    def get(self, path, **kw):
        return self("GET", path, **kw)

    def put(self, path, json=None, **kw):
        return self("PUT", path, json, **kw)

    def post(self, path, json=None, **kw):
        return self("POST", path, json, **kw)


def api_for(client, db, user, scope="write") -> Api:
    _, text = token_svc.create_token(user, "接口测试", scope, 30)
    db.session.commit()
    return Api(client, text)


def fresh(db, obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


def assert_problem(answer, status, field=None):
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM
    body = answer.json
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"] == f"/api/v1/docs#problem-{status}"
    # The message is Chinese, and no traceback or exception name leaks.
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["detail"])
    assert "Traceback" not in answer.get_data(as_text=True)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def test_liaison_and_reviewer_do_the_whole_workflow(world, client, db):
    liaison = api_for(client, db, world.liaison)
    reviewer = api_for(client, db, world.reviewer)
    c = world.contribution

    cycles = liaison.get("/cycles").json["items"]
    assert [x["id"] for x in cycles] == [world.cycle.id] and cycles[0]["state"] == "collecting"
    outline = liaison.get(f"/cycles/{world.cycle.id}/outline").json
    assert [s["id"] for s in outline["sections"]] == [world.section.id]
    assert outline["sections"][0]["title"] == "严格规范执法"
    assigned = liaison.get(f"/cycles/{world.cycle.id}/assignments").json["items"]
    assert [(a["unit_id"], a["contribution_id"], a["state"]) for a in assigned] == [(world.unit.id, c.id, "draft")]

    read = liaison.get(f"/contributions/{c.id}").json
    assert read["body"] == c.body and read["version"] == c.version and read["state"] == "draft"
    text = "一是全年办理行政复议案件42件。\n\n二是开展执法培训6次。"
    saved = liaison.put(f"/contributions/{c.id}/draft", {"body": text, "version": read["version"]})
    assert saved.status_code == 200, saved.json
    assert saved.json["body"] == text and saved.json["version"] == read["version"] + 1
    assert fresh(db, c).body == text

    # A save based on the version read before is a conflict: 409, the Chinese message, nothing written.
    stale = liaison.put(f"/contributions/{c.id}/draft", {"body": "覆盖同事的文字", "version": read["version"]})
    body = assert_problem(stale, 409)
    assert "已被" in body["detail"] and "尚未保存" in body["detail"]
    assert fresh(db, c).body == text

    version = saved.json["version"]
    submitted = liaison.post(f"/contributions/{c.id}/submit", {"version": version})
    assert submitted.status_code == 200, submitted.json
    assert submitted.json["state"] == "submitted" and len(submitted.json["revisions"]) == 1
    # The liaison can no longer save it.
    assert_problem(liaison.put(f"/contributions/{c.id}/draft", {"body": "x", "version": submitted.json["version"]}), 409)

    version = submitted.json["version"]
    no_comment = reviewer.post(f"/contributions/{c.id}/return", {"version": version, "comment": "   "})
    assert_problem(no_comment, 422, "comment")
    assert fresh(db, c).state == "submitted"
    returned = reviewer.post(f"/contributions/{c.id}/return",
                             {"version": version, "comment": "请补充复议纠错率。", "paragraph": 1})
    assert returned.status_code == 200, returned.json
    assert returned.json["state"] == "returned"
    assert any(x["comment"] == "请补充复议纠错率。" and x["event"] == "return" for x in returned.json["comments"])

    version = liaison.get(f"/contributions/{c.id}").json["version"]
    again = liaison.put(f"/contributions/{c.id}/draft", {"body": text + "\n\n三是纠错率为3.2%。", "version": version})
    assert again.status_code == 200
    resubmitted = liaison.post(f"/contributions/{c.id}/submit", {"version": again.json["version"]})
    assert resubmitted.json["state"] == "submitted"
    approved = reviewer.post(f"/contributions/{c.id}/approve", {"version": resubmitted.json["version"]})
    assert approved.status_code == 200, approved.json
    assert approved.json["state"] == "approved" and len(approved.json["revisions"]) == 2
    events = list(db.session.scalars(select(TransitionLog.event).where(TransitionLog.contribution_id == c.id)
                                     .order_by(TransitionLog.id)))
    assert events == ["submit", "return", "submit", "approve"]


def test_recall_and_the_version_of_an_event(world, client, db):
    liaison = api_for(client, db, world.liaison)
    c = world.contribution
    version = liaison.get(f"/contributions/{c.id}").json["version"]
    submitted = liaison.post(f"/contributions/{c.id}/submit", {"version": version}).json
    assert_problem(liaison.post(f"/contributions/{c.id}/recall", {"version": version}), 409)
    assert fresh(db, c).state == "submitted"
    recalled = liaison.post(f"/contributions/{c.id}/recall", {"version": submitted["version"]})
    assert recalled.status_code == 200 and recalled.json["state"] == "draft"
    # Recalling twice: the state no longer allows it, 409 with the workflow's own message.
    assert_problem(liaison.post(f"/contributions/{c.id}/recall", {"version": recalled.json["version"]}), 409)


def test_only_the_right_people_act(world, client, db):
    """The same rules as the pages: a liaison cannot approve, a reviewer of the unit itself cannot, an
    admin does not review; the unit's own reviewer sees the material as a member of the unit."""
    c = world.contribution
    liaison = api_for(client, db, world.liaison)
    version = liaison.get(f"/contributions/{c.id}").json["version"]
    version = liaison.post(f"/contributions/{c.id}/submit", {"version": version}).json["version"]
    for user in (world.liaison, world.admin, world.own_unit_reviewer, world.outsider_reviewer):
        api = api_for(client, db, user)
        answer = api.post(f"/contributions/{c.id}/approve", {"version": version})
        if user is world.outsider_reviewer:
            # Not named for the section: the material is not theirs to see at all.
            assert_problem(answer, 404)
        else:
            assert answer.status_code in (403, 409), (user.name, answer.json)
            assert answer.mimetype == PROBLEM
    assert fresh(db, c).state == "submitted"


def test_another_units_liaison_sees_nothing_of_it(world, client, db):
    other = api_for(client, db, world.other_liaison)
    c = world.contribution
    before = (c.body, c.version, c.state)
    for method, path, body in (
        ("GET", f"/contributions/{c.id}", None),
        ("GET", f"/contributions/{c.id}/values", None),
        ("PUT", f"/contributions/{c.id}/draft", {"body": "他单位的文字", "version": c.version}),
        ("PUT", f"/contributions/{c.id}/values", {"values": {}}),
        ("POST", f"/contributions/{c.id}/submit", {"version": c.version}),
        ("POST", f"/contributions/{c.id}/recall", {"version": c.version}),
    ):
        assert_problem(other(method, path, body), 404)
    assert other.get("/contributions").json["items"] == []
    assert other.get(f"/cycles/{world.cycle.id}/assignments").json["items"] == []
    d = fresh(db, c)
    assert (d.body, d.version, d.state) == before


def test_another_regions_cycle_and_material_are_not_found(world, client, db, factory):
    region = Region(code="430902", name="资阳区", level="county")
    db.session.add(region)
    db.session.flush()
    cycle = ReportCycle(year=2024, region_id=region.id, region="资阳区", title="2024年法治政府建设年度报告",
                        state="collecting")
    db.session.add(cycle)
    db.session.flush()
    section = factory.section(cycle, "严格规范执法")
    unit = Unit(region=region, code="gaj", name="资阳公安分局")
    db.session.add(unit)
    foreign = factory.contribution(factory.assignment(section, unit))
    db.session.commit()
    for user in (world.admin, world.reviewer, world.leader, world.liaison):
        api = api_for(client, db, user)
        for path in (f"/cycles/{cycle.id}", f"/cycles/{cycle.id}/outline", f"/cycles/{cycle.id}/assignments",
                     f"/cycles/{cycle.id}/status", f"/contributions/{foreign.id}",
                     f"/contributions/{foreign.id}/values"):
            assert_problem(api.get(path), 404)
        assert cycle.id not in [x["id"] for x in api.get("/cycles").json["items"]]
        assert foreign.id not in [x["id"] for x in api.get("/contributions?per_page=100").json["items"]]


def test_status_figures_match_the_material(world, client, db, factory):
    """The admin's figures equal a count of the material by state; a liaison's are of their unit only."""
    cycle = world.cycle
    states = ["draft", "submitted", "approved", "returned", "approved"]
    for i, state in enumerate(states):
        unit = factory.unit(f"区第{i}局")
        factory.contribution(factory.assignment(factory.section(cycle, f"第{i}节"), unit), state=state)
    db.session.commit()
    expected = Counter(db.session.scalars(select(Contribution.state).where(Contribution.cycle_id == cycle.id)))
    admin = api_for(client, db, world.admin).get(f"/cycles/{cycle.id}/status").json
    assert admin["total"] == sum(expected.values())
    assert {k: v for k, v in admin["counts"].items() if v} == dict(expected)
    assert admin["completion"] == expected["approved"] / sum(expected.values())
    assert admin["restricted_to_unit"] is False and admin["unit_count"] == 6
    mine = api_for(client, db, world.liaison).get(f"/cycles/{cycle.id}/status").json
    assert mine["restricted_to_unit"] is True and mine["total"] == 1
    assert [u["unit_id"] for u in mine["units"]] == [world.unit.id]


def test_list_filters_and_pages(world, client, db, factory):
    cycle = world.cycle
    made = [factory.contribution(factory.assignment(factory.section(cycle, f"第{i}节"), world.unit),
                                 state="approved" if i % 2 else "draft") for i in range(5)]
    db.session.commit()
    api = api_for(client, db, world.liaison)
    everything = api.get(f"/contributions?cycle={cycle.id}&per_page=100").json
    ids = sorted([world.contribution.id] + [c.id for c in made])
    assert [x["id"] for x in everything["items"]] == ids and everything["total"] == 6
    approved = api.get(f"/contributions?state=approved&unit={world.unit.id}").json
    assert [x["id"] for x in approved["items"]] == [c.id for c in made if c.state == "approved"]
    pages = [api.get(f"/contributions?per_page=4&page={n}").json for n in (1, 2, 3)]
    assert [x["id"] for p in pages for x in p["items"]] == ids
    assert pages[2]["items"] == [] and pages[0]["total"] == 6
    # Assignments page in the outline's reading order (a subsection right after its parent).
    child = factory.section(cycle, "（一）子节", parent=world.section, position=99)
    factory.contribution(factory.assignment(child, world.unit))
    db.session.commit()
    outline = [s["id"] for s in api.get(f"/cycles/{cycle.id}/outline").json["sections"]]
    assigned = [api.get(f"/cycles/{cycle.id}/assignments?per_page=3&page={n}").json for n in (1, 2, 3)]
    assert [a["section_id"] for p in assigned for a in p["items"]] == outline and assigned[0]["total"] == 7
    assert_problem(api.get("/contributions?per_page=101"), 422, "per_page")
    assert_problem(api.get("/contributions?state=lost"), 422, "state")
    assert_problem(api.get("/contributions?cycle=99999999999"), 422, "cycle")


def test_indicator_values_read_and_saved_with_field_errors(world, client, db):
    c = world.contribution
    db.session.add_all([
        Indicator(cycle_id=c.cycle_id, section_id=c.section_id, code="xzfy", name="行政复议案件", measure="件",
                  type="integer", required=True, position=1),
        Indicator(cycle_id=c.cycle_id, section_id=c.section_id, code="jcl", name="纠错率", measure="%",
                  type="percent", position=2),
    ])
    db.session.commit()
    liaison = api_for(client, db, world.liaison)
    read = liaison.get(f"/contributions/{c.id}/values").json
    assert [r["code"] for r in read["rows"]] == ["xzfy", "jcl"] and read["editable"] is True
    assert any("行政复议案件" in line for line in read["blocking"])

    bad = liaison.put(f"/contributions/{c.id}/values", {"values": {"xzfy": "四十二", "nosuch": "1"},
                                                        "stamp": read["stamp"]})
    errors = assert_problem(bad, 422, "values.xzfy")["errors"]
    assert "values.nosuch" in [e["field"] for e in errors]
    assert liaison.get(f"/contributions/{c.id}/values").json["rows"][0]["value"] is None

    saved = liaison.put(f"/contributions/{c.id}/values", {"values": {"xzfy": 42, "jcl": "3.2"}, "stamp": read["stamp"]})
    assert saved.status_code == 200, saved.json
    assert {r["code"]: r["value"] for r in saved.json["rows"]} == {"xzfy": "42", "jcl": "3.2"}
    # The stamp read before the save is stale now.
    assert_problem(liaison.put(f"/contributions/{c.id}/values", {"values": {"xzfy": "40"}, "stamp": read["stamp"]}), 409)
    assert liaison.get(f"/contributions/{c.id}/values").json["rows"][0]["value"] == "42"
    # The reviewer of the section reads them, cannot write them.
    reviewer = api_for(client, db, world.reviewer)
    assert reviewer.get(f"/contributions/{c.id}/values").json["editable"] is False
    assert reviewer.put(f"/contributions/{c.id}/values", {"values": {"xzfy": "1"}}).status_code == 403


def test_bad_requests_are_problems_naming_the_field(world, client, db):
    liaison = api_for(client, db, world.liaison)
    c = world.contribution
    path = f"/contributions/{c.id}/draft"
    before = (c.body, c.version)

    assert_problem(liaison.client.put(f"/api/v1{path}", data="body=x", headers={
        **liaison.headers, "Content-Type": "application/x-www-form-urlencoded"}), 415)
    assert_problem(liaison.client.put(f"/api/v1{path}", data="{not json", headers={
        **liaison.headers, "Content-Type": "application/json"}), 400, "body")
    assert_problem(liaison.client.put(f"/api/v1{path}", data='{"body": NaN, "version": 1}', headers={
        **liaison.headers, "Content-Type": "application/json"}), 400)
    assert_problem(liaison.put(path, {"body": "文字", "version": c.version, "owner": 1}), 422, "owner")
    assert_problem(liaison.put(path, {"body": "文字"}), 422, "version")
    assert_problem(liaison.put(path, {"body": "文字", "version": "1"}), 422, "version")
    assert_problem(liaison.put(path, {"body": "文字", "version": 2**31}), 422, "version")
    too_long = assert_problem(liaison.put(path, {"body": "字" * (MAX_BODY_CHARS + 1), "version": c.version}), 422, "body")
    assert str(MAX_BODY_CHARS) in too_long["errors"][0]["message"]
    assert_problem(liaison.put(path, [1, 2]), 422)
    d = fresh(db, c)
    assert (d.body, d.version) == before
    # The longest text allowed is saved whole; control characters (NUL) are dropped, not a 500.
    longest = "法" * (MAX_BODY_CHARS - 1) + "\x00"
    saved = liaison.put(path, {"body": longest, "version": c.version})
    assert saved.status_code == 200 and saved.json["body"] == "法" * (MAX_BODY_CHARS - 1)

    assert_problem(liaison.get("/contributions/99999999999"), 404)
    assert_problem(liaison.get("/contributions/0"), 404)
    assert_problem(liaison.get("/no/such/thing"), 404)
    gone = assert_problem(liaison("DELETE", f"/contributions/{c.id}"), 405)
    assert "GET" in liaison("DELETE", f"/contributions/{c.id}").headers["Allow"]
    assert gone["instance"] == f"/api/v1/contributions/{c.id}"
    # OPTIONS names exactly what a path takes, as the 405 does.
    assert liaison("OPTIONS", "/cycles").headers["Allow"] == "GET, HEAD, OPTIONS"
    assert set(liaison("OPTIONS", path).headers["Allow"].split(", ")) == {"PUT", "OPTIONS"}
    assert_problem(liaison("OPTIONS", "/no/such/thing"), 404)


def test_an_unexpected_error_is_a_500_problem_without_trace(world, client, db, monkeypatch, caplog):
    from fazhi_flow.api import cycles

    def broken(cycle):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(cycles, "load_outline", broken)
    api = api_for(client, db, world.liaison)
    answer = api.get(f"/cycles/{world.cycle.id}/outline")
    body = assert_problem(answer, 500)
    assert "internal detail" not in answer.get_data(as_text=True)
    assert "没有保存任何改动" in body["detail"]
    assert any("internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_an_oversized_body_is_a_413_problem(world, client, db, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 4096)
    liaison = api_for(client, db, world.liaison)
    c = world.contribution
    answer = liaison.put(f"/contributions/{c.id}/draft", {"body": "字" * 3000, "version": c.version})
    assert_problem(answer, 413)
    assert fresh(db, c).body == "本单位今年开展了依法行政培训3次。"


def test_unit_head_approves_or_returns_before_the_office(factory, client, db):
    w = factory.world(unit_head_review=True)
    db.session.commit()
    liaison, head = api_for(client, db, w.liaison), api_for(client, db, w.unit_head)
    c = w.contribution
    version = liaison.post(f"/contributions/{c.id}/submit", {"version": c.version}).json["version"]
    assert fresh(db, c).state == "unit_review"
    # The office's reviewer cannot decide in the unit's place.
    assert api_for(client, db, w.reviewer).post(f"/contributions/{c.id}/approve", {"version": version}).status_code \
        in (403, 409)
    returned = head.post(f"/contributions/{c.id}/unit-return", {"version": version, "comment": "请补充数据来源。"})
    assert returned.status_code == 200 and returned.json["state"] == "returned"
    version = liaison.post(f"/contributions/{c.id}/submit", {"version": returned.json["version"]}).json["version"]
    approved = head.post(f"/contributions/{c.id}/unit-approve", {"version": version})
    assert approved.status_code == 200 and approved.json["state"] == "submitted"
    events = [x["event"] for x in approved.json["comments"]]
    assert events == ["submit", "unit_return", "submit", "unit_approve"]


def test_the_token_page_needs_a_login_and_the_header_links_it(world, client, as_user):
    assert client.get("/account/tokens/").status_code == 302
    as_user(world.liaison)
    assert 'href="/account/tokens/"' in client.get("/account/tokens/").get_data(as_text=True)
