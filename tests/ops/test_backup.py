"""fazhi-flow backup / restore on the test database's kind (SQLite, or PostgreSQL with
FAZHI_TEST_DATABASE_URL): a backup taken while drafts keep being saved restores into an empty
instance as the source was at one moment; damaged archives and used targets are refused with
nothing written."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from fazhi_flow import create_app
from fazhi_flow.extensions import db

# The newest migration, read from the migration scripts rather than from the code under test.
HEAD_REVISION = ScriptDirectory(str(Path(__file__).resolve().parents[2] / "migrations")).get_current_head()

SMALL_CYCLE = """
cycle: {title: 备份县2024年法治政府建设年度报告, year: 2024, region: 备份县, issuers: [备份县人民政府],
        issue_date: 2025-01-06}
units:
  - {code: bx_office, name: 县委依法治县办, kind: party}
  - {code: bx_sfj, name: 县司法局}
users:
  - {username: bx_admin, name: 管理员甲, unit: bx_office, roles: [admin]}
  - {username: bx_reviewer, name: 审核人甲, roles: [reviewer]}
  - {username: bx_leader, name: 领导甲, unit: bx_office, roles: [leader]}
  - {username: bx_liaison, name: 联络员甲, unit: bx_sfj, roles: [liaison]}
outline:
  - {code: main, title: 主要举措和成效, lead: [bx_sfj], reviewers: [bx_reviewer]}
"""
WRITER_TABLES = {"contribution", "attachment", "audit_event"}


# ---------------------------------------------------------------- instances


@pytest.fixture()
def new_database(database_url, tmp_path):
    """Make empty databases of the test database's kind; dropped after the test."""
    url = make_url(database_url)
    made = []

    def make() -> str:
        if url.get_backend_name() == "sqlite":
            return f"sqlite:///{tmp_path / f'db_{uuid.uuid4().hex[:8]}.sqlite3'}"
        name = f"{url.database}_b{uuid.uuid4().hex[:6]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    yield make
    if made:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def instance(new_database, tmp_path, monkeypatch):
    """Build an app with its own empty database and upload folder."""
    apps = []

    def make(name: str, schema: bool = False):
        monkeypatch.setenv("FAZHI_DATABASE_URL", new_database())
        monkeypatch.setenv("FAZHI_UPLOAD_FOLDER", str(tmp_path / name / "uploads"))
        app = create_app("testing")
        apps.append(app)
        if schema:
            with app.app_context():
                upgrade()
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _cli(app, *args):
    result = app.test_cli_runner().invoke(args=["fazhi", *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.output)
    return result


# ---------------------------------------------------------------- source data


def _png(seed: int, size: int = 2000) -> bytes:
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return b"\x89PNG\r\n\x1a\n" + body[:size]


def _pdf(size: int) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(size)


def _build_source(app, monkeypatch, big_files: int = 0) -> dict:
    """The demo district with attachments on drafts, plus a small published cycle. Returns ids."""
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import Contribution, User, org
    from fazhi_flow.services import compile as compile_ops
    from fazhi_flow.services import contributions as svc
    from fazhi_flow.services.attachments import add_attachment
    from fazhi_flow.services.cycles import compile_cycle, open_cycle
    from fazhi_flow.services.demo import load_demo
    from fazhi_flow.services.importer import import_cycle

    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    with app.app_context():
        load_demo()
        drafts = list(db.session.scalars(select(Contribution).where(
            Contribution.state.in_(("draft", "returned"))).order_by(Contribution.id)))
        liaisons = {}
        for contribution in drafts:
            liaisons[contribution.id] = db.session.scalar(select(User).join(User.role_rows).where(
                User.unit_id == contribution.unit_id, User.role_rows.any(role="liaison")))
        for i, contribution in enumerate(drafts[:4]):
            add_attachment(contribution, liaisons[contribution.id], f"证明材料{i}.png", _png(i))
            add_attachment(contribution, liaisons[contribution.id], f"文件{i}.pdf",
                           _pdf(1024 * 1024 if i < big_files else 3000))
        db.session.commit()

        cycle = import_cycle(SMALL_CYCLE).cycle
        users = {u.username: u for u in db.session.scalars(select(User).where(User.username.like("bx_%")))}
        open_cycle(cycle, users["bx_admin"])
        db.session.flush()
        contribution = db.session.scalar(select(Contribution).where(Contribution.cycle_id == cycle.id))
        svc.save_draft(contribution, users["bx_liaison"], "全年办理行政复议案件12件，纠错率为8%。")
        add_attachment(contribution, users["bx_liaison"], "复议统计.png", _png(99))
        svc.submit_contribution(contribution, users["bx_liaison"])
        svc.approve_contribution(contribution, users["bx_reviewer"])
        compile_cycle(cycle, users["bx_admin"])
        compile_ops.request_signoff(cycle, users["bx_admin"])
        compile_ops.sign_report(cycle, users["bx_leader"], compile_ops.latest_version(cycle).number)
        compile_ops.publish_report(cycle, users["bx_admin"])
        db.session.commit()
        a, b = drafts[0], drafts[1]
        assert a.unit_id != b.unit_id
        return {"a": a.id, "b": b.id, "liaison_a": liaisons[a.id].id, "liaison_b": liaisons[b.id].id}


def _rows(app) -> dict:
    """Every table's rows, ordered by primary key."""
    with app.app_context():
        out = {}
        with db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
        db.engine.dispose()
        return out


class Writer(threading.Thread):
    """Saves drafts A and B with the same counter in one transaction, adds an attachment to A every
    third time and removes one every fourth, and records what each commit left behind."""

    def __init__(self, app, ids):
        super().__init__(daemon=True)
        self.app, self.ids = app, ids
        self.n = 0
        self.history: dict[int, dict] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        from fazhi_flow.models import Attachment, AuditEvent, Contribution, User
        from fazhi_flow.services import contributions as svc
        from fazhi_flow.services.attachments import (
            add_attachment,
            discard_file,
            remove_attachment,
        )

        contributions = Contribution.__table__
        attachments = Attachment.__table__
        try:
            with self.app.app_context():
                while not self.stop.is_set() and self.n < 400:
                    n = self.n + 1
                    a = db.session.get(Contribution, self.ids["a"])
                    b = db.session.get(Contribution, self.ids["b"])
                    svc.save_draft(a, db.session.get(User, self.ids["liaison_a"]), f"第{n}次保存的草稿。")
                    svc.save_draft(b, db.session.get(User, self.ids["liaison_b"]), f"第{n}次保存的草稿。")
                    if n % 3 == 0:
                        add_attachment(a, db.session.get(User, self.ids["liaison_a"]), f"w{n}.png", _png(1000 + n))
                    removed = None
                    if n % 4 == 0 and len(a.attachments) > 1:
                        removed = remove_attachment(a.attachments[0], db.session.get(User, self.ids["liaison_a"]))
                    db.session.commit()
                    if removed:
                        discard_file(removed)
                    db.session.expire_all()
                    self.history[n] = {
                        "contributions": [tuple(r) for r in db.session.execute(
                            select(contributions).where(contributions.c.id.in_((self.ids["a"], self.ids["b"])))
                            .order_by(contributions.c.id))],
                        "attachments": [tuple(r) for r in db.session.execute(
                            select(attachments).where(attachments.c.contribution_id == self.ids["a"])
                            .order_by(attachments.c.id))],
                        "audit_max": db.session.scalar(select(db.func.max(AuditEvent.id))),
                    }
                    db.session.commit()
                    self.n = n
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def _assert_empty(app):
    with app.app_context():
        with db.engine.connect() as conn:
            names = [n for n in db.inspect(conn).get_table_names() if n not in ("alembic_version",)]
            for name in names:
                assert conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar() == 0, name
        db.engine.dispose()
    assert _files(Path(app.config["UPLOAD_FOLDER"])) == {}


# ---------------------------------------------------------------- the round trip under writes


def test_backup_while_writing_restores_one_moment(instance, monkeypatch, tmp_path):
    source = instance("source", schema=True)
    ids = _build_source(source, monkeypatch, big_files=4)
    baseline = _rows(source)
    archive = tmp_path / "out" / "backup.tar.gz"
    archive.parent.mkdir()

    writer = Writer(source, ids)
    writer.start()
    while writer.n < 3 and writer.is_alive():
        threading.Event().wait(0.01)
    before = writer.n
    result = _cli(source, "backup", "-o", str(archive))
    during = writer.n
    while writer.n < during + 3 and writer.is_alive():
        threading.Event().wait(0.01)
    writer.stop.set()
    writer.join(60)
    assert writer.error is None, repr(writer.error)
    assert result.exit_code == 0, result.output
    assert "已备份到" in result.output
    assert during > before, "no draft was saved while the backup ran"
    # Nothing but the archive is left beside it (no temporary file or work folder).
    assert [p.name for p in archive.parent.iterdir()] == ["backup.tar.gz"]
    assert archive.stat().st_mode & 0o077 == 0

    final = _rows(source)
    assert {t for t in final if final[t] != baseline[t]} <= WRITER_TABLES

    target = instance("target", schema=True)  # an empty schema from `db upgrade` is accepted
    restored_result = _cli(target, "restore", str(archive))
    assert restored_result.exit_code == 0, restored_result.output
    # The backup's moment in Beijing time, in the one date format.
    assert re.search(r"已恢复 \d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}（北京时间）的备份", restored_result.output)
    restored = _rows(target)

    # Which save the snapshot caught: A and B were saved together, so they name the same one.
    from fazhi_flow.models import Contribution

    c_index = {row[0]: row for row in restored["contribution"]}
    body_column = list(Contribution.__table__.columns.keys()).index("body")
    a_body, b_body = c_index[ids["a"]][body_column], c_index[ids["b"]][body_column]
    assert a_body == b_body
    n = int(a_body.removeprefix("第").split("次")[0])
    assert before <= n <= during, (before, n, during)
    state = writer.history[n]

    for table in final:
        if table not in WRITER_TABLES and table != "figures_version":
            assert restored[table] == baseline[table], table
    # Figures tokens are new after a restore (PostgreSQL: without the dumped cluster's transaction ids).
    assert [r[0] for r in restored["figures_version"]] == [r[0] for r in baseline["figures_version"]]
    if target.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert all(r[2] is None for r in restored["figures_version"])
        assert {r[1] for r in restored["figures_version"]}.isdisjoint(r[1] for r in final["figures_version"])
    expected_contributions = sorted(
        [r for r in final["contribution"] if r[0] not in (ids["a"], ids["b"])] + state["contributions"])
    assert restored["contribution"] == expected_contributions
    attachment_columns = list(db.metadata.tables["attachment"].columns.keys())
    owner = attachment_columns.index("contribution_id")
    expected_attachments = sorted(
        [r for r in final["attachment"] if r[owner] != ids["a"]] + state["attachments"])
    assert restored["attachment"] == expected_attachments
    assert max(r[0] for r in restored["audit_event"]) == state["audit_max"]
    assert restored["audit_event"] == [r for r in final["audit_event"] if r[0] <= state["audit_max"]]

    # Every attachment's bytes came back, and only those.
    stored = attachment_columns.index("stored_name")
    digest = attachment_columns.index("sha256")
    want = {f"{r[stored][:2]}/{r[stored]}": r[digest] for r in restored["attachment"]}
    assert _files(Path(target.config["UPLOAD_FOLDER"])) == want
    assert len(want) >= 9

    from fazhi_flow.models import Publication

    with target.app_context():
        publications = list(db.session.scalars(select(Publication)))
        assert len(publications) == 1 and all(p.verify() for p in publications)
        assert restored["publication"] == baseline["publication"]
        assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        db.session.remove()
        db.engine.dispose()

    # The restored instance is in use now: a second restore is refused and changes nothing.
    again = _cli(target, "restore", str(archive))
    assert again.exit_code == 1 and "目标数据库不是空的" in again.output
    assert _rows(target) == restored


# ---------------------------------------------------------------- refusals


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive, "r:gz") as tar:
        return [(info, tar.extractfile(info).read()) for info in tar.getmembers()]


def _rewrite(archive: Path, out: Path, change) -> Path:
    """Write ``out`` with the members of ``archive`` passed through ``change(name, data)``, which
    returns new bytes or None to leave the member out."""
    with tarfile.open(out, "w:gz") as tar:
        for info, data in _members(archive):
            data = change(info.name, data)
            if data is None:
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _with_manifest(edit):
    def change(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()
    return change


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def test_damaged_or_foreign_archives_are_refused_with_nothing_written(instance, monkeypatch, tmp_path):
    source = instance("source", schema=True)
    _build_source(source, monkeypatch)
    archive = tmp_path / "good.tar.gz"
    assert _cli(source, "backup", "-o", str(archive)).exit_code == 0
    raw = archive.read_bytes()
    upload_member = next(info.name for info, _ in _members(archive) if info.name.startswith("uploads/"))
    db_member = next(info.name for info, _ in _members(archive) if info.name.startswith("database/"))
    other_kind = "postgresql" if source.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "sqlite"

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    cases = {
        "flipped byte": (write("flipped.tar.gz", _flip(raw, len(raw) // 2)), "已损坏"),
        "truncated": (write("short.tar.gz", raw[: len(raw) * 2 // 3]), "已损坏"),
        "not gzip": (write("junk.tar.gz", b"hello" * 100), "已损坏"),
        "empty file": (write("empty.tar.gz", b""), "已损坏"),
        "member removed": (_rewrite(archive, tmp_path / "removed.tar.gz",
                                    lambda n, d: None if n == upload_member else d), "缺少"),
        "manifest removed": (_rewrite(archive, tmp_path / "nomanifest.tar.gz",
                                      lambda n, d: None if n == "manifest.json" else d), "缺少 manifest.json"),
        "member changed": (_rewrite(archive, tmp_path / "changed.tar.gz",
                                    lambda n, d: _flip(d, len(d) // 2) if n == db_member else d), "SHA-256"),
        "extra member": (_rewrite(archive, tmp_path / "extra.tar.gz",
                                  lambda n, d: d), None),
        "newer format": (_rewrite(archive, tmp_path / "newer.tar.gz", _with_manifest(
            lambda m: m.update(format_version=m["format_version"] + 1))), "格式版本"),
        "foreign format": (_rewrite(archive, tmp_path / "foreign.tar.gz", _with_manifest(
            lambda m: m.update(format="something-else"))), "不是本系统的备份文件"),
        "newer schema": (_rewrite(archive, tmp_path / "schema.tar.gz", _with_manifest(
            lambda m: m.update(migration_revision="9999"))), "比本程序新"),
        "other database kind": (_rewrite(archive, tmp_path / "kind.tar.gz", _with_manifest(
            lambda m: m["database"].update(kind=other_kind))), "不支持跨数据库类型恢复"),
        "missing file": (tmp_path / "nothere.tar.gz", "找不到备份文件"),
    }
    # An extra member not in the manifest: appended to a faithful copy.
    extra = tmp_path / "extra.tar.gz"
    with tarfile.open(extra, "w:gz") as tar:
        for info, data in _members(archive):
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("uploads/ab/ab" + "0" * 30 + ".png")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    cases["extra member"] = (extra, "清单之外")

    target = instance("target")  # no schema at all
    for label, (path, words) in cases.items():
        result = _cli(target, "restore", str(path))
        assert result.exit_code == 1, (label, result.output)
        assert words in result.output, (label, result.output)
        assert "Traceback" not in result.output, label
        _assert_empty(target)
        # The work folder beside the upload folder is gone too.
        assert [p.name for p in Path(target.config["UPLOAD_FOLDER"]).parent.iterdir()
                if p.name.startswith(".fazhi")] == [], label

    # The same target takes the good archive.
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 0, result.output


def test_used_upload_folder_is_refused(instance, monkeypatch, tmp_path):
    source = instance("source", schema=True)
    _build_source(source, monkeypatch)
    archive = tmp_path / "b.tar.gz"
    assert _cli(source, "backup", "-o", str(archive)).exit_code == 0
    target = instance("target", schema=True)
    leftover = Path(target.config["UPLOAD_FOLDER"]) / "ab" / "old.pdf"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"%PDF-old")
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 1 and "上传目录" in result.output and "已有文件" in result.output
    leftover.unlink()
    _assert_empty(target)


def test_backup_refuses_to_overwrite_without_force(instance, monkeypatch, tmp_path):
    source = instance("source", schema=True)
    with source.app_context():
        from fazhi_flow.models import Unit

        db.session.add(Unit(code="x", name="某单位", kind="government"))
        db.session.commit()
        db.session.remove()
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"an earlier backup")
    refused = _cli(source, "backup", "-o", str(archive))
    assert refused.exit_code == 1 and "--force" in refused.output
    assert archive.read_bytes() == b"an earlier backup"
    forced = _cli(source, "backup", "-o", str(archive), "--force")
    assert forced.exit_code == 0, forced.output
    manifest = json.loads(next(d for i, d in _members(archive) if i.name == "manifest.json"))
    assert manifest["counts"]["unit"] == 1 and manifest["migration_revision"] == HEAD_REVISION
    assert manifest["format_version"] == 1 and manifest["app_version"]
    for info, data in _members(archive):
        if info.name != "manifest.json":
            assert manifest["members"][info.name]["sha256"] == hashlib.sha256(data).hexdigest()
    no_dir = _cli(source, "backup", "-o", str(tmp_path / "missing" / "b.tar.gz"))
    assert no_dir.exit_code == 1 and "不存在" in no_dir.output
    a_dir = _cli(source, "backup", "-o", str(tmp_path))
    assert a_dir.exit_code == 1 and "是一个目录" in a_dir.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.skipif(shutil.which("fazhi-flow") is None, reason="the package is not installed (pip install -e .)")
def test_command_line_process_damaged_archive(new_database, tmp_path):
    """The installed command, as an operator runs it: one message, exit status 1, no traceback."""
    env = {**os.environ, "FAZHI_DATABASE_URL": new_database(), "FAZHI_UPLOAD_FOLDER": str(tmp_path / "up"),
           "FAZHI_INSTANCE_PATH": str(tmp_path / "inst")}
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(gzip.compress(b"not a tar archive at all" * 50)[:-10])
    done = subprocess.run([shutil.which("fazhi-flow"), "restore", str(broken)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "已损坏" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "up").exists() or _files(tmp_path / "up") == {}


def test_attachments_kept_in_the_database_travel_in_the_dump(instance, monkeypatch, tmp_path):
    """With ATTACHMENT_STORAGE=database the bytes are rows of attachment_blob: the archive holds no
    upload files, and the restored instance serves the same bytes."""
    from fazhi_flow.models import Attachment, AttachmentBlob
    from fazhi_flow.services.attachments import read_bytes

    monkeypatch.setenv("FAZHI_ATTACHMENT_STORAGE", "database")
    source = instance("source", schema=True)
    _build_source(source, monkeypatch)
    with source.app_context():
        want = {a.stored_name: a.sha256 for a in db.session.scalars(select(Attachment))}
        assert len(want) == 9 and db.session.query(AttachmentBlob).count() == 9
        db.session.remove()
    assert _files(Path(source.config["UPLOAD_FOLDER"])) == {}
    archive = tmp_path / "b.tar.gz"
    assert _cli(source, "backup", "-o", str(archive)).exit_code == 0
    assert not [i.name for i, _ in _members(archive) if i.name.startswith("uploads/")]

    target = instance("target")
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    with target.app_context():
        got = {a.stored_name: hashlib.sha256(read_bytes(a.stored_name)).hexdigest()
               for a in db.session.scalars(select(Attachment))}
        db.session.remove()
        db.engine.dispose()
    assert got == want
    assert _rows(target)["attachment_blob"] == _rows(source)["attachment_blob"]


def test_missing_postgresql_client_is_named(instance, is_postgres, monkeypatch, tmp_path):
    if not is_postgres:
        pytest.skip("pg_dump is used only with a PostgreSQL database")
    source = instance("source", schema=True)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = _cli(source, "backup", "-o", str(tmp_path / "b.tar.gz"))
    assert result.exit_code == 1 and "找不到 pg_dump" in result.output and "postgresql-client" in result.output
    assert not (tmp_path / "b.tar.gz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_backup_of_an_older_schema_restores_then_upgrades(instance, monkeypatch, tmp_path):
    """A backup made before migration 0003 (no attachment_blob table yet) restores into an instance
    whose empty schema is already at head: the restore says to upgrade, and the upgrade keeps it all."""
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import org
    from fazhi_flow.services.demo import load_demo

    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    source = instance("source")
    with source.app_context():
        # The models are at head: the district is written at head and the database taken back to 0002.
        upgrade()
        load_demo()
        db.session.remove()
        downgrade(revision="0002")
        db.engine.dispose()
    before = _rows_present(source)
    archive = tmp_path / "old.tar.gz"
    made = _cli(source, "backup", "-o", str(archive))
    assert made.exit_code == 0 and "迁移版本 0002" in made.output, made.output

    target = instance("target", schema=True)
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    assert "0002" in result.output and "fazhi-flow db upgrade" in result.output
    assert _rows_present(target) == before  # exactly the old schema's tables, none of head's
    with target.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    after = _rows_present(target, skip_columns={
        ("report_cycle", "opened_at"), ("report_cycle", "publish_deadline"), ("report_cycle", "region_id"),
        ("unit", "region_id"), ("user", "region_id"), ("indicator", "rollup"),
        ("user", "password_login_disabled"), ("user", "sso_subject"), ("section", "review_mode"),
        ("transition_log", "on_behalf_of_id"), ("audit_event", "on_behalf_of_id")})
    assert after.pop("job_status") == [] and after.pop("attachment_blob") == [] and after.pop("channel_health") == []
    assert after.pop("api_token") == [] and after.pop("delegation") == [] and after.pop("contribution_approval") == []
    # One figures token per cycle, written by the upgrade.
    assert sorted(row[0] for row in after.pop("figures_version")) == sorted(row[0] for row in before["report_cycle"])
    # The district became one region, which owns everything.
    assert [row[2] for row in after.pop("region")] == ["益阳市赫山区"]
    assert after == before


def _rows_present(app, skip_columns=()) -> dict:
    """Every row of every table the database has, in the columns it has (less ``skip_columns``, as
    (table, column) pairs)."""
    with app.app_context():
        with db.engine.connect() as conn:
            inspector = db.inspect(conn)
            out = {}
            for t in db.metadata.sorted_tables:
                if t.name not in inspector.get_table_names():
                    continue
                have = {c["name"] for c in inspector.get_columns(t.name)}
                cols = [c for c in t.columns if c.name in have and (t.name, c.name) not in skip_columns]
                out[t.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*t.primary_key.columns))]
        db.engine.dispose()
        return out
