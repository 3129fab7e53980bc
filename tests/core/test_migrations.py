"""The committed migrations build exactly the schema the models declare."""
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
