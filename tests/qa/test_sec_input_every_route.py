"""Every rule of the url_map, GET and POST, for every role, with hostile values in every path converter
and every query/form parameter the views read: no response >= 500, no traceback.

Hostile values are those that broke ``isdigit()`` + ``int()`` and the database's column ranges ("²",
"①", full-width digits, 5,000 digits), the float spellings (NaN, Infinity, 1e999999), signs, invalid
UTF-8, NUL and 100k-character strings. Values are sampled: each (rule, method) gets three of them per
role, rotating so that across the six roles every value reaches every rule.
"""
from __future__ import annotations

import importlib
import inspect
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from flask_wtf import FlaskForm
from sqlalchemy import select

import fazhi_flow
from fazhi_flow.models import (Assignment, Attachment, Contribution, ExtensionRequest, Notification, OutboxMessage,
                               Publication, ReportCycle, Section, Unit, User, WebhookTarget)
from fazhi_flow.testing import demo_client


class Raw(str):
    """A value sent as is in the query string or body (already percent-encoded, e.g. invalid UTF-8)."""


HOSTILE = ["²", "①", "１２", "NaN", "Infinity", "-0", "1e999999", "1E-999999", "1e300", str(10**100), "9" * 5000, "-1", "0",
           "x" * 100_000, Raw("%ff%fe"), "\x00", Raw("1%002"), "2024\u202e"]
ROLES = [None, "sfj", "sfj_head", "reviewer", "admin", "leader"]  # None: anonymous
# Logging out or rotating one's own session would end the walk for that role, not find a 500.
SKIP_ENDPOINTS = {"auth.logout"}
WEB = Path(fazhi_flow.__file__).parent / "web"
NAME_IN_SOURCE = re.compile(r"""\.get(?:list)?\(\s*["']([A-Za-z_][\w\-]*)["']""")
PREFIX_IN_SOURCE = re.compile(r"""f["']([A-Za-z_][\w]*-?)\{""")
FORM_PREFIX = re.compile(r"""prefix=["'](\w+)["']""")


def _encode(value: str) -> str:
    return str(value) if isinstance(value, Raw) else quote(value, safe="")


def _form_fields(module) -> set[str]:
    names = set()
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, FlaskForm) and cls is not FlaskForm:
            names |= {name for name in dir(cls) if hasattr(getattr(cls, name), "field_class")}
    return names


def _parameter_names(tokens: list[str]) -> dict[str, list[str]]:
    """Per blueprint folder: the names its routes read and its forms' field names (with prefixes)."""
    names = {}
    for folder in [p for p in WEB.iterdir() if p.is_dir() and (p / "__init__.py").exists()]:
        source = "\n".join(f.read_text(encoding="utf-8") for f in folder.glob("*.py"))
        found = set(NAME_IN_SOURCE.findall(source))
        found |= {prefix + token for prefix in PREFIX_IN_SOURCE.findall(source) for token in tokens}
        if (folder / "forms.py").exists():
            fields = _form_fields(importlib.import_module(f"fazhi_flow.web.{folder.name}.forms"))
            found |= fields | {f"{p}-{f}" for p in FORM_PREFIX.findall(source) for f in fields}
        names[folder.name] = sorted(found)
    return names


def _first(db, stmt, default=1):
    value = db.session.scalar(stmt.limit(1))
    return default if value is None else value


def _real_ids(db, cycle) -> dict[str, int]:
    """An existing id per converter name, chosen so the walk reaches the views' code (the liaison's
    own material) without deactivating or logging out the users walking."""
    sfj = db.session.scalar(select(Unit).where(Unit.code == "sfj"))
    walkers = [r for r in ROLES if r]
    return {
        "contribution_id": _first(db, select(Contribution.id).where(Contribution.unit_id == sfj.id)),
        "attachment_id": _first(db, select(Attachment.id)),
        "notification_id": _first(db, select(Notification.id)),
        "cycle_id": cycle.id,
        "section_id": _first(db, select(Section.id).where(Section.cycle_id == cycle.id).order_by(Section.id.desc())),
        "unit_id": _first(db, select(Unit.id).where(Unit.code == "lgq")),
        "user_id": _first(db, select(User.id).where(User.username.not_in(walkers)).order_by(User.id.desc())),
        "webhook_id": _first(db, select(WebhookTarget.id)),
        "request_id": _first(db, select(ExtensionRequest.id)),
        "message_id": _first(db, select(OutboxMessage.id)),
        "assignment_id": _first(db, select(Assignment.id).where(Assignment.unit_id == sfj.id)),
        "publication_id": _first(db, select(Publication.id)),
        "number": 1,
    }


def _path(rule, ids: dict, hostile: str | None) -> str:
    """The rule's path with real values, or with ``hostile`` in every converter."""
    def fill(match):
        converter, name = match.group(1) or "default", match.group(2)
        if hostile is not None:
            return _encode(hostile)
        if converter.startswith("any("):
            return converter[4:].split(",")[0].strip()
        if converter == "int":
            return str(ids.get(name, 1))
        return {"fmt": "html", "kind": "units"}.get(name, "x.css")
    return re.sub(r"<(?:([^:<>]+):)?([^<>]+)>", fill, rule.rule)


def _value(i: int, shift: int) -> str:
    value = HOSTILE[(i + shift) % len(HOSTILE)]
    # The long values once per request: a megabyte of query string only measures URL parsing.
    return value if i < len(HOSTILE) or len(value) < 100 else "²"


def _body(names: list[str], shift: int) -> str:
    """Every parameter a hostile value, parameter i the (i + shift)-th: each request tries them all."""
    return "&".join(f"{quote(name, safe='')}={_encode(_value(i, shift))}" for i, name in enumerate(names))


def _benign(names: list[str]) -> str:
    return "&".join(f"{quote(name, safe='')}=1" for name in names)


class _ReadNames:
    """Records which parameter names the views read, so that all hostile values go where they are read."""

    names: set = set()

    @staticmethod
    def storage(base):
        class Recording(base):
            def get(self, key, default=None, type=None):
                _ReadNames.names.add(key)
                return super().get(key, default, type)

            def getlist(self, key, type=None):
                _ReadNames.names.add(key)
                return super().getlist(key, type)

            def __getitem__(self, key):
                _ReadNames.names.add(key)
                return super().__getitem__(key)

        return Recording


def _send(client, db, method, path, query):
    """One request; returns (status, problem): a 500, or an exception (TESTING lets them through)."""
    try:
        if method == "GET":
            response = client.get(path, query_string=query)
        else:
            response = client.post(path, data=query, content_type="application/x-www-form-urlencoded")
    except Exception as exc:  # noqa: BLE001 - any exception is exactly what this test looks for
        db.session.rollback()
        return 500, f"{type(exc).__name__}: {str(exc)[:200]}"
    if response.status_code >= 500 or b"Traceback" in response.get_data():
        return response.status_code, str(response.status_code)
    location = response.headers.get("Location", "")
    return (401 if "/login" in location else response.status_code), None


def _tries(rule, method, ids, params, role_index, k, reached: bool):
    """(path, query or body) pairs: every value in every parameter the view read for this role, a sample
    where it read none or refused the role."""
    path = _path(rule, ids, None)
    shifts = range(len(HOSTILE)) if reached else (role_index * 2 + k, role_index * 2 + k + 1)
    tries = [(path, _body(params, shift)) for shift in shifts]
    if "<" in rule.rule:
        tries.append((_path(rule, ids, HOSTILE[(role_index + k) % len(HOSTILE)]), ""))
    return tries


def _walk(app, db, role_index, username, rules, ids, names, counts):
    client = demo_client(app, username)
    problems = []
    for k, (rule, method) in enumerate(rules):
        params = names.get(rule.endpoint.split(".")[0], []) or ["q"]
        _ReadNames.names = set()
        status, problem = _send(client, db, method, _path(rule, ids, None), _benign(params))
        read = [name for name in params if name in _ReadNames.names]
        reached = bool(read) and status not in (401, 403, 404, 405)
        tries = [] if problem else _tries(rule, method, ids, read if reached else params, role_index, k, reached)
        for path, query in tries:
            if problem:
                break  # one report per rule and role is enough
            counts["requests"] += 1
            problem = _send(client, db, method, path, query)[1]
        counts["requests"] += 1
        if problem:
            problems.append((username, method, rule.rule, problem))
    counts["5xx"] += len(problems)
    return problems


def test_no_hostile_value_gives_a_server_error(app, db, demo, capsys, monkeypatch):
    monkeypatch.setattr(app.request_class, "parameter_storage_class",
                        _ReadNames.storage(app.request_class.parameter_storage_class))
    ids = _real_ids(db, demo)
    tokens = ["legal_review_rate", str(ids["contribution_id"]), str(ids["unit_id"]), str(ids["user_id"])]
    names = _parameter_names(tokens)
    rules = sorted(((rule, method) for rule in app.url_map.iter_rules() if rule.endpoint not in SKIP_ENDPOINTS
                    for method in ("GET", "POST") if method in rule.methods), key=lambda rm: (rm[1], rm[0].rule))
    # GETs first: a POST may move the demo on (compile, reopen), and the pages should be seen before.
    counts = {"requests": 0, "5xx": 0}
    problems = []
    for index, username in enumerate(ROLES):
        problems += _walk(app, db, index, username, rules, ids, names, counts)
    with capsys.disabled():
        print(f"\nhostile input: {len(rules)} rule/method pairs, {counts['requests']} requests, "
              f"{counts['5xx']} rule/role pairs with a response >= 500")
    assert counts["requests"] > 2000
    assert not problems, "\n".join(map(str, problems))


# The second pass: the walk above sends every parameter hostile at once, so a view that checks all
# fields before writing refuses early and never reaches the database. Here each POST form of the
# administrator's pages is sent as the page offers it, filled in validly, with ONE field hostile.
ONE_AT_A_TIME_PAGES = ("admin.", "figures.definitions", "reminders.policy")
# Numbers beyond NUMERIC(20, 4) pass Decimal() and only fail in PostgreSQL: always sent.
COLUMN_BREAKERS = ["1E-999999", "NaN", "1e300"]
# Valid values for fields a form offers empty (so that the other fields are not what refuses it).
FILLS = {"code": "probe_code", "name": "探测名称", "title": "探测标题", "username": "probe_user",
         "measure": "件", "expression": "1 >= 0", "reason": "核对输入", "message": "提示", "region": "探测区",
         "email": "probe@example.cn", "minimum": "0", "maximum": "100", "word_limit": "500"}


class _Forms(HTMLParser):
    """The POST forms of a page: (action, [(name, value)]) as a browser would submit them unchanged."""

    def __init__(self):
        super().__init__()
        self.forms, self.fields, self.select, self.textarea = [], None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.fields = []
            self.forms.append((a.get("action") or "", self.fields))
        elif self.fields is None or not a.get("name") and tag != "option":
            return
        elif tag == "input" and a.get("type") not in ("submit", "button", "file", "image", "reset") and (
                a.get("type") not in ("checkbox", "radio") or "checked" in a):
            self.fields.append([a["name"], a.get("value") or ""])
        elif tag == "textarea":
            self.textarea = [a["name"], ""]
            self.fields.append(self.textarea)
        elif tag == "select":
            self.select = [a["name"], None]
            self.fields.append(self.select)
        elif tag == "option" and self.select is not None and (self.select[1] is None or "selected" in a):
            self.select[1] = a.get("value", "")

    def handle_data(self, data):
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.fields = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None


def _page_forms(client, path) -> list[tuple[str, list[tuple[str, str]]]]:
    response = client.get(path)
    if response.status_code != 200:
        return []
    parser = _Forms()
    parser.feed(response.get_data(as_text=True))
    forms = []
    for action, fields in parser.forms:
        filled = [(name, value or FILLS.get(name.rpartition("-")[2], "")) for name, value in fields]
        forms.append((action or path, filled))
    return forms


def _one_hostile(fields, index, value) -> str:
    return "&".join(f"{quote(name, safe='')}={_encode(value) if i == index else quote(v, safe='')}"
                    for i, (name, v) in enumerate(fields))


def test_one_hostile_field_at_a_time_gives_no_server_error(app, db, demo, capsys):
    ids = _real_ids(db, demo)
    # The administration pages last: their forms move the cycle on (compile, publish), after which
    # indicators can no longer be defined.
    pages = sorted({_path(rule, ids, None) for rule in app.url_map.iter_rules() if "GET" in rule.methods
                    and rule.endpoint.startswith(ONE_AT_A_TIME_PAGES) and not rule.rule.endswith((".xlsx", ".csv"))},
                   key=lambda path: (path.startswith("/admin"), path))
    others = [v for v in HOSTILE if len(v) < 1000]
    counts, problems = {"forms": 0, "requests": 0}, []
    for p, page in enumerate(pages):
        client = demo_client(app, "admin")  # afresh per page: a form may have ended the session
        for f, (action, fields) in enumerate(_page_forms(client, page)):
            counts["forms"] += 1
            for i, (name, _) in enumerate(fields):
                if name == "csrf_token":
                    continue
                sample = COLUMN_BREAKERS + [others[(p + f + i + k) % len(others)] for k in range(2)]
                for value in sample:
                    counts["requests"] += 1
                    problem = _send(client, db, "POST", action, _one_hostile(fields, i, value))[1]
                    if problem:
                        problems.append((page, action, name, value, problem))
                        break
    with capsys.disabled():
        print(f"\none hostile field at a time: {len(pages)} pages, {counts['forms']} forms, "
              f"{counts['requests']} requests, {len(problems)} fields with a response >= 500")
    assert counts["forms"] > 10 and counts["requests"] > 300
    assert not problems, "\n".join(map(str, problems))
