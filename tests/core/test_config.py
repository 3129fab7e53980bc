"""Settings: environment overrides, the SQLite pragmas, and production's refusal of a default key."""
import pytest
from sqlalchemy import text

from fazhi_flow import create_app


def test_production_refuses_default_secret(monkeypatch):
    monkeypatch.delenv("FAZHI_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError) as refused:
        create_app("production")
    assert "FAZHI_SECRET_KEY" in str(refused.value)


def test_production_starts_with_a_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("FAZHI_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    app = create_app("production")
    assert app.config["SECRET_KEY"] == "x" * 40 and app.config["SESSION_COOKIE_SECURE"]


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("FAZHI_TIMEZONE", "Asia/Urumqi")
    monkeypatch.setenv("FAZHI_MAIL_PORT", "2525")
    monkeypatch.setenv("FAZHI_MAIL_HOST", "smtp.example.test")
    monkeypatch.setenv("FAZHI_DATABASE_URL", "postgresql://u@db.example.test/fazhi")
    app = create_app("testing")
    assert app.config["TIMEZONE"] == "Asia/Urumqi"
    assert app.config["MAIL_PORT"] == 2525 and app.config["MAIL_HOST"] == "smtp.example.test"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example.test/fazhi"


def test_default_database_is_sqlite_in_instance_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("FAZHI_DATABASE_URL", raising=False)
    monkeypatch.setenv("FAZHI_INSTANCE_PATH", str(tmp_path))
    app = create_app("development")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'fazhi_flow.db'}"


def test_sqlite_pragmas(monkeypatch, tmp_path):
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    app = create_app("testing")
    from fazhi_flow.extensions import db

    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        db.engine.dispose()


def test_tests_run_on_the_database_asked_for(db):
    """FAZHI_TEST_DATABASE_URL must really switch the engine, or the PostgreSQL run tests SQLite."""
    import os

    wanted = "postgresql" if os.environ.get("FAZHI_TEST_DATABASE_URL") else "sqlite"
    assert db.engine.dialect.name == wanted
    assert db.session.get_bind().dialect.name == wanted


def test_a_misspelt_attachment_storage_stops_the_start(app, monkeypatch):
    from fazhi_flow import create_app

    monkeypatch.setenv("FAZHI_ATTACHMENT_STORAGE", "databse")
    with pytest.raises(RuntimeError, match="folder 或 database"):
        create_app("testing")
    monkeypatch.setenv("FAZHI_ATTACHMENT_STORAGE", " Database ")
    assert create_app("testing").config["ATTACHMENT_STORAGE"].strip().lower() == "database"
