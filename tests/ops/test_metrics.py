"""/metrics: who may read it, what it counts, and multi-process mode under a real gunicorn."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families

from fazhi_flow import create_app
from fazhi_flow.extensions import db as _db
from fazhi_flow.models.ops import JobStatus
from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.timeutil import utcnow

GUNICORN = shutil.which("gunicorn")


def samples(text: str) -> dict:
    """{(name, frozenset(labels.items())): value} of a scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def total(found: dict, name: str, **labels) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


def test_scrape_counts_requests_by_endpoint_and_reads_the_database(app, client, world, db):
    before = samples(client.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        assert client.get("/login").status_code == 200
    client.get("/tasks/987654321")  # the raw path (and its number) never becomes a label
    client.open("/login", method="PROPFIND")  # odd methods are counted as "other"
    client.get("/no/such/page")

    reminder = Reminder(key="k-metrics-1", cycle_id=world.cycle.id, kind="before_due", occurrence="3",
                        day=utcnow().date())
    db.session.add(reminder)
    db.session.flush()
    db.session.add_all([
        OutboxMessage(channel="email", address="a@example.test", subject="s", body="b", cause="reminder",
                      reminder_id=reminder.id, status="sent"),
        OutboxMessage(channel="email", address="b@example.test", subject="s", body="b", cause="test",
                      status="dead"),
        OutboxMessage(channel="email", address="c@example.test", subject="s", body="b", cause="test"),
        JobStatus(name="sweep", finished_at=utcnow() - timedelta(minutes=2), ok=True, duration_ms=1500),
        JobStatus(name="scheduler", beat_at=utcnow()),
    ])
    db.session.commit()

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "Set-Cookie" not in response.headers
    text = response.get_data(as_text=True)
    after = samples(text)
    login = {"endpoint": "auth.login", "method": "GET", "status": "200"}
    assert (value(after, "fazhi_http_requests_total", **login) or 0) - (
        value(before, "fazhi_http_requests_total", **login) or 0) == 3
    assert total(after, "fazhi_http_requests_total", method="other") >= 1
    assert total(after, "fazhi_http_requests_total", endpoint="none", status="404") >= 1
    assert "987654321" not in text and "/no/such/page" not in text
    assert total(after, "fazhi_http_request_duration_seconds_count", endpoint="auth.login") >= 3
    assert value(after, "fazhi_http_request_duration_seconds_bucket", endpoint="auth.login", le="+Inf") >= 3

    assert value(after, "fazhi_database_up") == 1
    assert value(after, "fazhi_outbox_messages", status="pending") == 1
    assert value(after, "fazhi_outbox_messages", status="dead") == 1
    assert value(after, "fazhi_reminders_queued", kind="before_due") == 1
    assert value(after, "fazhi_reminder_messages_sent", kind="before_due", channel="email") == 1
    assert value(after, "fazhi_contributions", cycle=str(world.cycle.id), year="2024", state="draft") == 1
    last_sweep = value(after, "fazhi_job_last_finished_timestamp_seconds", job="sweep")
    assert abs(time.time() - 120 - last_sweep) < 60
    assert value(after, "fazhi_job_last_success", job="sweep") == 1
    assert value(after, "fazhi_job_last_duration_seconds", job="sweep") == 1.5
    assert abs(time.time() - value(after, "fazhi_scheduler_heartbeat_timestamp_seconds")) < 60


def test_metrics_only_for_allowed_addresses_or_the_token(app, client, db):
    saved = {k: app.config.get(k) for k in ("METRICS_ALLOWED_IPS", "METRICS_TOKEN", "TRUSTED_PROXIES")}
    try:
        elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
        assert client.get("/metrics").status_code == 200  # 127.0.0.1, the default
        refused = client.get("/metrics", environ_base=elsewhere)
        assert refused.status_code == 404 and b"fazhi_" not in refused.data
        # Through a proxy that is not trusted every caller looks like 127.0.0.1: the address counts nothing.
        assert client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 404

        app.config["METRICS_TOKEN"] = "scrape-token-0123456789"
        bearer = {"Authorization": "Bearer scrape-token-0123456789"}
        assert client.get("/metrics", environ_base=elsewhere, headers=bearer).status_code == 200
        assert client.get("/metrics", environ_base=elsewhere,
                          headers={"Authorization": "Bearer scrape-token-012345678"}).status_code == 404
        assert client.get("/metrics", environ_base=elsewhere,
                          headers={"Authorization": "Basic scrape-token-0123456789"}).status_code == 404
        app.config["METRICS_TOKEN"] = ""
        assert client.get("/metrics", environ_base=elsewhere, headers={"Authorization": "Bearer "}).status_code == 404

        app.config["METRICS_ALLOWED_IPS"] = "10.0.0.0/8, 192.0.2.7"
        assert client.get("/metrics", environ_base=elsewhere).status_code == 200
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"}).status_code == 200
        assert client.get("/metrics").status_code == 404  # 127.0.0.1 is no longer listed
        assert client.post("/metrics", environ_base=elsewhere).status_code == 405
    finally:
        app.config.update(saved)


def test_a_bad_address_list_stops_the_start(monkeypatch):
    monkeypatch.setenv("FAZHI_METRICS_ALLOWED_IPS", "127.0.0.1,intranet")
    with pytest.raises(RuntimeError, match="“intranet”不是 IP 地址或网段"):
        create_app("testing")


def test_scrape_answers_when_the_database_is_down(monkeypatch, tmp_path):
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")
    broken = create_app("testing")
    response = broken.test_client().get("/metrics")
    assert response.status_code == 200
    found = samples(response.get_data(as_text=True))
    assert value(found, "fazhi_database_up") == 0
    with broken.app_context():
        _db.engine.dispose()


# ---------------------------------------------------------------- real gunicorn, two workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        # Generous: in CI both test runs share two cores with browsers and servers, and a request
        # queued behind sixty others on two sync workers once waited more than 10 s.
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


class Gunicorn:
    def __init__(self, env: dict, port: int, workers: int = 2):
        self.port = port
        self.proc = subprocess.Popen(
            [GUNICORN, "-c", "python:fazhi_flow.ops.gunicorn_conf", "-w", str(workers),
             "-b", f"127.0.0.1:{port}", "fazhi_flow:create_app()"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("gunicorn stopped:\n" + self.proc.communicate()[0])
            try:
                if _get(self.url("/healthz"))[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("gunicorn did not answer")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.output = self.proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.output = self.proc.communicate()[0]
        return self.output


@pytest.fixture()
def served_database(fresh_database_url, monkeypatch, tmp_path):
    """A fresh database at the migration head, for the gunicorn processes."""
    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    application = create_app("testing")
    with application.app_context():
        upgrade()
        _db.session.remove()
        _db.engine.dispose()
    return fresh_database_url


def _gunicorn_env(database_url: str, tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FAZHI_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(FAZHI_ENV="production", FAZHI_SECRET_KEY="k" * 48, FAZHI_SESSION_COOKIE_SECURE="0",
               FAZHI_DATABASE_URL=database_url, FAZHI_INSTANCE_PATH=str(tmp_path / "instance"),
               FAZHI_LOG_FORMAT="json", **extra)
    return env


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed (pip install -e .)")
def test_gunicorn_two_workers_sum_their_counts(served_database, tmp_path):
    multiproc = tmp_path / "prometheus"
    token = "scrape-token-for-the-test-42"
    env = _gunicorn_env(served_database, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                        # Nobody by address (not even this machine): only the token opens /metrics.
                        FAZHI_METRICS_ALLOWED_IPS="192.0.2.1", FAZHI_METRICS_TOKEN=token)
    bearer = {"Authorization": f"Bearer {token}"}
    server = Gunicorn(env, _free_port())
    try:
        server.wait_ready()
        assert _get(server.url("/metrics"))[0] == 404
        assert _get(server.url("/metrics"), {"Authorization": "Bearer wrong"})[0] == 404

        requests_per_thread, threads = 10, 6
        failures = []

        def load():
            for _ in range(requests_per_thread):
                status, _ = _get(server.url("/login"))
                if status != 200:
                    failures.append(status)

        def counter_pids():
            return {os.path.basename(p).rsplit("_", 1)[1].split(".")[0]
                    for p in glob.glob(str(multiproc / "counter_*.db"))}

        # The kernel decides which worker accepts: on a busy machine one may take a whole round, so
        # load again (at most 10 rounds) until both have served.
        rounds = 0
        while rounds < 10 and (rounds == 0 or len(counter_pids()) < 2):
            workers = [threading.Thread(target=load) for _ in range(threads)]
            for t in workers:
                t.start()
            for t in workers:
                t.join(120)
            rounds += 1
        assert failures == []
        # Both workers served (each keeps its own counter file) ...
        pids = counter_pids()
        assert len(pids) >= 2, pids
        requests_per_thread *= rounds
        # ... and one scrape, answered by either worker, adds them up.
        status, text = _get(server.url("/metrics"), bearer)
        assert status == 200, text
        found = samples(text)
        assert value(found, "fazhi_http_requests_total", endpoint="auth.login", method="GET",
                     status="200") == requests_per_thread * threads
        assert total(found, "fazhi_http_request_duration_seconds_count", endpoint="auth.login") == \
            requests_per_thread * threads
        assert value(found, "fazhi_database_up") == 1
        assert value(found, "fazhi_outbox_messages", status="pending") == 0
        healthz = _get(server.url("/healthz"))
        assert healthz == (200, '{"status": "ok"}')
        ready_status, ready = _get(server.url("/readyz"), bearer)  # the details need the metrics token
        # Production expects a scheduler; none runs here.
        assert ready_status == 503 and "fazhi-flow scheduler" in ready and "Traceback" not in ready
        rss = _worker_rss_kib(server.proc.pid)
    finally:
        output = server.stop()
    assert rss and all(r > 0 for r in rss)
    request_lines = [line for line in output.splitlines() if '"event": "request"' in line]
    assert len(request_lines) >= requests_per_thread * threads
    assert "Traceback" not in output

    # A restart starts from zero: the old workers' files are cleared at start-up.
    again = Gunicorn(env, _free_port())
    try:
        again.wait_ready()
        _get(again.url("/login"))
        found = samples(_get(again.url("/metrics"), bearer)[1])
        assert value(found, "fazhi_http_requests_total", endpoint="auth.login", method="GET", status="200") == 1
    finally:
        again.stop()


def _worker_rss_kib(master_pid: int) -> list[int]:
    """Resident memory of the master's child processes (the workers), in KiB."""
    sizes = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status, encoding="utf-8") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(master_pid) and "VmRSS" in fields:
            sizes.append(int(fields["VmRSS"].split()[0]))
    return sizes


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed (pip install -e .)")
def test_gunicorn_config_refuses_a_bad_setting_in_one_line(tmp_path):
    env = _gunicorn_env("sqlite:///" + str(tmp_path / "x.db"), tmp_path, FAZHI_WEB_WORKERS="many")
    result = subprocess.run([GUNICORN, "-c", "python:fazhi_flow.ops.gunicorn_conf", "--check-config",
                             "fazhi_flow:create_app()"], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 1
    assert "FAZHI_WEB_WORKERS 必须是 1 到 64 之间的整数" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_gunicorn_config_reads_the_environment(monkeypatch, tmp_path):
    import importlib

    monkeypatch.setenv("FAZHI_WEB_WORKERS", "3")
    monkeypatch.setenv("FAZHI_WEB_TIMEOUT", "200")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "m"))
    monkeypatch.delitem(sys.modules, "fazhi_flow.ops.gunicorn_conf", raising=False)
    conf = importlib.import_module("fazhi_flow.ops.gunicorn_conf")
    try:
        assert (conf.workers, conf.timeout, conf.accesslog) == (3, 200, None)
        assert not (tmp_path / "m").exists()  # importing makes nothing; starting gunicorn does
        conf.on_starting(None)
        (tmp_path / "m" / "counter_1.db").write_bytes(b"old")
        conf.on_starting(None)
        assert list((tmp_path / "m").iterdir()) == []
    finally:
        sys.modules.pop("fazhi_flow.ops.gunicorn_conf", None)


def test_behind_a_trusted_proxy_the_client_address_counts(monkeypatch):
    """With FAZHI_TRUSTED_PROXIES=1 (nginx in front) the address nginx reports is the one checked."""
    monkeypatch.setenv("FAZHI_TRUSTED_PROXIES", "1")
    monkeypatch.setenv("FAZHI_METRICS_ALLOWED_IPS", "192.0.2.7")
    proxied = create_app("testing")
    try:
        client = proxied.test_client()
        assert client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 404
        assert client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"}).status_code == 200
        assert client.get("/metrics").status_code == 404  # nginx's own 127.0.0.1 is not listed
    finally:
        with proxied.app_context():
            _db.engine.dispose()


def test_counts_in_memory_stay_visible_when_the_variable_appears_later(app, client, db, monkeypatch, tmp_path):
    """Importing gunicorn_conf in a running process sets PROMETHEUS_MULTIPROC_DIR; this process's
    counts are still in memory, and the scrape must keep showing them."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    client.get("/login")
    found = samples(client.get("/metrics").get_data(as_text=True))
    assert value(found, "fazhi_http_requests_total", endpoint="auth.login", method="GET", status="200") >= 1
