"""Isolation proven (issue 12, point 6): every route and CLI command, every role, two sibling counties
(赫山区 = A, 资阳区 = B) and their city (益阳市).

Each person of A (and the city's admin and the system administrator, and an anonymous visitor) requests
every rule of the url_map, with every method it takes, with B's ids in the URL, the query string and
the form. Expected: 404 — or the same refusal a missing id gets (a role refused before any object is
loaded), or the login page for an anonymous visitor — never a page, a success redirect or a 500; no
response shows B's names; and afterwards every row of B (and every row pointing at one of B's rows) is
exactly as before. The same walk runs the other way round (B's people with A's ids). Then A's people
post B's ids in the forms of A's own pages: still nothing of B changes and nothing of A comes to point
at B. Every page A's people see with A's own ids is free of B's names.

The city's oversight user (督导) may read B's dashboard and published reports; every write is refused.
The public pages list each county's published reports under that county.

A rule whose URL variable this test cannot fill fails the test, so a new route is covered or noticed.
"""
from __future__ import annotations

import html
import io
import re
import zipfile
from html.parser import HTMLParser
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import Attachment, ReportDraftVersion
from fazhi_flow.testing import FreshUserClient, login

from .isolation_world import A_MARK, B_LOGIN, B_MARK, PDF, build_world, region_rows, row_changes

# A missing id of every kind: what a refusal that never loads the object answers.
MISSING = 2_000_000_000
# Not requested: they end or change the walker's own session, or serve files of the package.
SKIP_ENDPOINTS = {"auth.logout", "auth.change_password", "auth.login"}
# Public by design: anyone may read any region's published report.
PUBLIC_PREFIX = "public."
ANY = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")
FMT_VALUES = ("html", "docx", "txt", "pdf")
FORM_PREFIXES = ("c", "t", "f", "new", "compile", "reopen", "approve", "return")


@pytest.fixture()
def iso(app, db):
    return build_world(db)


# ---------------------------------------------------------------- ids of one county, per variable name


def _contexts(county) -> list[dict]:
    """Consistent sets of URL values (a section of the cycle named, an attachment of the contribution
    named …); one per material state, one for the published cycle."""
    from fazhi_flow.extensions import db

    w, aux, pub = county.work, county.aux, county.published
    versions = db.session.scalars(select(ReportDraftVersion).where(ReportDraftVersion.cycle_id == pub.cycle.id)).all()
    base = {
        "unit_id": county.gaj.id, "user_id": county.people.sfj_liaison.id, "region_id": county.region.id,
        "webhook_id": aux.unit_robot.id, "target_id": aux.unit_robot.id, "request_id": aux.request.id,
        "message_id": aux.outbox.id, "notification_id": aux.notice.id, "publication_id": pub.publication.id,
        "number": 1, "version": 1, "version_id": versions[0].id, "draft_version_id": versions[0].id,
        "year": 2024, "token_id": aux.token.id, "rest": "cycles",
        "delegation_id": aux.delegation.id,
    }
    out = []
    for state, contribution in w.contributions.items():
        attachment = db.session.scalar(select(Attachment).where(Attachment.contribution_id == contribution.id))
        indicator = contribution.section.indicators[0]
        out.append({**base, "cycle_id": w.cycle.id, "section_id": contribution.section_id,
                    "contribution_id": contribution.id, "attachment_id": attachment.id,
                    "assignment_id": contribution.assignment_id, "indicator_id": indicator.id,
                    "rule_id": county.work.sections["draft"].rules[0].id,
                    "revision_id": (contribution.revisions[0].id if contribution.revisions else MISSING)})
    out.append({**out[0], "cycle_id": pub.cycle.id, "section_id": pub.sections["measures"].id,
                "webhook_id": aux.cycle_robot.id, "target_id": aux.cycle_robot.id, "message_id": aux.robot_outbox.id})
    return out


def _query(county) -> dict:
    """Query-string parameters that name objects (the dashboard's cycle, the users page's unit …)."""
    w = county.work
    return {"cycle": w.cycle.id, "unit": county.gaj.id, "parent": w.top.id, "ids": w.contributions["submitted"].id,
            "region": county.region.id}


def _form(county) -> dict:
    """A plausible form for any page, every id field naming ``county``'s objects."""
    w, p = county.work, county.people
    submitted = w.contributions["submitted"]
    gaj, sfj = county.gaj.id, county.sfj.id
    later = (date.today() + timedelta(days=40)).isoformat()
    form = {
        "unit": str(gaj), "parent": str(gaj), "source": str(w.cycle.id), "reviewers": [str(p.reviewer.id)],
        "section_id": str(w.sections["draft"].id), "indicator_id": str(w.sections["draft"].indicators[0].id),
        "rule_id": str(w.sections["draft"].rules[0].id), "ids": [str(submitted.id)],
        f"v{submitted.id}": str(submitted.version), "unit_id": [str(gaj), str(sfj)],
        f"role-{gaj}": "lead", f"due-{gaj}": later, f"role-{sfj}": "support", "cycle_id": str(w.cycle.id),
        "region": county.region.code, "region_id": str(county.region.id), "user_id": str(p.liaison.id),
        "confirm": "1", "direction": "up", "requested_due": later, "granted_due": later, "reason": "核对区域隔离",
        "decision": "grant", "comment": "核对区域隔离", "note": "核对区域隔离", "body": "核对区域隔离的正文",
        "action": "save", "code": "probe", "name": "探测名称", "username": "probe_user", "roles": ["liaison"],
        "kind": "wecom", "title": "探测标题", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=probe",
        "email": "on", "inapp": "on", "text": "核对区域隔离", "mode": "replace", "event": "approve", "late": "keep",
        "year": "2026", "status": "dead", "scope": "selected", "enabled": "on", "before_due_days": "3,1",
        "send_time": "09:00", "overdue_every": "2", "overdue_max": "3", "escalate_after": "2", "backlog_days": "2",
        "backlog_max": "2", "version": "1", "form": "delete_indicator", "appendix": "1",
    }
    # The same fields as the prefixed forms name them (c-source: the cycle to copy, t-region …).
    for prefix in FORM_PREFIXES:
        form.update({f"{prefix}-{name}": value for name, value in list(form.items()) if "-" not in name})
    return form


# ---------------------------------------------------------------- URLs of every rule


def _rules(app):
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in SKIP_ENDPOINTS or rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        for method in ("GET", "POST"):
            if method in rule.methods:
                out.append((rule, method))
    return out


def _urls(rule, contexts: list[dict], unmapped: set) -> list[str]:
    """The rule's URL for each context (deduplicated), every choice of an ``any(...)`` converter."""
    urls = []
    for ctx in contexts:
        variants = [rule.rule]
        for match in ANY.finditer(rule.rule):
            converter, name = match.group(1) or "default", match.group(2)
            if converter.startswith("any("):
                choices = [c.strip() for c in converter[4:-1].split(",")]
            elif name == "fmt":
                choices = list(FMT_VALUES)
            elif name in ctx:
                choices = [str(ctx[name])]
            else:
                unmapped.add(f"{rule.rule} <{name}>")
                return []
            variants = [v.replace(match.group(0), c, 1) for v in variants for c in choices]
        for url in variants:
            if url not in urls:
                urls.append(url)
    return urls


def _missing_url(rule, url: str) -> str:
    """``url`` with every integer variable a missing id (the other variables as they were)."""
    parts = iter(re.findall(r"[^/]+", url))
    out = []
    for part in re.findall(r"[^/]+", rule.rule):
        value = next(parts)
        out.append(str(MISSING) if re.fullmatch(r"<int:[^>]+>", part) else value)
    return "/" + "/".join(out) + ("/" if url.endswith("/") else "")


# ---------------------------------------------------------------- requests and verdicts


def _has_ids(rule) -> bool:
    return "<int:" in rule.rule


class Walker:
    def __init__(self, app, label, user, skip=lambda rule: False):
        self.app, self.label, self.user, self.skip = app, label, user, skip
        self.requests = 0
        self.client = FreshUserClient(app, app.response_class, use_cookies=True)
        if user is not None:
            login(self.client, user)

    def send(self, method, url, query, form):
        self.requests += 1
        try:
            if method == "GET":
                response = self.client.get(url, query_string=query or None)
            else:
                # Every POST also uploads a file (a fresh stream each time): uploads into the other
                # county's material are tried wherever a form takes one.
                files = {name: (io.BytesIO(PDF), "执法统计表.pdf") for name in ("file", "f-file")}
                response = self.client.post(url, data={**form, **files}, content_type="multipart/form-data")
            response.get_data()  # read whole, then close: a download is a file kept open until then
            response.close()
            return response, None
        except Exception as exc:  # noqa: BLE001 - the testing app lets exceptions through: a 500
            from fazhi_flow.extensions import db

            db.session.rollback()
            return None, f"{type(exc).__name__}: {str(exc)[:120]}"

    def relogin(self):
        if self.user is not None:
            self.client = FreshUserClient(self.app, self.app.response_class, use_cookies=True)
            login(self.client, self.user)


def _texts(response) -> list[str]:
    """What a response shows: its body, the files inside an xlsx/docx, a redirect's target; character
    references resolved (the XLSX writer spells 资 as &#36164;)."""
    data = response.get_data()
    location = response.headers.get("Location", "")
    # The login page's "next" repeats the URL asked for, ids and all: not something shown.
    texts = [data] + ([location.encode()] if "/login" not in location else [])
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                texts += [archive.read(name) for name in archive.namelist()]
        except zipfile.BadZipFile:
            pass
    return [html.unescape(t.decode("utf-8", "replace")) for t in texts]


def leak(response, marks=(B_MARK, B_LOGIN + "_")) -> str | None:
    for text in _texts(response):
        for mark in marks:
            if mark in text:
                return f"shows “{mark}”"
    return None


def _location(response) -> str:
    return response.headers.get("Location", "") if response is not None else ""


def verdict(walker, rule, method, url, response, problem, query, form) -> str | None:
    """None when the request was refused as it must be; else what went wrong (short)."""
    if problem:
        return problem
    status = response.status_code
    if status >= 500:
        return "500"
    if not _has_ids(rule) and walker.user is None:
        return None  # no id in the URL: what it shows is checked for 资阳区's names, the rows after the walk
    if walker.user is None:
        if status in (301, 302, 303) and "/login" in _location(response):
            return None
        return None if status in (401, 403, 404) else f"anonymous {status}"
    if status in (301, 302, 303) and "/login" in _location(response):
        walker.relogin()
        return f"{status} to login (session lost)"
    if not _has_ids(rule):
        return None  # no id in the URL: what it shows is checked for 资阳区's names, the rows after the walk
    if status == 404:
        return None
    # 401: the API answers a browser session (no token) so, whatever the id.
    if status in (400, 401, 403):
        probe, _ = walker.send(method, _missing_url(rule, url), query, form)
        if probe is not None and probe.status_code == status:
            return None  # refused before any object was loaded: the id told nothing
        return f"{status} (missing id: {probe.status_code if probe is not None else 'error'})"
    if status in (301, 302, 303):
        return f"{status} to {_location(response).split('?')[0][:60]}"
    return str(status)


def _table(problems) -> str:
    """One line per (route, method, answer) with everyone who got it."""
    grouped: dict[tuple, list[str]] = {}
    for route, method, who, answer in problems:
        people = grouped.setdefault((route, method, answer), [])
        if who not in people:
            people.append(who)
    lines = [f"{len(problems)} wrong answers", "| route | method | answer | who |", "|---|---|---|---|"]
    lines += [f"| {route} | {method} | {answer} | {'、'.join(who)} |" for (route, method, answer), who in grouped.items()]
    return "\n".join(lines)


def _manages_regions(rule) -> bool:
    # The system administrator's own pages: it manages every region (and their first admins) there.
    return "region" in rule.endpoint


def _walkers(app, iso, county=None, short="A") -> list[Walker]:
    """Everyone who must not reach the other county: an anonymous visitor, each role of ``county``
    (A unless named), the city's admin and the system administrator."""
    p, city = (county or iso.a).people, iso.city_people
    return [Walker(app, "匿名", None)] + [Walker(app, short + label, user) for label, user in (
        ("管理员", p.admin), ("审核人", p.reviewer), ("联络员", p.liaison), ("单位负责人", p.unit_head),
        ("签发领导", p.leader), ("督导", p.oversight))] + [
        Walker(app, "市管理员", city.admin), Walker(app, "系统管理员", city.sysadmin, skip=_manages_regions)]


def _marks(county) -> tuple[str, str]:
    return county.mark, county.login + "_"


def _attack(app, walker, rules, contexts, query, form, problems, unmapped, is_read_ok=lambda *_: False,
            marks=None):
    """Every rule with the other county's ids; records (rule, method, who, answer) of each wrong answer."""
    marks = marks or (B_MARK, B_LOGIN + "_")
    for rule, method in rules:
        if walker.skip(rule):
            continue
        for url in _urls(rule, contexts, unmapped):
            response, problem = walker.send(method, url, query, form)
            public = rule.endpoint.startswith(PUBLIC_PREFIX)
            if public or is_read_ok(rule, method):
                wrong = problem or ("500" if response.status_code >= 500 else None)
            else:
                wrong = verdict(walker, rule, method, url, response, problem, query, form)
                wrong = wrong or (leak(response, marks) if response is not None else None)
            if wrong:
                problems.append((rule.rule, method, walker.label, wrong))


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("direction", ["赫山区→资阳区", "资阳区→赫山区"])
def test_every_route_refuses_the_other_countys_ids(app, db, iso, capsys, direction):
    """Both ways round, so that nothing passes because of which county's ids happen to be smaller."""
    attacker, target, short = (iso.a, iso.b, "A") if direction.startswith("赫山") else (iso.b, iso.a, "B")
    before = region_rows(db, target.region.id)
    rules = _rules(app)
    contexts, unmapped, problems = _contexts(target), set(), []
    query, form = _query(target), _form(target)
    walkers = _walkers(app, iso, attacker, short)
    # GETs first: a POST may move a cycle on and hide what a page would have shown.
    rules = sorted(rules, key=lambda rm: rm[1] != "GET")
    for walker in walkers:
        _attack(app, walker, rules, contexts, query, form, problems, unmapped, marks=_marks(target))
    changes = row_changes(before, region_rows(db, target.region.id))
    sent = sum(w.requests for w in walkers)
    with capsys.disabled():
        print(f"\nisolation {direction}: {len(rules)} rule/method pairs × {len(walkers)} people, {sent} requests\n"
              + _table(problems) + ("\nthe target's rows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, f"URL variables this test cannot fill (add them to _contexts): {sorted(unmapped)}"
    assert sent > len(rules) * len(walkers), sent  # every rule asked, most of them several times
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


def test_own_pages_with_the_other_countys_ids_in_forms_change_nothing_of_it(app, db, iso, capsys):
    """A's own objects in the URL, B's ids in every id field of the form (units to assign, reviewers,
    a parent unit, a source cycle, material to approve in bulk …)."""
    b_before = region_rows(db, iso.b.region.id)
    rules = [(rule, method) for rule, method in _rules(app) if method == "POST"
             and not rule.endpoint.startswith(PUBLIC_PREFIX)]
    a_contexts, unmapped, problems = _contexts(iso.a), set(), []
    form = _form(iso.b)
    a = iso.a.people
    # The administrator last: its forms deactivate people and move the cycle on.
    for label, user in (("A联络员", a.liaison), ("A单位负责人", a.unit_head), ("A审核人", a.reviewer),
                        ("A签发领导", a.leader), ("A管理员", a.admin)):
        walker = Walker(app, label, user)
        for rule, method in rules:
            for url in _urls(rule, a_contexts, unmapped):
                response, problem = walker.send(method, url, {}, form)
                wrong = problem or ("500" if response.status_code >= 500 else None) or leak(response)
                if wrong:
                    problems.append((rule.rule, method, label, wrong))
    changes = row_changes(b_before, region_rows(db, iso.b.region.id))
    with capsys.disabled():
        print("\nown pages, 资阳区's ids in the forms:\n" + _table(problems)
              + ("\nB's rows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, sorted(unmapped)
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


def test_no_page_of_a_county_shows_the_other_countys_names(app, db, iso, capsys):
    """Every page (lists above all: tasks, review queue, dashboard, compile, people, units, cycles,
    outbox, inbox, figures summary, audit) as each person of A sees it with A's own ids."""
    rules = [(rule, method) for rule, method in _rules(app) if method == "GET"
             and not rule.endpoint.startswith(PUBLIC_PREFIX)]
    a_contexts, unmapped, problems, seen = _contexts(iso.a), set(), [], 0
    for walker in _walkers(app, iso)[1:]:
        for rule, _ in [(r, m) for r, m in rules if not walker.skip(r)]:
            for url in _urls(rule, a_contexts, unmapped):
                response, problem = walker.send("GET", url, {}, {})
                wrong = problem or ("500" if response.status_code >= 500 else None) or leak(response)
                seen += response is not None and response.status_code == 200
                if wrong:
                    problems.append((rule.rule, "GET", walker.label, wrong))
    with capsys.disabled():
        print(f"\nA's own pages: {seen} pages shown\n" + _table(problems))
    assert not unmapped, sorted(unmapped)
    assert seen > 100, seen  # the walk saw the pages, not only refusals
    assert not problems, _table(problems)


def test_a_countys_list_pages_show_its_own_material(app, db, iso):
    """The list pages do show A's own names (so the test above is not passing on empty pages)."""
    a = iso.a.people
    pages = {a.admin: ["/admin/users", "/admin/units", "/admin/cycles", f"/dashboard/?cycle={iso.a.work.cycle.id}"],
             a.liaison: ["/tasks/"], a.reviewer: ["/review/"], a.unit_head: ["/tasks/unit-queue"]}
    for user, urls in pages.items():
        walker = Walker(app, user.username, user)
        for url in urls:
            response, _ = walker.send("GET", url, {}, {})
            assert response.status_code == 200, (url, response.status_code)
            assert A_MARK in response.get_data(as_text=True), url


OVERSIGHT_READS = ("dashboard.", "public.", "oversight.", "compile.", "figures.summary")


def test_the_citys_oversight_reads_the_countys_dashboard_and_reports_and_writes_nothing(app, db, iso, capsys):
    b = iso.b
    b_before = region_rows(db, b.region.id)
    walker = Walker(app, "市督导", iso.city_people.oversight)
    problems, unmapped = [], set()
    for url in (f"/dashboard/?cycle={b.work.cycle.id}", f"/dashboard/export.xlsx?cycle={b.work.cycle.id}",
                f"/reports/{b.published.publication.id}", f"/reports/{b.published.publication.id}/report.html"):
        response, problem = walker.send("GET", url, {}, {})
        if problem or response.status_code != 200:
            problems.append((url, "GET", walker.label, f"{problem or response.status_code}, not 200"))
        elif url.startswith("/dashboard/") and not leak(response):
            problems.append((url, "GET", walker.label, "200 but not 资阳区's dashboard"))
    # The oversight pages, where they exist: both counties, 资阳区's 2023 report linked.
    if "oversight.index" in app.view_functions:
        response, problem = walker.send("GET", "/oversight/?year=2023", {}, {})
        page = response.get_data(as_text=True) if response is not None else ""
        if problem or response.status_code != 200:
            problems.append(("/oversight/", "GET", walker.label, f"{problem or response.status_code}, not 200"))
        elif not all(name in page for name in ("赫山区", "资阳区")):
            problems.append(("/oversight/", "GET", walker.label, "does not list both counties"))
        elif f"/reports/{b.published.publication.id}" not in page and f"region={b.region.code}" not in page:
            problems.append(("/oversight/", "GET", walker.label, "no link to 资阳区's published report"))
    if "oversight.remind" in app.view_functions:
        response, problem = walker.send("GET", f"/oversight/regions/{b.region.id}/remind", {}, {})
        if problem or response.status_code != 200:
            problems.append(("/oversight/regions/<B>/remind", "GET", walker.label,
                             f"{problem or response.status_code}, not 200"))

    def read_ok(rule, method):
        return method == "GET" and rule.endpoint.startswith(OVERSIGHT_READS)

    # Its own writes (督办 reminders from the oversight pages) are the oversight tests' business.
    rules = [(r, m) for r, m in _rules(app) if not (m == "POST" and r.endpoint.startswith("oversight."))]
    rules = sorted(rules, key=lambda rm: rm[1] != "GET")
    _attack(app, walker, rules, _contexts(b), _query(b), _form(b), problems, unmapped, read_ok)
    changes = row_changes(b_before, region_rows(db, b.region.id))
    with capsys.disabled():
        print("\noversight with 资阳区's ids:\n" + _table(problems)
              + ("\nB's rows changed:\n  " + "\n  ".join(changes[:40]) if changes else ""))
    assert not unmapped, sorted(unmapped)
    assert not changes, "\n".join(changes[:40])
    assert not problems, _table(problems)


def test_public_pages_list_each_countys_reports_under_that_county(app, db, iso):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    page = client.get("/reports/").get_data(as_text=True)
    for county, name in ((iso.a, "赫山区"), (iso.b, "资阳区")):
        link = f"/reports/{county.published.publication.id}"
        assert link in page, f"{name}'s report is not listed"
        before = page[:page.index(link)]
        # The nearest heading above the link that names a region and is not itself a report's title.
        headings = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", before, re.S)
                    if not re.search(r"/reports/\d", h)]
        named = [h for h in headings if any(region in h for region in ("赫山区", "资阳区", "益阳市"))]
        assert named and name in named[-1], (
            f"{name}'s report is listed under the heading {named[-1] if named else None!r}, not under {name}")


class _PostForms(HTMLParser):
    """The POST forms of a page with their hidden and text fields: (action, {name: value})."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.forms.append((a.get("action") or "", {}))
        elif tag == "input" and self.forms and a.get("name") and a.get("type") not in ("file", "checkbox", "radio"):
            self.forms[-1][1][a["name"]] = a.get("value") or ""


def test_a_cycle_file_for_the_other_county_uploaded_by_an_admin_changes_nothing_of_it(app, db, iso):
    """赫山区's admin uploads 资阳区's cycle file and confirms every form the answer offers."""
    b_before = region_rows(db, iso.b.region.id)
    walker = Walker(app, "A管理员", iso.a.people.admin)
    data = b_cycle_file(iso.b).encode()
    response = walker.client.post("/admin/cycles/new/file", data={"f-file": (io.BytesIO(data), "zy.yaml")},
                                  content_type="multipart/form-data")
    answers = [response.status_code]
    parser = _PostForms()
    parser.feed(response.get_data(as_text=True))
    for action, fields in parser.forms:
        if action and "logout" not in action:
            answers.append(walker.client.post(action, data=fields).status_code)
    changes = row_changes(b_before, region_rows(db, iso.b.region.id))
    body = response.get_data(as_text=True)
    assert not changes, "\n".join(changes[:40])
    assert response.status_code < 500 and all(a < 500 for a in answers), answers
    assert "cycle.region" in body and ("资阳区" in body or "430902" in body), \
        "the refusal does not name the key and the region the file is for"
    assert B_MARK not in body, "the answer shows 资阳区's material"


# ---------------------------------------------------------------- the CLI


def _cli_commands(app) -> dict:
    group = app.cli.commands.get("fazhi")
    assert group is not None, "no `flask fazhi` group"
    return dict(group.commands)


def _options(command) -> set[str]:
    return {o for p in command.params for o in p.opts} if command is not None else set()


def b_cycle_file(b) -> str:
    """资阳区's own 2024 cycle file (its region code, its cycle, its "gaj" renamed, its liaison renamed):
    valid for 资阳区, so a refusal for 赫山区 is about the region and nothing else."""
    import yaml

    return yaml.safe_dump({
        "cycle": {"title": b.work.cycle.title, "year": 2024, "region": b.region.code, "due": "2025-01-10"},
        "units": [{"code": "gaj", "name": "公安被改名分局", "kind": "judicial"}],
        "users": [{"username": b.people.liaison.username, "name": "被改名的人", "unit": "gaj", "roles": ["liaison"]}],
        "outline": [{"code": "measures", "title": "被改写的章节", "reviewers": [b.people.reviewer.username],
                     "children": [{"code": "m.draft", "title": "被改写的小节", "lead": ["gaj"]}]}],
    }, allow_unicode=True, sort_keys=False)


def _run(runner, args):
    from fazhi_flow.extensions import db

    result = runner.invoke(args=args, catch_exceptions=True)
    db.session.rollback()  # a command that failed half-way leaves nothing pending for the next one
    return result.exit_code, (result.output or "") + (repr(result.exception) if result.exception and
                                                       not isinstance(result.exception, SystemExit) else "")


def test_cli_commands_refuse_the_other_countys_ids(app, db, iso, tmp_path):
    """Commands run for A (``--region`` A's code, A's user) with B's ids: refused, B unchanged."""
    commands = _cli_commands(app)
    b, a = iso.b, iso.a
    b_before = region_rows(db, b.region.id)
    region_commands = ("status", "export", "transition", "create-user", "import-cycle")
    without = [name for name in region_commands if "--region" not in _options(commands.get(name))]
    ra = ["--region", a.region.code]
    cycle_file = tmp_path / "zy.yaml"
    cycle_file.write_text(b_cycle_file(b), encoding="utf-8")
    runner = app.test_cli_runner()
    yes = ["--yes"] if "--yes" in _options(commands.get("import-cycle")) else []
    cases = {
        "status": ["fazhi", "status", str(b.work.cycle.id), *ra],
        "export": ["fazhi", "export", str(b.published.cycle.id), "--format", "txt", "-o", str(tmp_path / "x.txt"), *ra],
        "transition (contribution)": ["fazhi", "transition", "--user", a.people.liaison.username, "--contribution",
                                      str(b.work.contributions["draft"].id), *ra, "submit"],
        "transition (reviewer)": ["fazhi", "transition", "--user", a.people.reviewer.username, "--contribution",
                                  str(b.work.contributions["submitted"].id), *ra, "approve"],
        "transition (cycle)": ["fazhi", "transition", "--user", a.people.admin.username, "--cycle",
                               str(b.work.cycle.id), *ra, "compile"],
        "import-cycle": ["fazhi", "import-cycle", str(cycle_file), *ra, *yes],
        "import-cycle --as": ["fazhi", "import-cycle", str(cycle_file), *yes, "--as", a.people.admin.username],
    }
    refused = {}
    for label, args in cases.items():
        if label.split(" ")[0] in without:
            args = [x for x in args if x not in ra]
        if "--as" in args and "--as" not in _options(commands.get("import-cycle")):
            continue
        code, output = _run(runner, args)
        refused[label] = (code, output[:200])
    # create-user in A with the code both counties use: the unit must be A's "gaj", never B's.
    code, output = _run(runner, ["fazhi", "create-user", "hs_new_gaj", "--name", "新联络员", "--role", "liaison",
                                 "--unit", "gaj", "--password", "secret-Pass1-long", *ra])
    db.session.expire_all()
    from .isolation_world import user_by_name

    created = user_by_name(db, "hs_new_gaj")
    changes = row_changes(b_before, region_rows(db, b.region.id))
    problems = [f"no --region option: {name}" for name in without]
    problems += [f"{label}: exit code 0 (accepted): {r[1]}" for label, r in refused.items() if r[0] == 0]
    if (tmp_path / "x.txt").exists() and B_MARK.encode() in (tmp_path / "x.txt").read_bytes():
        problems.append("export wrote 资阳区's report for 赫山区")
    if created is None or created.unit is None or created.unit.region_id != a.region.id:
        problems.append(f"create-user --unit gaj for 赫山区: {code} {output[:200]}")
    problems += [f"{label}: no Chinese reason or a traceback: {output}" for label, (code, output) in refused.items()
                 if code != 0 and ("Traceback" in output or not re.search(r"[\u4e00-\u9fff]", output))]
    problems += [f"B changed: {c}" for c in changes[:40]]
    assert not problems, "\n".join(problems)


# Commands that name an object or a region, and where this file tries them.
CLI_COVERED = {"import-cycle", "create-user", "status", "transition", "export", "remind", "audit"}
CLI_ID_PARAMS = {"cycle", "cycle_arg", "contribution_id", "unit", "username", "region_code", "user_id", "region"}


def test_cli_outputs_for_a_county_show_none_of_the_others(app, db, iso):
    """Listing commands with ``--region`` A (and, for the audit log, B's user asked for): nothing of B."""
    b = iso.b
    due_eve = (b.work.cycle.due - timedelta(days=1)).isoformat() + "T10:00+08:00"
    runner = app.test_cli_runner()
    cases = {
        "audit": ["fazhi", "audit", "--region", iso.a.region.code, "--since", "2020-01-01"],
        "audit --user (B's)": ["fazhi", "audit", "--region", iso.a.region.code, "--since", "2020-01-01",
                               "--user", b.people.admin.username],
        "remind --dry-run": ["fazhi", "remind", "--dry-run", "--region", iso.a.region.code, "--at", due_eve],
    }
    problems = []
    for label, args in cases.items():
        code, output = _run(runner, args)
        if code not in (0, 1, 2) or "Traceback" in output:
            problems.append(f"{label}: exit {code}: {output[:300]}")
        if B_MARK in output or B_LOGIN + "_" in output:
            problems.append(f"{label}: shows 资阳区's names: {output[:300]}")
    code, output = _run(runner, cases["audit"])
    if iso.a.people.admin.username not in output:
        problems.append(f"audit --region {iso.a.region.code} does not show 赫山区's own events: {output[:300]}")
    assert not problems, "\n".join(problems)


def test_every_cli_command_with_an_id_or_a_region_is_tried(app):
    """A new command taking an id or ``--region`` fails here until this file tries it."""
    untried = [name for name, command in _cli_commands(app).items() if name not in CLI_COVERED
               and ({p.name for p in command.params} & CLI_ID_PARAMS or "--region" in _options(command))]
    assert not untried, f"commands with ids or --region not tried by the isolation tests: {untried}"


def test_the_walk_reaches_every_rule(app, iso):
    """Guard: each rule is filled by the mapping (a new variable name fails here first)."""
    unmapped = set()
    for rule, _ in _rules(app):
        _urls(rule, _contexts(iso.b), unmapped)
    assert not unmapped, sorted(unmapped)

