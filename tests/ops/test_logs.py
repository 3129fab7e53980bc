"""Log lines: one per request, per job run and per refused login; text or JSON; no secrets in any."""
from __future__ import annotations

import json
import logging
import re
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from fazhi_flow import create_app
from fazhi_flow.extensions import db as _db
from fazhi_flow.models.ops import JobStatus
from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.ops import logs
from fazhi_flow.reminders.scheduler import run_deliver, run_job, run_sweep

RIGHT_PASSWORD = "Rt-9xQ!long-secret-pw"
WRONG_PASSWORD = "Wr0ng-guess-!7zz"
NEW_PASSWORD = "N3w-Secret-Pass-!!88-unique"
SMTP_PASSWORD = "smtp-Pa55-secret-4410"
BODY_MARKER = "正文机密-BODY-7731"
QUERY_TOKEN = "QSECRET123abc"


def _lines(text: str, event: str) -> list[str]:
    return [line for line in text.splitlines() if f": {event} " in line]


def _field(line: str, key: str) -> str:
    match = re.search(rf"(?:^| ){key}=(\"(?:[^\"\\]|\\.)*\"|\S+)", line)
    assert match, f"{key} missing in {line!r}"
    value = match.group(1)
    return json.loads(value) if value.startswith('"') else value


@pytest.fixture()
def text_logs(app):
    """The app's own handler, in text format, at DEBUG for the test; restored afterwards."""
    logs.configure("DEBUG", "text")
    yield
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


class _Smtp:
    """A real SMTP server with AUTH; recipients ending in @refused.test get a permanent 550."""

    def __init__(self):
        self.messages, self.logins = [], []
        server = self

        class Handler:
            async def handle_RCPT(self, srv, session, envelope, address, options):
                if address.endswith("@refused.test"):
                    return "550 5.1.1 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, srv, session, envelope):
                server.messages.append(envelope.content)
                return "250 Message accepted"

        def authenticator(srv, session, envelope, mechanism, auth_data):
            server.logins.append(auth_data.login)
            return AuthResult(success=auth_data.password == SMTP_PASSWORD.encode())

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False)
        self.running = False

    def start(self):
        self.controller.start()
        self.running = True

    def stop(self):
        if self.running:
            self.controller.stop()
            self.running = False


@pytest.fixture()
def smtp_with_login(app):
    server = _Smtp()
    server.start()
    keys = ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_TIMEOUT")
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=server.port, MAIL_SECURITY="none",
                      MAIL_USERNAME="mailer", MAIL_PASSWORD=SMTP_PASSWORD, MAIL_TIMEOUT=5)
    logs.remember_secrets(SMTP_PASSWORD)  # create_app does this for the configured password
    yield server
    server.stop()
    app.config.update(saved)


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def test_no_secret_reaches_any_log_line(app, client, factory, db, capsys, caplog, text_logs,
                                        smtp_with_login):
    caplog.set_level(logging.DEBUG)
    unit = factory.unit()
    factory.user("liaison", unit=unit, username="logtester", password=RIGHT_PASSWORD)
    db.session.commit()
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        page = client.get(f"/login?next=/tasks&token={QUERY_TOKEN}").get_data(as_text=True)
        token = _csrf(page)
        wrong = client.post("/login", data={"csrf_token": token, "username": "logtester",
                                             "password": WRONG_PASSWORD})
        assert wrong.status_code == 200 and "用户名或密码不正确" in wrong.get_data(as_text=True)
        right = client.post("/login", data={"csrf_token": token, "username": "logtester",
                                             "password": RIGHT_PASSWORD})
        assert right.status_code == 302
        form = client.get("/password").get_data(as_text=True)
        changed = client.post("/password", data={"csrf_token": _csrf(form), "current": RIGHT_PASSWORD,
                                                 "new": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert changed.status_code == 302
        cookies = [c.value for c in (client.get_cookie("session"), client.get_cookie("fazhi_device")) if c]
        assert len(cookies) == 2
    finally:
        app.config["WTF_CSRF_ENABLED"] = False

    db.session.add_all([
        OutboxMessage(channel="email", address="someone@example.test", subject="测试主题",
                      body=f"{BODY_MARKER} 请查收。", cause="test"),
        OutboxMessage(channel="email", address="nobody@refused.test", subject="测试主题",
                      body=f"{BODY_MARKER} 无法送达。", cause="test"),
    ])
    db.session.commit()
    run_deliver(app)
    assert len(smtp_with_login.messages) == 1 and smtp_with_login.logins  # really logged in, really sent

    output = capsys.readouterr().err + caplog.text
    for secret in (RIGHT_PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, SMTP_PASSWORD, BODY_MARKER, QUERY_TOKEN,
                   token, app.config["SECRET_KEY"], *cookies):
        assert secret not in output, f"a secret reached the log: {secret[:6]}…"
    # ... while the lines themselves are there.
    [refused] = _lines(output, "login_refused")[:1]
    assert _field(refused, "user") == "logtester" and _field(refused, "reason") == "bad_credentials"
    assert _field(refused, "ip") == "127.0.0.1"
    [login_page] = [line for line in _lines(output, "request") if "path=/login" in line and "method=GET" in line][:1]
    assert "?" not in _field(login_page, "path")
    [deliver_line] = _lines(output, "job")[:1]
    assert _field(deliver_line, "name") == "deliver"
    assert (_field(deliver_line, "sent"), _field(deliver_line, "dead")) == ("1", "1")
    reasons = _field(deliver_line, "dead_reasons")
    assert "收件人被拒绝" in reasons and " | " not in reasons  # one dead message, its reason


    # While the mail server cannot be reached the line says so (retried, with the reason).
    db.session.add(OutboxMessage(channel="email", address="later@example.test", subject="测试主题",
                                 body=f"{BODY_MARKER} 稍后重试。", cause="test"))
    db.session.commit()
    smtp_with_login.stop()
    run_deliver(app)
    output = capsys.readouterr().err
    [retry_line] = _lines(output, "job")
    assert _field(retry_line, "retried") == "1" and "dead_reasons" not in retry_line
    assert "无法连接邮件服务器" in _field(retry_line, "retry_reasons")
    assert BODY_MARKER not in output and SMTP_PASSWORD not in output


def test_request_line_has_method_path_status_duration_user_and_request_id(app, client, world, capsys,
                                                                          text_logs):
    from fazhi_flow.testing import login

    login(client, world.liaison)
    capsys.readouterr()
    response = client.get("/?page=2", headers={"X-Request-ID": "lb-7f3a.2"})
    assert response.headers["X-Request-ID"] == "lb-7f3a.2"
    [line] = _lines(capsys.readouterr().err, "request")
    assert _field(line, "method") == "GET" and _field(line, "path") == "/"
    assert _field(line, "status") == str(response.status_code)
    assert float(_field(line, "duration_ms")) >= 0
    assert _field(line, "user") == str(world.liaison.id)
    assert _field(line, "request_id") == "lb-7f3a.2"

    # An unusable id (spaces, markup, too long) is replaced by a fresh one, echoed as well.
    odd = client.get("/healthz", headers={"X-Request-ID": "x y <Injected> " + "z" * 80})
    fresh = odd.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    [probe] = _lines(capsys.readouterr().err, "request")
    assert "DEBUG" in probe and _field(probe, "request_id") == fresh and _field(probe, "user") == "-"
    assert "Injected" not in probe

    # Anonymous, unknown page: user "-", status 404, and still exactly one line.
    client.post("/logout", data={})
    capsys.readouterr()
    missing = client.get("/no-such-page")
    [line] = _lines(capsys.readouterr().err, "request")
    assert _field(line, "status") == "404" == str(missing.status_code)


def test_refused_login_line_shortens_and_cleans_what_was_typed(app, client, db, capsys, text_logs):
    typed = "admin\nFAKE level=ERROR " + "x" * 100
    client.post("/login", data={"username": typed[:60], "password": WRONG_PASSWORD})
    [line] = _lines(capsys.readouterr().err, "login_refused")
    assert "WARNING fazhi_flow.auth" in line
    user = _field(line, "user")
    assert len(user) <= 40 and "\n" not in user and user.startswith("adminFAKE")
    assert _field(line, "reason") == "bad_credentials"
    assert WRONG_PASSWORD not in line


def test_json_format_one_object_per_line(app, db, monkeypatch, capsys):
    monkeypatch.setenv("FAZHI_LOG_FORMAT", "json")
    monkeypatch.setenv("FAZHI_LOG_LEVEL", "debug")
    other = create_app("testing")
    try:
        capsys.readouterr()
        other.test_client().get("/login?token=abc12345", headers={"X-Request-ID": "req-1"})
        other.test_client().get("/healthz")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
        requests = [line for line in lines if line.get("event") == "request"]
        assert [r["path"] for r in requests] == ["/login", "/healthz"]
        first = requests[0]
        assert first["method"] == "GET" and first["status"] == 200 and first["request_id"] == "req-1"
        assert first["user"] == "-" and first["level"] == "INFO" and first["logger"] == "fazhi_flow.request"
        assert isinstance(first["duration_ms"], float) and first["time"].endswith("+08:00")
        assert requests[1]["level"] == "DEBUG"
    finally:
        with other.app_context():
            _db.engine.dispose()
        logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def test_bad_log_settings_stop_the_start_with_a_message(monkeypatch):
    monkeypatch.setenv("FAZHI_LOG_FORMAT", "xml")
    with pytest.raises(RuntimeError, match="FAZHI_LOG_FORMAT 必须是 text 或 json"):
        create_app("testing")
    monkeypatch.setenv("FAZHI_LOG_FORMAT", "text")
    monkeypatch.setenv("FAZHI_LOG_LEVEL", "LOUD")
    with pytest.raises(RuntimeError, match="FAZHI_LOG_LEVEL 必须是"):
        create_app("testing")


def test_one_handler_however_often_the_app_is_built(app, text_logs):
    for _ in range(3):
        create_app("testing")
    tree = logging.getLogger("fazhi_flow")
    assert sum(1 for h in tree.handlers if getattr(h, "_fazhi_ops", False)) == 1
    assert tree.propagate  # pytest's caplog and any root handler still see the records


def test_root_console_handler_does_not_print_our_lines_twice(app, client, db, capsys, text_logs):
    """alembic's logging set-up (`db upgrade` before the demo serves) puts a console handler on the
    root logger; our lines still appear once."""
    import sys

    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("ROOT %(message)s"))
    root.addHandler(console)
    try:
        client.get("/login")
        logging.getLogger("alembic.runtime").warning("kept")
        err = capsys.readouterr().err
    finally:
        root.removeHandler(console)
    assert len(_lines(err, "request")) == 1 and "ROOT request" not in err
    assert "ROOT kept" in err  # other loggers' lines are untouched


def test_job_lines_and_status_rows(app, factory, db, capsys, caplog, text_logs):
    w = factory.world()
    db.session.commit()
    run_sweep(app)
    [line] = _lines(capsys.readouterr().err, "job")
    assert _field(line, "name") == "sweep" and _field(line, "ok") == "True"
    assert int(_field(line, "duration_ms")) >= 0 and _field(line, "skipped").isdigit()
    queued = int(_field(line, "queued"))
    row = db.session.get(JobStatus, "sweep")
    assert row.ok and row.summary["queued"] == queued and row.error is None
    assert w.cycle.id  # the world exists; whether reminders are due depends on today's date

    def failing(now):
        raise RuntimeError(f"connection to smtp://mailer:{SMTP_PASSWORD}@host failed")

    logs.remember_secrets(SMTP_PASSWORD)
    db.session.rollback()  # SQLite: the job's own session must get the write lock
    run_job(app, "deliver", failing, lambda result: {})
    err = capsys.readouterr().err
    [line] = _lines(err, "job")
    assert "ERROR" in line and _field(line, "ok") == "False"
    assert "Traceback" in err and "RuntimeError: connection to smtp://mailer:***@host" in err
    assert SMTP_PASSWORD not in err and SMTP_PASSWORD not in caplog.text
    db.session.expire_all()
    row = db.session.get(JobStatus, "deliver")
    assert row.ok is False and row.error.startswith("RuntimeError: connection to smtp://mailer:***@host")
    assert SMTP_PASSWORD not in row.error


def test_redact_blanks_url_credentials_and_remembered_secrets():
    logs.remember_secrets("remembered-secret-value", "", None, "ab")
    text = logs.redact("POST https://oapi.example.test/robot/send?access_token=abc123&sign=zz9 "
                       "remembered-secret-value ab request_id=keep")
    assert "abc123" not in text and "zz9" not in text and "remembered-secret-value" not in text
    assert "access_token=***" in text and " ab " in text and "request_id=keep" in text


def test_lines_from_threads_name_no_request(app, capsys, text_logs):
    # A line written outside any request (a scheduler thread) carries no request id.
    thread = threading.Thread(target=lambda: logging.getLogger("fazhi_flow.x").warning("outside"))
    thread.start()
    thread.join()
    [line] = [line for line in capsys.readouterr().err.splitlines() if "outside" in line]
    assert "request_id" not in line


def test_werkzeug_request_lines_are_left_to_ours(app):
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1,
                               '127.0.0.1 - - [01/Jan/2025 00:00:00] "%s" %s %s',
                               ("GET /?token=x HTTP/1.1", "200", "-"), None)
    assert not logging.getLogger("werkzeug").filter(record)
    banner = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, " * Running on %s", ("x",), None)
    assert logging.getLogger("werkzeug").filter(banner)

