"""/healthz and /readyz, and the scheduler heartbeat they read."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import event, select

from fazhi_flow import create_app
from fazhi_flow.auth_loader import SEEN_AT
from fazhi_flow.extensions import db as _db
from fazhi_flow.models.ops import JobStatus
from fazhi_flow.reminders.scheduler import beat, start_in_process_scheduler
from fazhi_flow.testing import login
from fazhi_flow.timeutil import utcnow


@pytest.fixture()
def migrated_app(fresh_database_url, monkeypatch, tmp_path):
    """An app on a fresh database upgraded to the migration head, as `fazhi-flow db upgrade` leaves it."""
    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    application = create_app("testing")
    application.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _count_statements(engine):
    seen = []

    def _record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", _record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", _record)


def test_healthz_answers_without_touching_the_database(app, client, world, db):
    login(client, world.liaison)
    seen, stop = _count_statements(db.engine)
    try:
        response = client.get("/healthz")
    finally:
        stop()
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert seen == []  # not even the logged-in user's row
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_alive_and_readyz_503_when_the_database_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")
    broken = create_app("testing")
    client = broken.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "数据库无法连接" in body["checks"]["database"]["reason"]
    assert any(reason.startswith("database:") for reason in body["reasons"])
    assert "Traceback" not in response.get_data(as_text=True)
    with broken.app_context():
        _db.engine.dispose()


def test_readyz_checks_the_schema_against_the_migration_head(fresh_database_url, monkeypatch, tmp_path,
                                                             caplog):
    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    application = create_app("testing")
    client = application.test_client()
    try:
        empty = client.get("/readyz")
        assert empty.status_code == 503
        assert "fazhi-flow db upgrade" in empty.get_json()["checks"]["migrations"]["reason"]
        with application.app_context():
            upgrade(revision="0002")
        behind = client.get("/readyz").get_json()
        assert behind["checks"]["migrations"]["ok"] is False
        assert behind["checks"]["migrations"]["current"] == ["0002"]
        assert "不是本版本的最新版" in behind["checks"]["migrations"]["reason"]
        with application.app_context():
            upgrade()
        caplog.set_level(logging.INFO)
        caplog.clear()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.get_json()
        # A probe every few seconds must not write alembic's "Context impl" lines each time.
        assert [r.name for r in caplog.records if not r.name.startswith("fazhi_flow")] == []
        body = ready.get_json()
        assert body["status"] == "ok" and "reasons" not in body
        assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
        assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["head"]
        # The testing settings expect no scheduler: its absence is reported, not a failure.
        assert body["checks"]["scheduler"] == {"ok": True, "expected": False, "fresh": False,
                                               "beat_at": None, "age_seconds": None}
    finally:
        with application.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_readyz_wants_a_fresh_heartbeat_where_a_scheduler_is_expected(migrated_app):
    migrated_app.config["SCHEDULER_EXPECTED"] = True
    client = migrated_app.test_client()
    none_yet = client.get("/readyz")
    assert none_yet.status_code == 503
    assert "没有调度器心跳记录" in none_yet.get_json()["checks"]["scheduler"]["reason"]

    beat(migrated_app)
    fresh = client.get("/readyz")
    assert fresh.status_code == 200, fresh.get_json()
    scheduler = fresh.get_json()["checks"]["scheduler"]
    assert scheduler["fresh"] is True and scheduler["age_seconds"] < 5
    assert "pid" not in scheduler and "host" not in scheduler  # public answer: no machine names

    with migrated_app.app_context():
        row = _db.session.get(JobStatus, "scheduler")
        row.beat_at = utcnow() - timedelta(minutes=4)
        _db.session.commit()
    stale = client.get("/readyz")
    assert stale.status_code == 503
    reason = stale.get_json()["checks"]["scheduler"]["reason"]
    assert "调度器心跳已超过3分钟" in reason and "fazhi-flow scheduler" in reason
    # Where none is expected the same stale heartbeat is reported but does not fail the check.
    migrated_app.config["SCHEDULER_EXPECTED"] = False
    relaxed = client.get("/readyz")
    assert relaxed.status_code == 200
    assert relaxed.get_json()["checks"]["scheduler"]["age_seconds"] >= 240


OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


def test_readyz_gives_details_only_to_the_callers_metrics_admits(migrated_app):
    """Anybody may ask /readyz; only an allowed address or the metrics token learns revisions and the
    heartbeat's age. The status codes are the same for everybody."""
    migrated_app.config["SCHEDULER_EXPECTED"] = True
    migrated_app.config["METRICS_TOKEN"] = "t" * 40
    client = migrated_app.test_client()
    with migrated_app.app_context():
        _db.session.add(JobStatus(name="scheduler", beat_at=utcnow() - timedelta(minutes=4)))
        _db.session.commit()
        head = _db.session.execute(_db.text("SELECT version_num FROM alembic_version")).scalar()
        _db.session.execute(_db.text("UPDATE alembic_version SET version_num = '0002'"))
        _db.session.commit()

    outside = client.get("/readyz", environ_base=OUTSIDE)
    assert outside.status_code == 503
    assert outside.get_json() == {"status": "unavailable", "reasons": ["数据库结构不是最新", "调度器没有在运行"]}
    text = outside.get_data(as_text=True)
    assert "0002" not in text and head not in text and "秒" not in text and "beat_at" not in text
    # Forwarded by a proxy that is not trusted: the address says nothing, so no details.
    forwarded = client.get("/readyz", headers={"X-Forwarded-For": "127.0.0.1"})
    assert forwarded.status_code == 503 and "checks" not in forwarded.get_json()
    wrong_token = client.get("/readyz", environ_base=OUTSIDE, headers={"Authorization": "Bearer nope"})
    assert "checks" not in wrong_token.get_json()

    for detailed in (client.get("/readyz"),  # the machine itself
                     client.get("/readyz", environ_base=OUTSIDE, headers={"Authorization": "Bearer " + "t" * 40})):
        assert detailed.status_code == 503
        body = detailed.get_json()
        assert body["status"] == "unavailable"
        assert body["checks"]["migrations"]["current"] == ["0002"]
        assert body["checks"]["scheduler"]["age_seconds"] >= 240
    migrated_app.config["METRICS_ALLOWED_IPS"] = "203.0.113.0/24"
    assert "checks" in client.get("/readyz", environ_base=OUTSIDE).get_json()
    migrated_app.config["METRICS_ALLOWED_IPS"] = "127.0.0.1,::1"

    with migrated_app.app_context():
        _db.session.execute(_db.text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        _db.session.commit()
    beat(migrated_app)
    ready = client.get("/readyz", environ_base=OUTSIDE)
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok", "reasons": []}


def test_readyz_unreachable_database_publicly(monkeypatch, tmp_path):
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}")
    broken = create_app("testing")
    response = broken.test_client().get("/readyz", environ_base=OUTSIDE)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reasons": ["数据库无法连接"]}
    with broken.app_context():
        _db.engine.dispose()


def test_probes_keep_no_session_and_count_as_no_activity(app, client, world, db):
    login(client, world.liaison)
    long_ago = int(time.time()) - 600
    with client.session_transaction() as session:
        session[SEEN_AT] = long_ago
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code in (200, 503)
        assert "Set-Cookie" not in response.headers
        assert response.is_json
    with client.session_transaction() as session:
        assert session[SEEN_AT] == long_ago  # a page view would have moved it
    # No CSRF token, no login: a POST is refused as a wrong method, not as a missing token.
    posted = client.post("/healthz")
    assert posted.status_code == 405 and posted.headers["Allow"] == "GET, HEAD"
    assert client.get("/readyz", headers={"Cookie": ""}).is_json


def test_production_expects_a_scheduler_and_development_does_not(monkeypatch):
    monkeypatch.setenv("FAZHI_SECRET_KEY", "x" * 40)
    assert create_app("production").config["SCHEDULER_EXPECTED"] is True
    assert create_app("development").config["SCHEDULER_EXPECTED"] is False
    monkeypatch.setenv("FAZHI_SCHEDULER_EXPECTED", "0")
    assert create_app("production").config["SCHEDULER_EXPECTED"] is False


def test_in_process_scheduler_beats_at_start(app, db):
    scheduler = start_in_process_scheduler(app)
    try:
        assert "scheduler.heartbeat" in {job.id for job in scheduler.get_jobs()}
        db.session.expire_all()
        row = db.session.get(JobStatus, "scheduler")
        assert row is not None and row.pid == os.getpid() and row.host
        assert utcnow() - row.beat_at < timedelta(seconds=30)
    finally:
        scheduler.shutdown(wait=True)


@pytest.mark.skipif(shutil.which("fazhi-flow") is None, reason="the package is not installed (pip install -e .)")
def test_scheduler_process_beats_and_records_its_jobs(migrated_app, fresh_database_url, tmp_path):
    """The real `fazhi-flow scheduler` process: heartbeat at start, one job_status row per job run,
    one log line per job; /readyz of a web app expecting a scheduler turns ready."""
    migrated_app.config["SCHEDULER_EXPECTED"] = True
    client = migrated_app.test_client()
    assert client.get("/readyz").status_code == 503
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env.update(FAZHI_ENV="testing", FAZHI_DATABASE_URL=fresh_database_url, FAZHI_INSTANCE_PATH=str(tmp_path),
               FAZHI_LOG_FORMAT="text", FAZHI_MAIL_HOST="127.0.0.1", FAZHI_MAIL_PORT="9")
    proc = subprocess.Popen([shutil.which("fazhi-flow"), "scheduler"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, names = time.time() + 60, set()
        while time.time() < deadline and not {"scheduler", "sweep", "deliver", "prune"} <= names:
            assert proc.poll() is None, proc.communicate()[0]
            with migrated_app.app_context():
                names = set(_db.session.scalars(select(JobStatus.name)))
                _db.session.remove()
            time.sleep(0.3)
        assert {"scheduler", "sweep", "deliver", "prune"} <= names
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.get_json()
        with migrated_app.app_context():
            rows = {r.name: r for r in _db.session.scalars(select(JobStatus))}
            _db.session.remove()
        assert rows["scheduler"].pid == proc.pid
        for name in ("sweep", "deliver", "prune"):
            row = rows[name]
            assert row.ok is True and row.error is None and row.duration_ms is not None
            assert row.started_at <= row.finished_at
        assert rows["sweep"].summary == {"queued": 0, "skipped": 0}
        assert rows["deliver"].summary == {"sent": 0, "retried": 0, "dead": 0, "cancelled": 0, "deferred": 0,
                                           "failed": 0, "expired": 0}
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    for name in ("sweep", "deliver", "prune"):
        assert f"job name={name} ok=True duration_ms=" in output, output
