"""The files in deploy/: the systemd units' ExecStart commands are run exactly as written (with the
environment file template's values and the units' paths moved into a temporary folder), the environment
file names only real settings, and the nginx site passes ``nginx -t``."""
from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WEB_UNIT = DEPLOY / "fazhi-flow-web.service"
SCHEDULER_UNIT = DEPLOY / "fazhi-flow-scheduler.service"
ENV_EXAMPLE = DEPLOY / "fazhi-flow.env.example"
NGINX_SITE = DEPLOY / "nginx-fazhi-flow.conf"
VENV = "/opt/fazhi/venv"
PG_URL_ENV = "FAZHI_TEST_DATABASE_URL"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"CI must run this test: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- reading the files as systemd does


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists: comments, blank lines, continuation lines."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}: {line!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(sections, section: str, key: str) -> str:
    values = [v for k, v in sections[section] if k == key]
    assert len(values) == 1, f"{key} in [{section}]: {values}"
    return values[0]


def parse_env_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile= rules for the lines used here: KEY=VALUE, optional quotes, # comments."""
    env = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", line), f"not KEY=VALUE: {line!r}"
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        assert " " not in value or raw.split("=", 1)[1][0] in "'\"", f"unquoted space in {key}"
        env[key] = value
    return env


# ---------------------------------------------------------------- a temporary "machine"


class Machine:
    """The units' paths mapped into a temporary folder; the venv is the one running the tests."""

    def __init__(self, root: Path, database_url: str):
        self.root = root
        self.paths = {
            VENV: sys.prefix,
            "/etc/fazhi": str(root / "etc"),
            "/var/lib/fazhi": str(root / "state"),
            "/var/cache/fazhi": str(root / "cache"),
            "/run/fazhi-flow-web": str(root / "run"),
        }
        for path in list(self.paths.values())[1:]:
            Path(path).mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.database_url = database_url

    def move(self, value: str) -> str:
        for old, new in self.paths.items():
            value = value.replace(old, new)
        return value

    def environment(self, sections) -> dict[str, str]:
        """What systemd gives the service: the env file (template values, with a real key, the test
        database, a free port) plus the unit's Environment= lines."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAZHI_", "PROMETHEUS_"))}
        assert unit_value(sections, "Service", "EnvironmentFile") == "/etc/fazhi/fazhi-flow.env"
        values = {k: self.move(v) for k, v in parse_env_file(ENV_EXAMPLE).items()}
        values.update(FAZHI_SECRET_KEY=secrets.token_hex(32), FAZHI_DATABASE_URL=self.database_url,
                      FAZHI_WEB_BIND=f"127.0.0.1:{self.port}", FAZHI_WEB_WORKERS="1",
                      FAZHI_MAIL_HOST="127.0.0.1", FAZHI_MAIL_PORT=str(_free_port()))
        env.update(values)
        for key, value in sections["Service"]:
            if key == "Environment":
                name, val = value.split("=", 1)
                env[name] = self.move(val)
        return env

    def command(self, sections) -> list[str]:
        argv = shlex.split(self.move(unit_value(sections, "Service", "ExecStart")))
        assert Path(argv[0]).is_file(), f"{argv[0]} (installed by pip into the venv)"
        return argv

    def cwd(self, sections) -> str:
        return self.move(unit_value(sections, "Service", "WorkingDirectory"))


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'fazhi.db'}"
        return
    name = f"fazhi_deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def machine(tmp_path_factory, database_url):
    """One upgraded database and folder layout for both services (they share them in production too)."""
    tmp_path = tmp_path_factory.mktemp("machine")
    machine = Machine(tmp_path, database_url)
    # What the administrator runs before starting the services (README): the same environment.
    env = machine.environment(parse_unit(SCHEDULER_UNIT))
    upgrade = subprocess.run([str(Path(sys.prefix) / "bin" / "fazhi-flow"), "db", "upgrade"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    return machine


def _stop(proc: subprocess.Popen, sections) -> int:
    """Stop as systemd does: SIGTERM, then wait up to TimeoutStopSec."""
    limit = int(unit_value(sections, "Service", "TimeoutStopSec"))
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args[0]} did not stop within TimeoutStopSec={limit}")


# ---------------------------------------------------------------- the tests


def test_unit_files_agree_with_each_other_and_the_environment_file():
    web, scheduler = parse_unit(WEB_UNIT), parse_unit(SCHEDULER_UNIT)
    env = parse_env_file(ENV_EXAMPLE)
    for sections in (web, scheduler):
        assert set(sections) == {"Unit", "Service", "Install"}
        assert unit_value(sections, "Service", "User") == "fazhi"
        assert unit_value(sections, "Service", "EnvironmentFile") == "/etc/fazhi/fazhi-flow.env"
        # The instance folder (uploads) is the one writable place under ProtectSystem=strict.
        assert unit_value(sections, "Service", "ProtectSystem") == "strict"
        assert env["FAZHI_INSTANCE_PATH"] in unit_value(sections, "Service", "ReadWritePaths").split()
        assert "/var/lib/" + unit_value(sections, "Service", "StateDirectory") == env["FAZHI_INSTANCE_PATH"]
    assert unit_value(web, "Service", "Type") == "notify"
    assert shlex.split(unit_value(web, "Service", "ExecStart"))[:3] == [
        f"{VENV}/bin/gunicorn", "-c", "python:fazhi_flow.ops.gunicorn_conf"]
    assert shlex.split(unit_value(scheduler, "Service", "ExecStart")) == [f"{VENV}/bin/fazhi-flow", "scheduler"]
    assert unit_value(scheduler, "Service", "Restart") == "always"


def test_environment_file_names_only_real_settings():
    from fazhi_flow.settings import Config, ProductionConfig

    known = {name for name in dir(ProductionConfig) if name.isupper()}
    # Read outside the settings classes: by gunicorn_conf (FAZHI_WEB_*), by the production class
    # body (SESSION_COOKIE_SECURE), by create_app (INSTANCE_PATH, ENV), by the mailer and the calendar.
    # Read, not imported: importing the gunicorn config sets PROMETHEUS_MULTIPROC_DIR in this process.
    conf = Path(importlib.util.find_spec("fazhi_flow.ops.gunicorn_conf").origin).read_text(encoding="utf-8")
    gunicorn_settings = set(re.findall(r'"FAZHI_(WEB_[A-Z_]+)"', conf))
    known |= gunicorn_settings | {"ENV", "INSTANCE_PATH", "SESSION_COOKIE_SECURE", "MAIL_SENDER_NAME",
                                  "MAIL_CA_FILE", "EXTRA_HOLIDAYS", "EXTRA_WORKDAYS"}
    text_ = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#?FAZHI_([A-Z0-9_]+)=", text_, flags=re.MULTILINE))
    assert named - known == set(), "settings in the environment file that nothing reads"
    env = parse_env_file(ENV_EXAMPLE)
    for required in ("ENV", "SECRET_KEY", "DATABASE_URL", "INSTANCE_PATH", "BASE_URL", "TRUSTED_PROXIES",
                     "WEB_BIND", "MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_SENDER"):
        assert f"FAZHI_{required}" in env, required
    assert env["FAZHI_ENV"] == "production" and env["FAZHI_TRUSTED_PROXIES"] == "1"
    assert env["FAZHI_BASE_URL"].startswith("https://")
    # The template's key is a placeholder the application refuses: nobody runs with a published key.
    from fazhi_flow import _check_secret_key

    with pytest.raises(RuntimeError):
        _check_secret_key(env["FAZHI_SECRET_KEY"], Config.SECRET_KEY)


def test_nginx_site_passes_the_headers_trusted_proxies_reads_and_nginx_accepts_it(tmp_path):
    site = NGINX_SITE.read_text(encoding="utf-8")
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_set_header Host $host;" in site
    assert re.search(r"^\s*server 127\.0\.0\.1:8000;", site, flags=re.MULTILINE)
    assert len(re.findall(r"^\s*# server \d+\.\d+\.\d+\.\d+:8000", site, flags=re.MULTILINE)) == 2  # the LB layout
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    openssl = shutil.which("openssl")
    _require(nginx is not None and openssl is not None, "nginx -t needs nginx (apt-get install nginx-light) "
                                                        "and openssl")
    crt, key = tmp_path / "site.crt", tmp_path / "site.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=fazhi.example.gov.cn", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    site = (site.replace("/etc/nginx/tls/fazhi.example.gov.cn.crt", str(crt))
                .replace("/etc/nginx/tls/fazhi.example.gov.cn.key", str(key)))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n", encoding="utf-8")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_systemd_accepts_the_unit_files(tmp_path):
    analyze = shutil.which("systemd-analyze")
    _require(analyze is not None, "systemd-analyze (package systemd) is not installed")
    machine = Machine(tmp_path / "m", "sqlite://")
    copies = []
    for unit in (WEB_UNIT, SCHEDULER_UNIT):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text(encoding="utf-8").replace(VENV, machine.paths[VENV]), encoding="utf-8")
        copies.append(str(copy))
    result = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=60, check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if any(Path(c).name in line for c in copies)]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_web_unit_command_serves_pages_and_tells_systemd_it_is_ready(machine):
    sections = parse_unit(WEB_UNIT)
    env = machine.environment(sections)
    # Type=notify: gunicorn sends READY=1 to $NOTIFY_SOCKET once it listens.
    notify_path = machine.root / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    env["NOTIFY_SOCKET"] = str(notify_path)
    log = open(machine.root / "web.log", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(machine.command(sections), env=env, cwd=machine.cwd(sections), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        message = notify.recv(4096).decode()
        assert "READY=1" in message
        base = f"http://127.0.0.1:{machine.port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            try:
                status, page = _get(base + "/login")
                break
            except OSError:
                assert proc.poll() is None, (machine.root / "web.log").read_text()
                time.sleep(0.3)
        assert status == 200 and "登录" in page, (machine.root / "web.log").read_text()
        assert _get(base + "/healthz")[0] == 200
        # The metric files go where the unit's Environment= puts them (its RuntimeDirectory).
        assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
        assert env["PROMETHEUS_MULTIPROC_DIR"].startswith(machine.paths["/run/fazhi-flow-web"])
    finally:
        code = _stop(proc, sections)
        notify.close()
        log.close()
    assert code == 0, (machine.root / "web.log").read_text()
    assert "Traceback" not in (machine.root / "web.log").read_text()


def test_scheduler_unit_command_starts_and_beats(machine):
    sections = parse_unit(SCHEDULER_UNIT)
    env = machine.environment(sections)
    log_path = machine.root / "scheduler.log"
    log = open(log_path, "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(machine.command(sections), env=env, cwd=machine.cwd(sections), stdout=log,
                            stderr=subprocess.STDOUT)
    engine = create_engine(machine.database_url)
    try:
        deadline = time.monotonic() + 60
        beat = None
        while time.monotonic() < deadline and beat is None:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.5)
            with engine.connect() as conn:
                beat = conn.execute(text("SELECT beat_at FROM job_status WHERE name = 'scheduler'")).scalar()
        assert "调度器已启动" in log_path.read_text(), log_path.read_text()
        assert beat is not None, "the scheduler wrote no heartbeat"
    finally:
        code = _stop(proc, sections)
        log.close()
        engine.dispose()
    # systemd counts an exit by SIGTERM (its KillSignal) as a clean stop.
    assert code in (0, -signal.SIGTERM), log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def test_offline_scripts_refuse_bad_input_with_one_line(tmp_path):
    """The full build and install run in CI (.ci/wheel-smoke-offline); here the refusals, which need
    neither the network nor minutes."""
    install = tmp_path / "wheelhouse" / "install-offline.sh"
    install.parent.mkdir()
    shutil.copy(DEPLOY / "install-offline.sh", install)
    (install.parent / "requirements.txt").write_text("", encoding="utf-8")
    (install.parent / "wheelhouse.json").write_text('{"python": "2.7", "platform": "linux-x86_64"}',
                                                    encoding="utf-8")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["sh", str(install), str(tmp_path / "venv")], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and "Python 2.7" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "venv").exists()

    (install.parent / "wheelhouse.json").unlink()
    result = subprocess.run(["sh", str(install), str(tmp_path / "venv")], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and "不是完整的 wheelhouse" in result.stderr

    build = DEPLOY / "build-wheelhouse.sh"
    result = subprocess.run(["bash", str(build), "pdf,docx", str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1 and "未知的组件“docx”" in result.stderr
    result = subprocess.run(["bash", str(build), "pdf", str(install.parent)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1 and "不是空的" in result.stderr
    assert not (tmp_path / "out").exists()
