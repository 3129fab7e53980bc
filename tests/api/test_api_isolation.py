"""Isolation of the REST API: the cross-unit and cross-region matrix of the web, over every operation of
/api/v1/openapi.json (the document is walked, so a new operation is covered without touching this file,
and a parameter this test cannot fill fails it).

Each role's token of one county (and the city's admin and the system administrator; no token and a
revoked token, which get 401 everywhere) calls every operation with the other county's ids in the path,
the query and the body. Expected: 404 problem+json,
or exactly the answer the same request gets with missing ids (a refusal that never loads the object,
such as a read-only token's 403 on a write); never a 500; no response shows the other county's names;
and afterwards every row of the other county is as before. The same inside one county: a unit's liaison
with another unit's material. Finally a county's own objects in the path with the other county's ids
in the body and query: nothing of the other county changes or shows.
"""
from __future__ import annotations

import html
import io
import json
import re
import zipfile
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update
from werkzeug.test import Client

from fazhi_flow.models import Attachment, Contribution, ReportCycle, Revision
from tests.regions.isolation_world import A_MARK, B_LOGIN, B_MARK, _user, region_rows, row_changes

from .api_world import build_api_world, make_token, per_request_context, revoked_token

PREFIX = "/api/v1"
# A missing id of every kind (inside int32, so it is a valid id that names nothing).
MISSING = 2_000_000_000
METHODS = ("get", "put", "post", "patch", "delete")
# Integer query parameters that name no object.
PAGING = {"page", "per_page", "limit", "offset", "size", "page_size", "year"}
# The words a path uses for the kinds of object an id names.
PLURALS = {"cycles": "cycle", "contributions": "contribution", "publications": "publication",
           "sections": "section", "assignments": "assignment", "units": "unit", "indicators": "indicator",
           "revisions": "revision", "attachments": "attachment", "users": "user", "regions": "region",
           "tokens": "token", "versions": "version"}
# Another unit's material (A's 司法局 and the township's): a mark only their contributions carry.
UNIT_MARK = "司法局专有材料"
MAX_CONTEXTS = 16  # every contribution of a county (13) is named once


# ---------------------------------------------------------------- the document


def _resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc) -> list[dict]:
    """Every operation: {"method", "path", "params": [parameter objects], "body": schema or None}."""
    out = []
    for path, item in doc["paths"].items():
        shared = [_resolve(doc, p) for p in item.get("parameters", [])]
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            params = {(p["in"], p["name"]): p for p in shared}
            params.update({(p["in"], p["name"]): p for p in (_resolve(doc, x) for x in op.get("parameters", []))})
            body = None
            content = (_resolve(doc, op.get("requestBody", {})) or {}).get("content", {})
            for media, spec in content.items():
                if "json" in media:
                    body = _resolve(doc, spec.get("schema", {}))
            out.append({"method": method.upper(), "path": path, "params": list(params.values()), "body": body})
    return out


def _kind_of_name(name: str) -> str | None:
    """The kind of object a parameter or field named ``name`` holds the id of (None: not an id)."""
    for suffix in ("_ids", "_id"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name if name in PLURALS.values() else None


def _path_kind(path: str, name: str) -> str | None:
    if name == "id":
        before = path.split("{" + name + "}")[0].rstrip("/").rsplit("/", 1)[-1]
        return PLURALS.get(before, before.rstrip("s"))
    return _kind_of_name(name)


# ---------------------------------------------------------------- filling an operation


class Filler:
    """Builds the requests of one operation. ``ids`` (a county's or a unit's ids by kind, one context per
    index) are what the walk aims at: a probe replaces each of them by a missing id. ``fixed`` ids (the
    walker's own objects, for kinds not aimed at) stay as they are in the probe."""

    def __init__(self, doc, ids: dict[str, list[int]], versions: dict[int, int], unmapped: set, fixed=None):
        self.doc, self.ids, self.versions, self.unmapped = doc, ids, versions, unmapped
        self.fixed = fixed or {}

    def _id(self, kind, index, missing, used):
        if self.ids.get(kind):
            values = self.ids[kind]
            value = MISSING if missing else values[index % len(values)]
            used.add(value)
            return value
        if self.fixed.get(kind):
            return self.fixed[kind][index % len(self.fixed[kind])]
        return None

    def contexts(self, op) -> int:
        """How many requests the operation gets: enough for every id of its most numerous kind, and for
        every value of an enumerated path parameter (each file format)."""
        return min(MAX_CONTEXTS, max(self._sizes(op, lambda kind: self.ids.get(kind) or self.fixed.get(kind))))

    def _sizes(self, op, values_of) -> list[int]:
        sizes = [1]
        for param in op["params"]:
            if param["in"] != "path":
                continue
            schema = _resolve(self.doc, param.get("schema", {}))
            kind = _path_kind(op["path"], param["name"])
            sizes.append(len(schema["enum"]) if "enum" in schema else len((values_of(kind) if kind else None) or []))
        return sizes

    def request(self, op, index: int, missing: bool = False):
        """(url, query, body, aimed ids used) for context ``index``; None when a parameter cannot be filled."""
        url, query, used = op["path"], {}, set()
        for param in op["params"]:
            name, where, schema = param["name"], param["in"], _resolve(self.doc, param.get("schema", {}))
            if where == "path":
                value = self._path_value(op, name, schema, index, missing, used)
                if value is None:
                    self.unmapped.add(f"{op['method']} {op['path']} path {name}")
                    return None
                url = url.replace("{" + name + "}", str(value))
            elif where == "query":
                kind = _kind_of_name(name)
                value = self._id(kind, index, missing, used) if kind else None
                if value is not None:
                    query[name] = value
                elif _is_integer(schema) and name not in PAGING:
                    self.unmapped.add(f"{op['method']} {op['path']} query {name}")
                    return None
        body = None
        if op["body"] is not None:
            contribution = self._path_id(op, "contribution", index)
            body = self.fill(op["body"], "body", index, missing, used, contribution)
        return url, query, body, used

    def _path_value(self, op, name, schema, index, missing, used):
        if "enum" in schema:
            return schema["enum"][index % len(schema["enum"])]
        kind = _path_kind(op["path"], name)
        return self._id(kind, index, missing, used) if kind else None

    def _path_id(self, op, kind, index):
        for param in op["params"]:
            if param["in"] == "path" and _path_kind(op["path"], param["name"]) == kind:
                return self._path_value(op, param["name"], {}, index, False, set())
        return None

    def fill(self, schema, name, index, missing, used, contribution):  # noqa: C901 - one branch per JSON type
        schema = _resolve(self.doc, schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in (_resolve(self.doc, o) for o in schema[key]) if s.get("type") != "null"]
                return self.fill(options[0] if options else {}, name, index, missing, used, contribution)
        if "allOf" in schema:
            return self.fill(schema["allOf"][0], name, index, missing, used, contribution)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        kind = "contribution" if name == "ids" else _kind_of_name(name)
        type_ = schema.get("type")
        type_ = next((t for t in type_ if t != "null"), None) if isinstance(type_, list) else type_
        if type_ == "object" or "properties" in schema:
            out = {key: self.fill(sub, key, index, missing, used, contribution)
                   for key, sub in schema.get("properties", {}).items()}
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and not schema.get("properties"):
                out = {"cases_1": self.fill(extra, "cases_1", index, missing, used, contribution)}
            return out
        if type_ == "array":
            return [self.fill(schema.get("items", {}), name, index, missing, used, contribution)]
        if type_ in ("integer", "string") and kind and (self.ids.get(kind) or self.fixed.get(kind)):
            value = self._id(kind, index, missing, used)
            return value if type_ == "integer" else str(value)
        if type_ == "integer":
            if name == "version":
                return self.versions.get(contribution, 1)
            return max(1, schema.get("minimum", 1))
        if type_ == "number":
            return 1
        if type_ == "boolean":
            return True
        if type_ == "string":
            if schema.get("format") == "date":
                return (date.today() + timedelta(days=30)).isoformat()
            if schema.get("format") == "date-time":
                return (date.today() + timedelta(days=30)).isoformat() + "T09:00:00Z"
            text = "核对接口隔离：本单位依法行政情况说明。"
            text = text * (1 + schema.get("minLength", 0) // len(text))
            return text[: schema.get("maxLength", len(text))]
        return None


def _is_integer(schema) -> bool:
    type_ = schema.get("type")
    options = schema.get("anyOf", []) + schema.get("oneOf", [])
    return type_ == "integer" or (isinstance(type_, list) and "integer" in type_) or any(map(_is_integer, options))


# ---------------------------------------------------------------- calls and verdicts


class Caller:
    """A client with one token (``None``: no Authorization header); ``only`` is the one status it may
    ever get (401 for no token or a revoked one), None when any refusal is judged by ``verdict``."""

    def __init__(self, app, label, token, only=None):
        self.label, self.token, self.only = label, token, only
        self.client = Client(per_request_context(app), response_wrapper=app.response_class)
        self.sent = 0

    def send(self, method, url, query, body):
        self.sent += 1
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            url = url if url.startswith(PREFIX + "/") else PREFIX + url
            response = self.client.open(url, method=method, query_string=query or None, headers=headers,
                                        **({"json": body} if body is not None else {}))
            response.get_data()
            response.close()
            return response, None
        except Exception as exc:  # noqa: BLE001 - an exception through the app is a server error
            return None, f"{type(exc).__name__}: {str(exc)[:120]}"


def _normalised(response, ids):
    """The JSON answer with every id-valued field that names one of ``ids`` replaced by a placeholder
    (a list filtered by an id may echo it)."""
    def walk(value, key=""):
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, int) and value in ids and (key == "id" or _kind_of_name(key)):
            return "<id>"
        return value

    try:
        return walk(json.loads(response.get_data()))
    except ValueError:
        return response.get_data()


def verdict(caller, filler, op, index, response, problem, used) -> str | None:
    """None when the other side's ids were refused as a missing id is; else what went wrong."""
    if problem:
        return problem
    status = response.status_code
    if status >= 500:
        return f"{status}"
    if status == 404:
        if response.mimetype != "application/problem+json":
            return f"404 as {response.mimetype}"
        return None
    url, query, body, missing_used = filler.request(op, index, missing=True)
    probe, problem = caller.send(op["method"], url, query, body)
    if problem or probe.status_code != status:
        return f"{status} (missing ids: {problem or probe.status_code})"
    if status < 400 and _normalised(response, used) != _normalised(probe, missing_used):
        return f"{status}, another answer than for missing ids"
    return None


def texts(response) -> list[str]:
    """What an answer shows: a JSON body (also with its \\uXXXX escapes read), a text or HTML file, the
    parts of a DOCX (a zip)."""
    data = response.get_data()
    parts = [data]
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                parts += [archive.read(name) for name in archive.namelist()]
        except zipfile.BadZipFile:
            pass
    out = [html.unescape(part.decode("utf-8", "replace")) for part in parts]
    try:
        out.append(json.dumps(json.loads(data), ensure_ascii=False))
    except ValueError:
        pass
    return out


def leak(response, marks) -> str | None:
    for text in texts(response):
        for mark in marks:
            if mark in text:
                return f"shows “{mark}”"
    return None


def _table(problems) -> str:
    grouped: dict[tuple, list[str]] = {}
    for route, method, who, answer in problems:
        people = grouped.setdefault((route, method, answer), [])
        if who not in people:
            people.append(who)
    lines = [f"{len(problems)} wrong answers", "| operation | answer | who |", "|---|---|---|"]
    lines += [f"| {method} {route} | {answer} | {'、'.join(who)} |" for (route, method, answer), who in grouped.items()]
    return "\n".join(lines)


def walk(app, doc, callers, filler, marks, problems, check_refusal=True) -> int:
    """Every operation, each caller, each context; GETs first (a write may move material on)."""
    ops = sorted(operations(doc), key=lambda o: (o["method"] != "GET", o["path"]))
    for caller in callers:
        for op in ops:
            for index in range(filler.contexts(op)):
                built = filler.request(op, index)
                if built is None:
                    break
                url, query, body, used = built
                response, problem = caller.send(op["method"], url, query, body)
                wrong = problem or ("500" if response.status_code >= 500 else None)
                if not wrong and caller.only and (response.status_code, response.mimetype) != (
                        caller.only, "application/problem+json"):
                    wrong = f"{response.status_code} {response.mimetype} (expected {caller.only} problem)"
                if not wrong and check_refusal and used:
                    wrong = verdict(caller, filler, op, index, response, problem, used)
                wrong = wrong or leak(response, marks)
                if wrong:
                    problems.append((op["path"], op["method"], caller.label, wrong))
    return sum(c.sent for c in callers)


def _versions(db) -> dict[int, int]:
    out = dict(db.session.execute(select(Contribution.id, Contribution.version)).all())
    db.session.commit()
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture()
def api_iso(app, db):
    world = build_api_world(db)
    # Another unit's material carries its own mark: a liaison of 公安分局 must never see it.
    others = list(db.session.scalars(select(Contribution.id).where(
        Contribution.unit_id.in_([world.a.sfj.id, world.a.long_unit.id]))))
    for table, key in ((Contribution, Contribution.id), (Revision, Revision.contribution_id)):
        db.session.execute(update(table).where(key.in_(others)).values(body=f"{UNIT_MARK}：本单位开展执法监督检查。"))
    db.session.commit()
    world.a.other_unit_contributions = others
    for county in (world.a, world.b):
        county.revoked_token = revoked_token(db, county.people.admin)
    return world


@pytest.fixture()
def doc(app, api_iso):
    caller = Caller(app, "文档", api_iso.a.tokens["管理员"])
    response, problem = caller.send("GET", "/openapi.json", {}, None)
    assert problem is None and response.status_code == 200, problem or response.status_code
    document = response.get_json()
    assert operations(document), "the document names no operation"
    return document


def _callers(app, world, county, short):
    """Every role's token of ``county``, the city's admin and system administrator, no token at all,
    and a revoked token of the county's admin."""
    return [Caller(app, short + label, token) for label, token in county.tokens.items()] + [
        Caller(app, label, token) for label, token in world.city_tokens.items()] + [
        Caller(app, "无令牌", None, only=401), Caller(app, short + "已撤销令牌", county.revoked_token, only=401)]


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("direction", ["赫山区→资阳区", "资阳区→赫山区"])
def test_every_operation_refuses_the_other_countys_ids(app, db, api_iso, doc, capsys, direction):
    attacker, target, short = ((api_iso.a, api_iso.b, "A") if direction.startswith("赫山")
                               else (api_iso.b, api_iso.a, "B"))
    marks = (target.mark, target.login + "_")
    before = region_rows(db, target.region.id)
    unmapped, problems = set(), []
    filler = Filler(doc, target.ids, _versions(db), unmapped)
    callers = _callers(app, api_iso, attacker, short)
    sent = walk(app, doc, callers, filler, marks, problems)
    changes = row_changes(before, region_rows(db, target.region.id))
    with capsys.disabled():
        print(f"\nAPI isolation {direction}: {len(operations(doc))} operations × {len(callers)} callers, "
              f"{sent} requests\n" + _table(problems)
              + ("\nthe target's rows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, f"parameters this test cannot fill (add their kind): {sorted(unmapped)}"
    assert sent >= len(operations(doc)) * len(callers), sent
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


def _inside_county(app, db, doc, capsys, world, title, callers, contributions, units, marks):
    """``callers`` of A with the ``contributions`` (their assignments, attachments and revisions too) and
    ``units`` of A they may not see; every other id is A's own. Expected: refused as missing ids are,
    nothing of A changes, no answer shows ``marks``."""
    a = world.a
    contributions = sorted(set(contributions))
    aimed = {
        "contribution": contributions,
        "assignment": list(db.session.scalars(select(Contribution.assignment_id)
                                              .where(Contribution.id.in_(contributions)))),
        "attachment": list(db.session.scalars(select(Attachment.id)
                                              .where(Attachment.contribution_id.in_(contributions)))),
        "revision": list(db.session.scalars(select(Revision.id).where(Revision.contribution_id.in_(contributions)))),
        "unit": units,
    }
    db.session.commit()
    before = region_rows(db, a.region.id)
    unmapped, problems = set(), []
    filler = Filler(doc, {k: v for k, v in aimed.items() if v}, _versions(db), unmapped, fixed=a.ids)
    sent = walk(app, doc, callers, filler, marks, problems)
    # The walkers' own tokens are touched, and refusals are written to the audit trail: nothing else.
    changes = [c for c in row_changes(before, region_rows(db, a.region.id))
               if c.split(" ", 1)[0] not in ("api_token", "audit_event")]
    with capsys.disabled():
        print(f"\nAPI isolation, {title}: {sent} requests\n" + _table(problems)
              + ("\nrows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, sorted(unmapped)
    assert sent > len(operations(doc)) * len(callers), sent
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


def test_a_liaison_gets_nothing_of_another_unit(app, db, api_iso, doc, capsys):
    """A's 公安分局 people with A's 司法局 and township material (same county, other units)."""
    a = api_iso.a
    callers = [Caller(app, label, a.tokens[label]) for label in ("联络员", "单位负责人", "联络员只读")]
    _inside_county(app, db, doc, capsys, api_iso, "between units", callers, a.other_unit_contributions,
                   [a.sfj.id, a.long_unit.id], (UNIT_MARK, B_MARK, B_LOGIN + "_"))


def test_a_reviewer_gets_nothing_of_sections_others_review(app, db, api_iso, doc, capsys):
    """A reviewer of A's office whom no section names: every section of A names its reviewer, so the
    other reviewer sees no unit's material of the year (their own office's last year's material aside)."""
    a = api_iso.a
    outsider = _user(db, a.region, a.office, f"{a.login}_reviewer2", f"{a.mark}王芳", "reviewer")
    db.session.commit()
    token = make_token(db, outsider, "write")
    unseen = list(db.session.scalars(select(Contribution.id).join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
                                     .where(ReportCycle.region_id == a.region.id, Contribution.unit_id != a.office.id)))
    db.session.commit()
    _inside_county(app, db, doc, capsys, api_iso, "a reviewer no section names", [Caller(app, "A其他审核人", token)],
                   unseen, [], (UNIT_MARK, "全年办理行政案件", "请补充执法数据的来源", B_MARK, B_LOGIN + "_"))


def test_own_objects_with_the_other_countys_ids_in_query_and_body(app, db, api_iso, doc, capsys):
    """A's objects in the path, B's ids in every id of the query and the body."""
    a, b = api_iso.a, api_iso.b
    before = region_rows(db, b.region.id)
    unmapped, problems = set(), []
    filler = MixedFiller(doc, b.ids, _versions(db), unmapped, fixed=a.ids)
    callers = _callers(app, api_iso, a, "A")
    sent = walk(app, doc, callers, filler, (B_MARK, B_LOGIN + "_"), problems, check_refusal=False)
    changes = row_changes(before, region_rows(db, b.region.id))
    with capsys.disabled():
        print(f"\nA's objects, B's ids in query and body: {sent} requests\n" + _table(problems)
              + ("\nB's rows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, sorted(unmapped)
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


class MixedFiller(Filler):
    """Path ids of one county (``fixed``), query and body ids of the other (aimed at)."""

    def _path_value(self, op, name, schema, index, missing, used):
        if "enum" in schema:
            return schema["enum"][index % len(schema["enum"])]
        kind = _path_kind(op["path"], name)
        values = self.fixed.get(kind) if kind else None
        return values[index % len(values)] if values else None

    def contexts(self, op) -> int:
        return min(MAX_CONTEXTS, max(self._sizes(op, self.fixed.get)))


def test_the_walk_reaches_own_material(app, db, api_iso, doc):
    """The same filler with A's own ids gets answers with A's material (the walk is not passing on
    refusals of everything): at least one 200 per GET operation with a path id, for A's admin."""
    a = api_iso.a
    unmapped = set()
    filler = Filler(doc, a.ids, _versions(db), unmapped)
    caller = Caller(app, "A管理员", a.tokens["管理员"])
    seen, shown = {}, []
    for op in operations(doc):
        if op["method"] != "GET":
            continue
        for index in range(filler.contexts(op)):
            built = filler.request(op, index)
            if built is None:
                break
            url, query, body, _ = built
            response, problem = caller.send("GET", url, query, body)
            assert problem is None, (op["path"], problem)
            seen.setdefault(op["path"], set()).add(response.status_code)
            shown += texts(response)
    assert not unmapped, sorted(unmapped)
    answered = [path for path, statuses in seen.items() if 200 in statuses]
    assert len(answered) >= len(seen) - 1, seen  # every read answers with A's material (one may need more)
    assert any(A_MARK in text for text in shown)


# The API's own rules that are not operations: the document itself, its readable page, and the answer
# to unknown addresses (404/405 problem for anything else under the prefix).
NOT_OPERATIONS = {"api.openapi_json", "api.docs", "api.not_found"}


def test_every_api_route_is_in_the_document(app, doc):
    """The walks above (and the schemathesis run) reach what the document names: a route under /api/v1
    that is not documented would escape them, so every one must be there, with its methods."""
    documented = {(op["method"], op["path"]) for op in operations(doc)}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/") or rule.endpoint in NOT_OPERATIONS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes, "no API route found"
    assert routes <= documented, sorted(routes - documented)
    assert documented <= routes, sorted(documented - routes)
