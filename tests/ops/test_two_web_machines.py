"""Two web machines behind a load balancer: two real gunicorn processes on two ports, one PostgreSQL
database, ATTACHMENT_STORAGE=database, each with its own empty upload folder, the same SECRET_KEY.

People use them as a browser would (forms read from the pages, CSRF tokens included), switching
machine between steps the way nginx may: a login made on A is valid on B, an attachment uploaded on A
downloads from B, a contribution submitted on A is approved on B, and the report compiled on one is
signed and published on the other.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import fazhi_flow

PG_URL_ENV = "FAZHI_TEST_DATABASE_URL"
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "demo-pass-2024"  # the demo accounts' published password (services/demo.py)
PACKAGE_ROOT = str(Path(fazhi_flow.__file__).resolve().parent.parent)

# A small real PDF, unlike any other file in the demo.
EVIDENCE = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%% two web machines " + secrets.token_hex(8).encode() + b"\n%%EOF\n")


def _needs():
    if not os.environ.get(PG_URL_ENV):
        pytest.skip(f"needs PostgreSQL (several web machines share one database): set {PG_URL_ENV} to run it")
    if importlib.util.find_spec("gunicorn") is None:
        if IN_CI:
            pytest.fail("gunicorn is not installed in CI, where this test must run")
        pytest.skip("gunicorn is not installed (pip install gunicorn)")


# ---------------------------------------------------------------- a small browser


class Forms(HTMLParser):
    """The forms of a page: action, method, enctype and fields with the values a browser would send."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form = None
        self._textarea = None
        self._select = None
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "enctype": a.get("enctype") or "", "fields": [], "buttons": []}
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind == "submit":
                self._form["buttons"].append((name, a.get("value") or ""))
            elif kind != "file":
                self._form["fields"].append([name, a.get("value") or ""])
        elif tag == "button" and name and (a.get("type") or "submit") == "submit":
            self._form["buttons"].append((name, a.get("value") or ""))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]
            self._form["fields"].append(self._textarea)
        elif tag == "select" and name:
            self._select = [name, None]
            self._form["fields"].append(self._select)
        elif tag == "option" and self._select is not None and (self._select[1] is None or "selected" in a):
            self._select[1] = a.get("value") or ""

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


class Response:
    def __init__(self, status, headers, body, url):
        self.status, self.headers, self.body, self.url = status, headers, body, url

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def form(self, action: str) -> dict:
        """The form posting to ``action`` (a path), as the page shows it."""
        for form in Forms(self.text).forms:
            # No action attribute: the form posts to the page's own address.
            form["action"] = urllib.parse.urlsplit(urllib.parse.urljoin(self.url, form["action"])).path
            if form["action"] == action:
                return form
        raise AssertionError(f"no form posting to {action} on {self.url}: {self.text[:1500]}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One person's browser: one cookie jar, whichever machine it talks to (cookies are per host, so
    what machine A set is sent to machine B as a load balancer would)."""

    def __init__(self):
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def open(self, url: str, data: bytes | None = None, headers: dict | None = None) -> Response:
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=60) as r:
                return Response(r.status, r.headers, r.read(), url)
        except urllib.error.HTTPError as r:
            return Response(r.code, r.headers, r.read(), url)

    def get(self, url: str) -> Response:
        return self.open(url)

    def submit(self, base: str, form: dict, values: dict | None = None, button: tuple | None = None,
               files: dict | None = None) -> Response:
        """Post ``form`` to machine ``base`` with the page's own fields (CSRF token included)."""
        fields = [(name, value) for name, value in form["fields"] if value is not None]
        for name, value in (values or {}).items():
            fields = [(n, v) for n, v in fields if n != name] + [(name, value)]
        if button:
            fields.append(button)
        url = base + form["action"]
        if files or "multipart" in form["enctype"]:
            boundary = "----twoweb" + secrets.token_hex(8)
            parts = []
            for name, value in fields:
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                             .encode() + str(value).encode("utf-8") + b"\r\n")
            for name, (filename, content, ctype) in (files or {}).items():
                quoted = urllib.parse.quote(filename)
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                             f'filename="{quoted}"; filename*=UTF-8\'\'{quoted}\r\n'
                             f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        else:
            body = urllib.parse.urlencode(fields).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers["Referer"] = url
        return self.open(url, body, headers)

    def login(self, base: str, username: str) -> None:
        page = self.get(base + "/login")
        assert page.status == 200, page.text[:500]
        done = self.submit(base, page.form("/login"), {"username": username, "password": PASSWORD})
        assert done.status in (302, 303), done.text[:1500]


def _ok(response: Response) -> Response:
    assert response.status == 200, f"{response.url}: {response.status} {response.text[:2000]}"
    return response


def _moved(response: Response) -> Response:
    assert response.status in (302, 303), f"{response.url}: {response.status} {response.text[:3000]}"
    return response


# ---------------------------------------------------------------- two machines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(database_url: str, instance: Path, uploads: Path, secret: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAZHI_", "PROMETHEUS_"))}
    env.update(
        FAZHI_ENV="production", FAZHI_SECRET_KEY=secret, FAZHI_DATABASE_URL=database_url,
        FAZHI_INSTANCE_PATH=str(instance), FAZHI_UPLOAD_FOLDER=str(uploads),
        FAZHI_ATTACHMENT_STORAGE="database",
        # Plain HTTP between the test and the machines (nginx would terminate TLS).
        FAZHI_SESSION_COOKIE_SECURE="0",
        PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    )
    return env


def _command(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", "from fazhi_flow.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=300, cwd=env["FAZHI_INSTANCE_PATH"],
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Machine:
    def __init__(self, name: str, env: dict, log: Path):
        self.name, self.port = name, _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - gunicorn writes to it until stop() closes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:fazhi_flow.ops.gunicorn_conf",
             "-b", f"127.0.0.1:{self.port}", "-w", "2", "fazhi_flow:create_app()"],
            env=env, cwd=env["FAZHI_INSTANCE_PATH"], stdout=self._out, stderr=subprocess.STDOUT)

    def wait(self) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.base + "/login", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"machine {self.name} did not start:\n" + self.log.read_text("utf-8", "replace")[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture()
def machines(fresh_database_url, tmp_path):
    _needs()
    secret = secrets.token_hex(32)
    shared = tmp_path / "instance"
    shared.mkdir()
    setup_env = _env(fresh_database_url, shared, tmp_path / "setup-uploads", secret)
    _command(setup_env, "db", "upgrade")
    assert "已载入" in _command(setup_env, "demo", "--no-serve")
    started = []
    try:
        for name in ("a", "b"):
            instance, uploads = tmp_path / f"instance-{name}", tmp_path / f"uploads-{name}"
            instance.mkdir()
            uploads.mkdir()
            started.append(Machine(name, _env(fresh_database_url, instance, uploads, secret),
                                   tmp_path / f"gunicorn-{name}.log"))
        for machine in started:
            machine.wait()
        engine = create_engine(fresh_database_url)
        try:
            yield started[0], started[1], engine, [tmp_path / "uploads-a", tmp_path / "uploads-b"]
        finally:
            engine.dispose()
    finally:
        for machine in started:
            machine.stop()
    for machine in started:  # no traceback on either machine during the whole walk
        assert "Traceback" not in machine.log.read_text("utf-8", "replace"), machine.log.read_text("utf-8")[-4000:]


def _scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_two_machines_share_logins_attachments_review_and_publishing(machines):
    a, b, engine, upload_folders = machines
    assert make_url(str(engine.url)).get_backend_name() == "postgresql"
    cycle_id = _scalar(engine, "SELECT id FROM report_cycle")
    contribution_id = _scalar(engine, """
        SELECT c.id FROM contribution c JOIN section s ON s.id = c.section_id JOIN unit u ON u.id = c.unit_id
        WHERE s.code = 'measures.enforcement' AND u.code = 'scjgj'""")
    assert _scalar(engine, "SELECT state FROM contribution WHERE id = :i", i=contribution_id) == "draft"

    # The liaison logs in on A and uploads there.
    liaison = Browser()
    liaison.login(a.base, "scjgj")
    editor = _ok(liaison.get(f"{a.base}/tasks/{contribution_id}"))
    body = "一是开展市场监管领域执法检查。全年检查经营主体320家，依法查处违法案件45件。"
    _moved(liaison.submit(a.base, editor.form(f"/tasks/{contribution_id}"), {"body": body},
                          button=("action", "upload"),
                          files={"file": ("执法检查记录.pdf", EVIDENCE, "application/pdf")}))
    attachment_id, stored_name = (None, None)
    with engine.connect() as conn:
        attachment_id, stored_name, sha = conn.execute(text(
            "SELECT id, stored_name, sha256 FROM attachment WHERE contribution_id = :c"), {"c": contribution_id}).one()
        blob = conn.execute(text("SELECT content FROM attachment_blob WHERE stored_name = :n"),
                            {"n": stored_name}).scalar()
    assert bytes(blob) == EVIDENCE and sha == hashlib.sha256(EVIDENCE).hexdigest()
    assert f"/tasks/attachments/{attachment_id}" in _ok(liaison.get(f"{a.base}/tasks/{contribution_id}")).text

    # The same browser on B: the login made on A holds (signed cookie + session row in the database).
    assert _ok(liaison.get(f"{b.base}/tasks/")).status == 200
    download = _ok(liaison.get(f"{b.base}/tasks/attachments/{attachment_id}"))
    assert download.body == EVIDENCE
    assert download.headers["Content-Type"] == "application/pdf"
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["ETag"] == f'"{sha}"'
    # ... and without that cookie B does not serve it.
    stranger = Browser().get(f"{b.base}/tasks/attachments/{attachment_id}")
    assert stranger.status in (302, 303) and "/login" in stranger.headers["Location"]

    # Submitted on A (the page shows the problems first, then the button).
    confirm = _ok(liaison.get(f"{a.base}/tasks/{contribution_id}/submit"))
    _moved(liaison.submit(a.base, confirm.form(f"/tasks/{contribution_id}/submit")))
    assert _scalar(engine, "SELECT state FROM contribution WHERE id = :i", i=contribution_id) == "submitted"

    # The reviewer logs in on B, sees the evidence, approves there.
    reviewer = Browser()
    reviewer.login(b.base, "reviewer")
    review = _ok(reviewer.get(f"{b.base}/review/{contribution_id}"))
    assert f"/tasks/attachments/{attachment_id}" in review.text and "执法检查记录.pdf" in review.text
    assert _ok(reviewer.get(f"{a.base}/tasks/attachments/{attachment_id}")).body == EVIDENCE
    _moved(reviewer.submit(b.base, review.form(f"/review/{contribution_id}/approve")))
    assert _scalar(engine, "SELECT state FROM contribution WHERE id = :i", i=contribution_id) == "approved"

    # The administrator compiles on A (the demo still has units drafting: a forced compile with a
    # reason), asks for sign-off on B; the leader signs on A; the administrator publishes on B.
    admin = Browser()
    admin.login(a.base, "admin")
    cycle_page = _ok(admin.get(f"{a.base}/admin/cycles/{cycle_id}"))
    _moved(admin.submit(a.base, cycle_page.form(f"/admin/cycles/{cycle_id}/compile"),
                        {"compile-reason": "演示数据中仍有单位未报送，按期汇总。"}))
    assert _scalar(engine, "SELECT state FROM report_cycle WHERE id = :i", i=cycle_id) == "compiling"
    compile_page = _ok(admin.get(f"{b.base}/compile/{cycle_id}"))
    assert "市场监管领域执法检查" in compile_page.text
    _moved(admin.submit(b.base, compile_page.form(f"/compile/{cycle_id}/request-signoff")))
    assert _scalar(engine, "SELECT state FROM report_cycle WHERE id = :i", i=cycle_id) == "signoff", \
        _ok(admin.get(f"{b.base}/compile/{cycle_id}")).text[:6000]

    leader = Browser()
    leader.login(a.base, "leader")
    signoff = _ok(leader.get(f"{a.base}/compile/{cycle_id}/signoff"))
    _moved(leader.submit(a.base, signoff.form(f"/compile/{cycle_id}/sign"), {"comment": "同意发布"}))
    assert _scalar(engine, "SELECT state FROM report_cycle WHERE id = :i", i=cycle_id) == "signed"

    edit = _ok(admin.get(f"{b.base}/compile/{cycle_id}"))
    _moved(admin.submit(b.base, edit.form(f"/compile/{cycle_id}/publish")))
    assert _scalar(engine, "SELECT state FROM report_cycle WHERE id = :i", i=cycle_id) == "published"
    with engine.connect() as conn:
        publication_id, docx_sha = conn.execute(text(
            "SELECT id, docx_sha256 FROM publication WHERE cycle_id = :c"), {"c": cycle_id}).one()

    # Anybody reads it from either machine, byte for byte the same.
    public = Browser()
    for machine in (a, b):
        listing = _ok(public.get(f"{machine.base}/reports/"))
        assert docx_sha in listing.text
        docx = _ok(public.get(f"{machine.base}/reports/{publication_id}/report.docx?download=1"))
        assert hashlib.sha256(docx.body).hexdigest() == docx_sha
        assert "市场监管领域执法检查" in _ok(public.get(f"{machine.base}/reports/{publication_id}")).text

    # Nothing was written to either machine's own disk: the attachment lives in the database only.
    for folder in upload_folders:
        assert not any(folder.rglob("*")), f"{folder} is not empty"
