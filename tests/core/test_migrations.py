"""The committed migrations build exactly the schema the models declare."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from fazhi_flow import create_app
from fazhi_flow.extensions import db


def _app(url, tmp_path):
    app = create_app("testing")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    return app


def test_models_and_migrations_agree(fresh_database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    app = create_app("testing")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == fresh_database_url
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                            "compare_server_default": False})
            diff = compare_metadata(context, db.metadata)
        assert diff == [], "models and migrations differ; run `flask --app wsgi db migrate`:\n" + "\n".join(
            map(str, diff))
        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_upgrade_keeps_cycles_and_allows_signed_corrections(fresh_database_url, monkeypatch):
    """A database with a published cycle at 0001 upgrades with the cycle intact, figures not shared,
    and the new correcting state accepted by the CHECK constraint (unknown states still refused)."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    app = create_app("testing")
    with app.app_context():
        upgrade(revision="0001")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO report_cycle (id, year, region, title, unit_head_review, issuers, state, version,"
                " created_at) VALUES (7, 2024, '甲区', '甲区2024年法治政府建设年度报告', false, '甲区人民政府',"
                " 'published', 3, '2025-01-06 01:00:00')"))
        upgrade()
        with db.engine.begin() as conn:
            row = conn.execute(text("SELECT title, state, version, share_approved_figures FROM report_cycle"
                                    " WHERE id = 7")).one()
            assert (row.title, row.state, row.version, bool(row.share_approved_figures)) == (
                "甲区2024年法治政府建设年度报告", "published", 3, False)
            conn.execute(text("UPDATE report_cycle SET state = 'correcting' WHERE id = 7"))
        with pytest.raises(IntegrityError):
            with db.engine.begin() as conn:
                conn.execute(text("UPDATE report_cycle SET state = 'bogus' WHERE id = 7"))
        downgrade(revision="0001")
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT state FROM report_cycle WHERE id = 7")).scalar() == "published"
        downgrade(revision="base")
        db.engine.dispose()
