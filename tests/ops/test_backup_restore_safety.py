"""fazhi-flow restore refuses archives with odd member names or manifest fields before writing
anything, and a failure after the database was written leaves the target empty again, so the same
restore can simply be run once more. Runs on the test database's kind (SQLite or PostgreSQL)."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fazhi_flow.extensions import db
from fazhi_flow.ops import backup

from . import test_backup as base
from .test_backup import _assert_empty, _build_source, _cli, _files, _members, _rows

# The fixtures of the backup tests, used here under the same names.
instance, new_database = base.instance, base.new_database

STORED = "ab" + "0" * 30 + ".png"


@pytest.fixture()
def good_archive(instance, monkeypatch, tmp_path):
    source = instance("source", schema=True)
    _build_source(source, monkeypatch)
    archive = tmp_path / "good.tar.gz"
    made = _cli(source, "backup", "-o", str(archive))
    assert made.exit_code == 0, made.output
    return archive


def _rebuild(archive: Path, out: Path, extra=(), edit=None) -> Path:
    """``archive``'s members plus ``extra`` (TarInfo, bytes) entries, each listed in the manifest with
    its true checksum (so only its name or kind is wrong); ``edit(manifest)`` changes the manifest."""
    members = _members(archive)
    manifest = json.loads(next(d for i, d in members if i.name == "manifest.json"))
    with tarfile.open(out, "w:gz") as tar:
        for info, data in members:
            if info.name != "manifest.json":
                tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
            manifest["members"][info.name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        if edit:
            edit(manifest)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


def _entry(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _assert_untouched(target, tmp_path, label):
    _assert_empty(target)
    folder = Path(target.config["UPLOAD_FOLDER"])
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".fazhi")] == [], label
    assert not list(tmp_path.rglob("pwned*")), label


def _refused(target, archive, words, label):
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 1, (label, result.output)
    assert words in result.output, (label, result.output)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, (label, result.output)


def test_members_must_be_canonical_regular_files(instance, good_archive, tmp_path):
    sqlite_member = next(i.name for i, _ in _members(good_archive) if i.name.startswith("database/"))
    escape = "../" * (len(Path(tmp_path).parts) + 2) + str(tmp_path).lstrip("/") + "/pwned_dotdot"
    cases = {
        "dot-dot out of the folder": [(_entry(f"uploads/{escape}"), b"x")],
        "dot-dot as the name": [(_entry("uploads/ab/.."), b"x")],
        "absolute path": [(_entry(str(tmp_path / "pwned_abs")), b"x")],
        "dot part": [(_entry(f"uploads/./{STORED}"), b"<script>")],
        "dot as the name": [(_entry("uploads/ab/."), b"x")],
        "double slash": [(_entry(f"uploads/ab//{STORED}"), b"x")],
        "trailing slash": [(_entry(f"uploads/ab/{STORED}/"), b"x")],
        "html page": [(_entry("uploads/ev/evil.html"), b"<script>")],
        "folder not the name's start": [(_entry(f"uploads/cd/{STORED}"), b"x")],
        "too deep": [(_entry(f"uploads/ab/ab/{STORED}"), b"x")],
        "other database name": [(_entry("database/other.sqlite3"), b"x")],
        "symlink": [(_entry(f"uploads/ab/{STORED}", tarfile.SYMTYPE, "/etc/passwd"), b"")],
        "hard link": [(_entry(f"uploads/ab/{STORED}", tarfile.LNKTYPE, sqlite_member), b"")],
        "directory": [(_entry("uploads/ab", tarfile.DIRTYPE), b"")],
    }
    target = instance("target")
    for n, (label, extra) in enumerate(cases.items()):
        archive = _rebuild(good_archive, tmp_path / f"m{n}.tar.gz", extra)
        _refused(target, archive, "包含不应有的内容", label)
        _assert_untouched(target, tmp_path, label)
    # A canonical upload member that is merely unexpected is named as such, not as a bad name.
    _refused(target, _rebuild(good_archive, tmp_path / "ok_name.tar.gz", [(_entry(f"uploads/ab/{STORED}"), b"x")],
                              edit=lambda m: m["members"].pop(f"uploads/ab/{STORED}")), "清单之外", "extra")
    assert _cli(target, "restore", str(good_archive)).exit_code == 0


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def test_manifest_fields_are_checked_before_anything_is_written(instance, good_archive, tmp_path):
    cases = {
        "counts a list": _set("counts", [1]),
        "counts of text": lambda m: m["counts"].__setitem__("unit", "3"),
        "missing_files a number": _set("missing_files", 5),
        "missing_files of numbers": _set("missing_files", [5]),
        "created_at missing": lambda m: m.pop("created_at"),
        "created_at not a date": _set("created_at", "yesterday"),
        "migration_revision a list": _set("migration_revision", ["0003"]),
        "migration_revision missing": lambda m: m.pop("migration_revision"),
        "database a list": _set("database", ["sqlite"]),
        "database.kind a list": lambda m: m["database"].__setitem__("kind", ["sqlite"]),
        "database.kind unknown": lambda m: m["database"].__setitem__("kind", "oracle"),
        "server version text": lambda m: m["database"].__setitem__("server_major_version", "16"),
        "member entry not an object": lambda m: m["members"].__setitem__(next(iter(m["members"])), "x"),
        "format_version text": _set("format_version", "1"),
        "app_version a number": _set("app_version", 1),
    }
    target = instance("target")
    for n, (label, edit) in enumerate(cases.items()):
        archive = _rebuild(good_archive, tmp_path / f"f{n}.tar.gz", edit=edit)
        _refused(target, archive, "已损坏", label)
        _assert_untouched(target, tmp_path, label)
    assert _cli(target, "restore", str(good_archive)).exit_code == 0


def _target_state(target):
    """What is in the target database: table names (and whether the SQLite file exists)."""
    url = make_url(target.config["SQLALCHEMY_DATABASE_URI"])
    exists = url.get_backend_name() != "sqlite" or Path(url.database).exists()
    if not exists:
        return exists, [], None  # connecting would create the file
    with target.app_context():
        with db.engine.connect() as conn:
            tables = sorted(db.inspect(conn).get_table_names())
            revision = (conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                        if "alembic_version" in tables else None)
        db.engine.dispose()
    return exists, tables, revision


@pytest.mark.parametrize("schema", [False, True], ids=["no-schema", "empty-schema"])
def test_counts_that_do_not_match_undo_the_restore(instance, good_archive, tmp_path, is_postgres, schema):
    """The manifest's counts are not covered by a member checksum: a count one higher is found only
    after the database and the files were written, and both are taken away again."""
    target = instance("target", schema=schema)
    before = _target_state(target)
    archive = _rebuild(good_archive, tmp_path / "counts.tar.gz",
                       edit=lambda m: m["counts"].__setitem__("unit", m["counts"]["unit"] + 1))
    result = _cli(target, "restore", str(archive))
    assert result.exit_code == 1, result.output
    assert "行数与备份清单不符" in result.output and "已撤销" in result.output, result.output
    assert "Traceback" not in result.output
    if is_postgres:
        assert "没有任何表" in result.output
        assert _target_state(target)[1] == []
    else:
        # SQLite: exactly as before (the empty schema kept, or no file at all).
        assert _target_state(target) == before
    _assert_untouched(target, tmp_path, "counts")
    again = _cli(target, "restore", str(good_archive))
    assert again.exit_code == 0, again.output


def test_failure_while_placing_files_undoes_the_database(instance, good_archive, tmp_path, monkeypatch):
    target = instance("target", schema=True)
    calls = []

    def failing_move(source, dest):
        calls.append(dest)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        backup.os.replace(source, dest)

    monkeypatch.setattr(backup, "_move", failing_move)
    result = _cli(target, "restore", str(good_archive))
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "已撤销" in result.output
    assert len(calls) == 3
    _assert_untouched(target, tmp_path, "placing")
    monkeypatch.undo()
    again = _cli(target, "restore", str(good_archive))
    assert again.exit_code == 0, again.output
    source_rows = _rows(target)
    assert source_rows["attachment"] and _files(Path(target.config["UPLOAD_FOLDER"]))


def test_restore_of_a_directory_is_one_line(instance, tmp_path):
    target = instance("target")
    result = _cli(target, "restore", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is a directory" in lines[0], result.output
    assert "Usage:" not in result.output
