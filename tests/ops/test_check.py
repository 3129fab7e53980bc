"""``fazhi-flow check`` run as a user runs it: a separate process, configured only by FAZHI_* variables,
against a real SMTP server (aiosmtpd), real databases (SQLite files, or private PostgreSQL databases when
FAZHI_TEST_DATABASE_URL is set) and a real read-only upload folder."""
from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL_ENV = "FAZHI_TEST_DATABASE_URL"
IN_CI = os.environ.get("CI", "").lower() == "true"
CLI = [sys.executable, "-c", "from fazhi_flow.cli import main; main()"]
STRONG_KEY = "k" * 48


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def new_database(tmp_path_factory):
    """Makes empty databases: SQLite files, or private PostgreSQL databases dropped afterwards."""
    base = os.environ.get(PG_URL_ENV)
    created: list[str] = []
    admin = create_engine(base, isolation_level="AUTOCOMMIT") if base else None

    def make() -> str:
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'fazhi.db'}"
        name = f"fazhi_check_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class _Smtp:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_port():
    controller = Controller(_Smtp(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller.port
    controller.stop()


def _env(tmp_path, database_url, smtp_port, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env.update(
        FAZHI_ENV="production",
        FAZHI_SECRET_KEY=STRONG_KEY,
        FAZHI_DATABASE_URL=database_url,
        FAZHI_INSTANCE_PATH=str(tmp_path / "instance"),
        FAZHI_UPLOAD_FOLDER=str(tmp_path / "uploads"),
        FAZHI_MAIL_HOST="127.0.0.1",
        FAZHI_MAIL_PORT=str(smtp_port),
        FAZHI_BASE_URL="https://fazhi.example.test",
    )
    env.update(overrides)
    return env


def _cli(env, *args, command=None):
    proc = subprocess.run((command or []) + CLI + list(args), env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def check(env, command=None):
    """Run the check: in this process (the same click command, environment given as the user's), or
    in a separate process when ``command`` wraps it (a private mount namespace)."""
    if command is None:
        from click.testing import CliRunner

        from fazhi_flow.ops.check import check_command

        given = {k: v for k, v in env.items() if k.startswith("FAZHI_")}
        result = CliRunner().invoke(check_command, ["--timeout", "3"],
                                    env={**{k: None for k in os.environ if k.startswith("FAZHI_")}, **given})
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        code, stdout = result.exit_code, result.output
    else:
        proc = _cli(env, "check", "--timeout", "3", command=command)
        code, stdout = proc.returncode, proc.stdout
    lines = {}
    for line in stdout.splitlines():
        if line.startswith("[") and "：" in line:
            level, rest = line[1:].split("] ", 1)
            name, _ = rest.split("：", 1)
            lines.setdefault(name, []).append((level, line))
    return code, lines, stdout


def level_of(lines, name) -> str:
    assert name in lines, f"no line for {name}: {lines}"
    return lines[name][0][0]


@pytest.fixture(scope="module")
def upgraded(new_database, smtp_port, tmp_path_factory):
    """A database at the migration head, shared by the tests that only read it."""
    url = new_database()
    tmp = tmp_path_factory.mktemp("upgraded")
    proc = _cli(_env(tmp, url, smtp_port), "db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    return url


def test_a_sound_configuration_passes(tmp_path, upgraded, smtp_port):
    (tmp_path / "uploads").mkdir()
    code, lines, out = check(_env(tmp_path, upgraded, smtp_port))
    assert code == 0, out
    for name in ("运行环境", "密钥", "数据库结构", "上传目录", "邮件服务器", "群机器人", "网址"):
        assert level_of(lines, name) == "OK", out
    # SQLite works but is not what a production deployment should use.
    assert level_of(lines, "数据库") == ("警告" if upgraded.startswith("sqlite") else "OK"), out
    assert "错误" not in out.split("共检查")[0], out
    assert f"127.0.0.1:{smtp_port}" in out and "0 项错误" in out


def test_smtp_server_not_listening_is_an_error(tmp_path, upgraded, smtp_port):
    closed = _free_port()
    code, lines, out = check(_env(tmp_path, upgraded, smtp_port, FAZHI_MAIL_PORT=str(closed)))
    assert code == 1, out
    assert level_of(lines, "邮件服务器") == "错误" and f"127.0.0.1:{closed}" in out, out
    assert "FAZHI_MAIL_HOST" in out  # what to do
    assert level_of(lines, "数据库结构") == "OK"  # the other items are still checked


def test_broken_database_urls(tmp_path, smtp_port):
    closed = _free_port()
    env = _env(tmp_path, f"postgresql://fazhi:pw-never-printed@127.0.0.1:{closed}/fazhi", smtp_port)
    code, lines, out = check(env)
    assert code == 1 and level_of(lines, "数据库") == "错误", out
    assert "无法连接" in out and "pw-never-printed" not in out and "FAZHI_DATABASE_URL" in out, out
    assert level_of(lines, "邮件服务器") == "OK"  # checked all the same

    code, lines, out = check(_env(tmp_path, "nonsense-scheme://fazhi:pw-never-printed@whatever", smtp_port))
    assert code == 1 and level_of(lines, "数据库") == "错误" and "无法使用" in out, out
    assert "pw-never-printed" not in out
    assert level_of(lines, "上传目录") == "OK", out

    missing = tmp_path / "nowhere" / "fazhi.db"
    code, lines, out = check(_env(tmp_path, f"sqlite:///{missing}", smtp_port))
    assert code == 1 and level_of(lines, "数据库") == "错误", out
    assert str(missing) in out and "fazhi-flow db upgrade" in out
    assert not missing.exists()  # the check creates nothing


def test_database_behind_the_migrations(tmp_path, new_database, smtp_port):
    from alembic.script import ScriptDirectory

    from fazhi_flow import resource_dir

    script = ScriptDirectory(str(resource_dir("migrations")))
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    url = new_database()
    env = _env(tmp_path, url, smtp_port)
    if url.startswith("sqlite"):
        sqlite3.connect(make_url(url).database).close()  # an empty file, as a failed first start leaves
    code, lines, out = check(env)
    assert code == 1 and level_of(lines, "数据库结构") == "错误" and "数据库是空的" in out, out

    assert _cli(env, "db", "upgrade", previous).returncode == 0
    code, lines, out = check(env)
    assert code == 1 and level_of(lines, "数据库结构") == "错误", out
    assert f"当前 {previous}，最新 {head}" in out and "fazhi-flow db upgrade" in out, out
    assert level_of(lines, "数据库") in ("OK", "警告")

    assert _cli(env, "db", "upgrade").returncode == 0
    code, lines, out = check(env)
    assert level_of(lines, "数据库结构") == "OK" and code == 0, out


def _read_only_wrapper(folder) -> list[str]:
    """A prefix that runs a command with ``folder`` read-only: chmod for an ordinary user; for root
    (whom permissions don't stop) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), "true"], capture_output=True, check=False)
    _require(shutil.which("unshare") is not None and probe.returncode == 0,
             "a read-only folder for root needs unshare -m and mount (CAP_SYS_ADMIN)")
    return ["unshare", "-m", "sh", "-c", script, str(folder)]


def test_read_only_upload_folder_is_an_error(tmp_path, upgraded, smtp_port):
    folder = tmp_path / "uploads"
    folder.mkdir()
    try:
        code, lines, out = check(_env(tmp_path, upgraded, smtp_port), command=_read_only_wrapper(folder))
    finally:
        folder.chmod(0o755)
    assert code == 1 and level_of(lines, "上传目录") == "错误", out
    assert "不可写" in out and str(folder) in out, out
    assert level_of(lines, "数据库结构") == "OK"


def test_weak_secret_key_and_bad_base_url_are_errors_the_rest_is_checked(tmp_path, upgraded, smtp_port):
    (tmp_path / "uploads").mkdir()
    env = _env(tmp_path, upgraded, smtp_port, FAZHI_SECRET_KEY="short", FAZHI_BASE_URL="fazhi.example.test")
    code, lines, out = check(env)
    assert code == 1, out
    assert level_of(lines, "密钥") == "错误" and "FAZHI_SECRET_KEY" in out and "short" not in out, out
    assert level_of(lines, "网址") == "错误" and "FAZHI_BASE_URL" in out, out
    assert level_of(lines, "数据库结构") == "OK" and level_of(lines, "邮件服务器") == "OK", out

    code, lines, out = check({**env, "FAZHI_ENV": "staging"})
    assert code == 1 and level_of(lines, "运行环境") == "错误" and "production" in out, out

    # A value that does not read as a number is named; the other items are checked with the default.
    code, lines, out = check({**env, "FAZHI_MAIL_PORT": "二十五", "FAZHI_PDF_FONTS": "[1]"})
    assert code == 1 and level_of(lines, "配置") == "错误", out
    assert "FAZHI_MAIL_PORT='二十五' 不是整数" in out and "FAZHI_PDF_FONTS='[1]' 不是 JSON 对象" in out, out
    assert level_of(lines, "数据库结构") == "OK", out


def test_missing_pdf_font_is_named(tmp_path, upgraded, smtp_port):
    _require(shutil.which("fc-list") is not None, "fontconfig (fc-list) is not installed")
    (tmp_path / "uploads").mkdir()
    fonts = '{"body": "No Such Font Family XYZ"}'
    _code, lines, out = check(_env(tmp_path, upgraded, smtp_port, FAZHI_PDF_FONTS=fonts))
    assert level_of(lines, "PDF 字体") in ("警告", "错误") and "No Such Font Family XYZ" in out, out
    assert "FAZHI_PDF_FONTS" in out


class _Quiet(BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_group_robots_reachable_unreachable_and_malformed(tmp_path, upgraded, smtp_port):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    closed = _free_port()
    token = "TOKEN-NEVER-PRINTED"
    engine = create_engine(upgraded)
    rows = [("可达", f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key={token}"),
            ("端口关闭", f"http://127.0.0.1:{closed}/robot/send?access_token={token}"),
            ("域名不存在", f"https://robot.invalid/send?key={token}"),
            ("格式不对", f"ftp:/{token}")]
    try:
        with engine.begin() as conn:
            region_id = conn.execute(text(
                "INSERT INTO region (code, name, level, path, sort_order, active, created_at) "
                "VALUES ('430903', '检查区', 'county', '', 0, :t, CURRENT_TIMESTAMP) RETURNING id"),
                {"t": True}).scalar_one()
            unit_id = conn.execute(text("INSERT INTO unit (region_id, code, name, kind, sort_order, active) "
                                        "VALUES (:r, 'chk', '检查用单位', 'government', 0, :t) RETURNING id"),
                                   {"r": region_id, "t": True}).scalar_one()
            for name, url in rows:
                conn.execute(text("INSERT INTO webhook_target (unit_id, name, kind, url, active, created_at) "
                                  "VALUES (:u, :n, 'wecom', :url, :t, CURRENT_TIMESTAMP)"),
                             {"u": unit_id, "n": name, "url": url, "t": True})
        (tmp_path / "uploads").mkdir()
        code, lines, out = check(_env(tmp_path, upgraded, smtp_port))
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM webhook_target"))
            conn.execute(text("DELETE FROM unit WHERE code = 'chk'"))
        engine.dispose()
        server.shutdown()
        server.server_close()
    assert code == 1, out
    robots = {line.split("“")[1].split("”")[0]: level for level, line in lines["群机器人"]}
    assert robots == {"可达": "OK", "端口关闭": "错误", "域名不存在": "错误", "格式不对": "错误"}, out
    assert f"127.0.0.1:{closed}" in out and "robot.invalid" in out, out
    assert token not in out  # paths and queries of robot URLs carry their tokens


def test_out_of_range_numbers_and_bad_address_lists_are_listed_line_by_line(tmp_path, upgraded, smtp_port):
    """create_app refuses each of these at the first one; the check names every one and still
    checks the rest with the defaults."""
    (tmp_path / "uploads").mkdir()
    env = _env(tmp_path, upgraded, smtp_port, FAZHI_TRUSTED_PROXIES="6", FAZHI_SESSION_IDLE_MINUTES="0",
               FAZHI_SESSION_ABSOLUTE_HOURS="-1", FAZHI_SCHEDULER_STALE_SECONDS="0",
               FAZHI_METRICS_ALLOWED_IPS="127.0.0.1,10.0.0.300", FAZHI_TRUSTED_PROXY_IPS="nginx")
    code, lines, out = check(env)
    assert code == 1, out
    errors = [line for level, line in lines.get("配置", []) if level == "错误"]
    for key in ("FAZHI_TRUSTED_PROXIES='6'", "FAZHI_SESSION_IDLE_MINUTES='0'", "FAZHI_SESSION_ABSOLUTE_HOURS='-1'",
                "FAZHI_SCHEDULER_STALE_SECONDS='0'"):
        assert sum(key in line and "超出范围" in line for line in errors) == 1, (key, out)
    assert sum("FAZHI_METRICS_ALLOWED_IPS" in line and "10.0.0.300" in line for line in errors) == 1, out
    assert sum("FAZHI_TRUSTED_PROXY_IPS" in line and "nginx" in line for line in errors) == 1, out
    assert len(errors) == 6, out
    assert level_of(lines, "数据库结构") == "OK" and level_of(lines, "邮件服务器") == "OK", out
    assert "无法加载" not in out, out

    # In range: no line about them.
    code, lines, out = check({**env, "FAZHI_TRUSTED_PROXIES": "1", "FAZHI_SESSION_IDLE_MINUTES": "30",
                              "FAZHI_SESSION_ABSOLUTE_HOURS": "8", "FAZHI_SCHEDULER_STALE_SECONDS": "300",
                              "FAZHI_METRICS_ALLOWED_IPS": "127.0.0.1,10.0.0.0/24",
                              "FAZHI_TRUSTED_PROXY_IPS": "127.0.0.1,::1"})
    assert "配置" not in lines, out


@pytest.mark.parametrize("value", ["-1", "abc", "61"])
def test_bad_timeout_is_one_line_and_status_1(tmp_path, smtp_port, value):
    proc = _cli(_env(tmp_path, "sqlite://", smtp_port), "check", "--timeout", value)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--timeout" in lines[0] and "Usage" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
