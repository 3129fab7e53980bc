"""The committed migrations build exactly the schema the models declare."""
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from fazhi_flow import create_app
from fazhi_flow.extensions import db


HEAD_REVISION = ScriptDirectory(str(Path(__file__).resolve().parents[2] / "migrations")).get_current_head()


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


def test_upgrade_from_0002_keeps_a_working_district_and_adds_ops_tables(fresh_database_url, monkeypatch):
    """A populated 0002 database (the demo district with material in every state, revisions, audit
    rows, an attachment, an in-app notice holding an absolute link) comes through the upgrade to head
    unchanged but for what 0003 and 0004 add: the new tables take rows, opened_at stays empty (a
    value would restart reminder series already sent), absolute notice links become site-relative; going back to 0002 restores it."""
    from datetime import datetime

    from sqlalchemy import select, text
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import (Attachment, AttachmentBlob, ChannelHealth, Contribution, JobStatus,
                                   ReportCycle, User, org)
    from fazhi_flow.services.attachments import add_attachment
    from fazhi_flow.services.demo import load_demo

    new_tables = {"job_status", "attachment_blob", "channel_health", "region", "api_token", "delegation",
                  "contribution_approval", "figures_version"}
    new_columns = {("report_cycle", "opened_at"), ("report_cycle", "publish_deadline"), ("indicator", "rollup"),
                   ("unit", "region_id"), ("user", "region_id"), ("report_cycle", "region_id"),
                   ("user", "password_login_disabled"), ("user", "sso_subject"), ("section", "review_mode"),
                   ("transition_log", "on_behalf_of_id"), ("audit_event", "on_behalf_of_id"),
                   ("publication", "pdf_status"), ("publication", "pdf_completed_at")}
    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    monkeypatch.setenv("FAZHI_DATABASE_URL", fresh_database_url)
    app = create_app("testing")

    def rows(skip_new=False):
        out = {}
        with db.engine.connect() as conn:
            inspector = inspect(conn)
            for t in db.metadata.sorted_tables:
                if t.name not in inspector.get_table_names() or (skip_new and t.name in new_tables):
                    continue
                present = {c["name"] for c in inspector.get_columns(t.name)}
                cols = [c for c in t.columns if c.name in present
                        and not (skip_new and (t.name, c.name) in new_columns)]
                out[t.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*t.primary_key.columns))]
        return out

    with app.app_context():
        # The models are at head, so the district is written at head and taken back to 0002.
        upgrade()
        load_demo()
        draft = db.session.scalar(select(Contribution).where(Contribution.state == "draft")
                                  .order_by(Contribution.id))
        liaison = db.session.scalar(select(User).join(User.role_rows).where(
            User.unit_id == draft.unit_id, User.role_rows.any(role="liaison")))
        add_attachment(draft, liaison, "证明.png", b"\x89PNG\r\n\x1a\n" + b"x" * 100)
        db.session.commit()
        liaison_id = liaison.id
        db.session.remove()
        downgrade(revision="0002")
        with db.engine.connect() as conn:
            assert not new_tables & set(inspect(conn).get_table_names())
            assert "opened_at" not in {c["name"] for c in inspect(conn).get_columns("report_cycle")}
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO notification (user_id, kind, title, link, created_at) "
                              "VALUES (:u, 'reminder', '催报', 'https://fz.example.gov.cn/tasks/7?x=1#f', :t)"),
                         {"u": liaison_id, "t": datetime(2025, 1, 2)})
        before = rows()
        assert len(before["contribution"]) > 10 and before["revision"] and before["attachment"]

        upgrade()
        after = rows(skip_new=True)
        links = [r for r in after["notification"] if "/tasks/7" in str(r)]
        assert len(links) == 1 and "/tasks/7?x=1#f" in links[0] and "https://" not in str(links[0])
        assert {n: d for n, d in after.items() if n != "notification"} == \
            {n: d for n, d in before.items() if n != "notification"}
        assert len(after["notification"]) == len(before["notification"])
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
            # Everything of the one district now belongs to one region, named as its reports are.
            assert conn.execute(text("SELECT name FROM region")).scalars().all() == ["益阳市赫山区"]
            for table in ("unit", '"user"', "report_cycle"):
                assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE region_id IS NULL")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM job_status")).scalar() == 0
            # Every cycle has a figures token at once, and the triggers change it.
            tokens = dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all())
            assert set(tokens) == set(conn.execute(text("SELECT id FROM report_cycle")).scalars())
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE indicator_value SET value = value + 1"))
            assert dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all()) != tokens
            conn.execute(text("UPDATE indicator_value SET value = value - 1"))
            assert conn.execute(text("SELECT count(*) FROM attachment_blob")).scalar() == 0
        # Migration 0008: the outline and the units too (the dashboard is kept under the token). One
        # transaction each: on PostgreSQL the token changes once per transaction.
        for change, undo in (("UPDATE section SET title = title || '（改）'", "UPDATE section SET title = replace(title, '（改）', '')"),
                             ("UPDATE unit SET name = name || '（改）'", "UPDATE unit SET name = replace(name, '（改）', '')")):
            with db.engine.begin() as conn:
                tokens = dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all())
                conn.execute(text(change))
                changed = dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all())
                assert all(changed[c] != tokens[c] for c in tokens), change
            with db.engine.begin() as conn:
                conn.execute(text(undo))
        # Migration 0009: naming or removing a section's reviewer changes that section's cycle's token
        # (the reviewer's queue is kept under it), and no other cycle's.
        with db.engine.connect() as conn:
            section_id, cycle_id = conn.execute(text("SELECT id, cycle_id FROM section ORDER BY id")).first()
            user_id = conn.execute(text(
                'SELECT id FROM "user" WHERE id NOT IN (SELECT user_id FROM section_reviewer WHERE section_id = :s) '
                "ORDER BY id"), {"s": section_id}).scalar()
        for change in ("INSERT INTO section_reviewer (section_id, user_id) VALUES (:s, :u)",
                       "DELETE FROM section_reviewer WHERE section_id = :s AND user_id = :u"):
            with db.engine.begin() as conn:
                tokens = dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all())
                conn.execute(text(change), {"s": section_id, "u": user_id})
                changed = dict(conn.execute(text("SELECT cycle_id, token FROM figures_version")).all())
                assert changed[cycle_id] != tokens[cycle_id], change
                assert {c: t for c, t in changed.items() if c != cycle_id} == \
                    {c: t for c, t in tokens.items() if c != cycle_id}, change
        # Left empty for cycles already under way: filling it would restart their reminder series.
        assert [c.opened_at for c in db.session.scalars(select(ReportCycle))] == [None] * len(before["report_cycle"])

        attachment = db.session.scalar(select(Attachment))
        db.session.add(JobStatus(name="scheduler", host="web1", pid=42, beat_at=datetime(2026, 1, 1),
                                 ok=True, summary={"queued": 3}))
        db.session.add(AttachmentBlob(stored_name=attachment.stored_name, content=b"\x00bytes\xff"))
        db.session.add(ChannelHealth(channel="email", failing_since=datetime(2026, 1, 1), failures=3,
                                     last_error="无法连接"))
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(JobStatus, "scheduler").summary == {"queued": 3}
        assert db.session.get(AttachmentBlob, attachment.stored_name).content == b"\x00bytes\xff"
        assert db.session.get(ChannelHealth, "email").failures == 3
        db.session.remove()

        downgrade(revision="0002")
        restored = rows()
        assert {n: d for n, d in restored.items() if n != "notification"} == \
            {n: d for n, d in before.items() if n != "notification"}
        downgrade(revision="base")
        db.engine.dispose()
