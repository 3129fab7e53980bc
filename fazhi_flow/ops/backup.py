"""``fazhi-flow backup`` and ``fazhi-flow restore``: one archive with a consistent database snapshot,
the attachment files and a manifest with a SHA-256 for every member.

Archive layout (tar.gz)::

    database/fazhi_flow.sqlite3   SQLite: a copy made with the online backup API, or
    database/fazhi_flow.pgdump    PostgreSQL: ``pg_dump --format=custom``
    uploads/<2 hex>/<name>        the file of every attachment in the snapshot whose bytes are not
                                  in table attachment_blob (those travel in the database)
    manifest.json                 written last, once every member's checksum is known

Published reports (table publication) keep their text, HTML, Word and PDF in the database, so the
database member carries them.

Consistency between the snapshot and the files: an attachment's file is written before its row is
committed and removed only after the commit that deleted the row, and files are never rewritten.
So the files are linked into a work folder *before* the snapshot (a row deleted after the snapshot
still has its file), and files of rows committed between that listing and the snapshot are picked
up right after it. Only the files of attachments in the snapshot go into the archive.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..services.attachments import DELETION_LOCK, deletions_lock
from ..timeutil import cn_datetime_text, zone_label
from .clickutil import PlainCommand

FORMAT = "fazhi-flow-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/fazhi_flow.sqlite3"
PG_MEMBER = "database/fazhi_flow.pgdump"
UPLOADS = "uploads"
# Counted into the manifest and compared again after a restore.
KEY_TABLES = ("unit", "user", "report_cycle", "section", "assignment", "contribution", "revision",
              "attachment", "attachment_blob", "report_draft_version", "publication", "audit_event",
              "transition_log")
# Rows here do not make a database "in use": the schema marker, the scheduler's heartbeat and
# failed-login counters appear on an instance nobody has worked with yet.
IGNORED_WHEN_EMPTY = ("alembic_version", "job_status", "login_throttle")
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A refusal or failure with the one message the operator sees."""


# ---------------------------------------------------------------- helpers


def _utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _app_version() -> str:
    from .. import __version__

    return __version__


def _database_kind(url) -> str:
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"不支持的数据库类型：{backend}（只支持 SQLite 和 PostgreSQL）。")
    return backend


def _sqlite_path(url) -> Path:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("SQLite 数据库必须是一个文件（FAZHI_DATABASE_URL=sqlite:///路径）。")
    return Path(database)


def _pg_env(url) -> tuple[str, dict]:
    """A libpq URI without the password for the client tools, and the password in the environment
    (not on the command line, where other users of the machine could read it)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"找不到 {name}：请安装与数据库服务器主版本相同的 PostgreSQL 客户端"
                          f"（Debian/Ubuntu：apt install postgresql-client-<版本>），并确保它在 PATH 中。")
    return path


def _tool_major(path: str) -> int:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"无法运行 {path}：{exc}") from None
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    if not found:
        raise BackupError(f"无法识别 {path} 的版本：{out.strip()[:100]}")
    return int(found.group(1))


def _server_major(conn) -> int:
    return int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000


def _upload_folder() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def _upload_files(folder: Path) -> dict[str, Path]:
    """Relative POSIX name -> path of every attachment file (half-written ``.part`` files left out)."""
    found = {}
    if not folder.is_dir():
        return found
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(".part") or name == DELETION_LOCK:
                continue
            path = Path(root) / name
            found[path.relative_to(folder).as_posix()] = path
    return found


def _link_or_copy(source: Path, target: Path) -> bool:
    """Hard-link (or, across file systems, copy) ``source`` to ``target``; False if it is gone."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        shutil.copyfile(source, target)
        return True
    except FileNotFoundError:
        return False


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stored_relpath(stored_name: str) -> str:
    # The layout of services/attachments.storage_path: <first two characters>/<stored name>.
    return f"{stored_name[:2]}/{stored_name}"


# ---------------------------------------------------------------- what a snapshot holds


@dataclass
class Snapshot:
    kind: str
    member: str
    path: Path
    revision: str | None
    counts: dict
    attachments: list  # (stored_name, sha256) of attachments whose bytes are files
    server_version: int | None = None
    extra: dict = field(default_factory=dict)


def _read_snapshot_facts(conn_execute) -> tuple[str | None, dict, list]:
    """Migration revision, key table counts and the attachments kept as files, read through
    ``conn_execute(sql) -> rows`` inside the snapshot."""
    tables = set(conn_execute("__tables__"))
    revision = None
    if "alembic_version" in tables:
        rows = conn_execute("SELECT version_num FROM alembic_version")
        revision = rows[0][0] if rows else None
    counts = {}
    for table in KEY_TABLES:
        if table in tables:
            counts[table] = int(conn_execute(f'SELECT COUNT(*) FROM "{table}"')[0][0])
    files = []
    if "attachment" in tables:
        blob_clause = ""
        if "attachment_blob" in tables:
            blob_clause = (" WHERE NOT EXISTS (SELECT 1 FROM attachment_blob b"
                           " WHERE b.stored_name = a.stored_name)")
        files = [(r[0], r[1]) for r in conn_execute(
            f"SELECT a.stored_name, a.sha256 FROM attachment a{blob_clause} ORDER BY a.stored_name")]
    return revision, counts, files


def _snapshot_sqlite(url, work: Path) -> Snapshot:
    source = _sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"找不到数据库文件 {source}。")
    target = work / "database.sqlite3"
    try:
        src = sqlite3.connect(source, timeout=60)
        try:
            dst = sqlite3.connect(target)
            try:
                # One step (pages=-1): the whole copy is made under one read transaction, so it is
                # the database as of one moment even while the application keeps writing (WAL).
                src.backup(dst, pages=-1)
                # One self-contained file, not a WAL database needing its -wal companion.
                dst.execute("PRAGMA journal_mode=DELETE")

                def run(sql):
                    if sql == "__tables__":
                        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
                        return [r[0] for r in dst.execute(sql)]
                    return dst.execute(sql).fetchall()

                revision, counts, files = _read_snapshot_facts(run)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"读取 SQLite 数据库失败：{exc}") from None
    return Snapshot("sqlite", SQLITE_MEMBER, target, revision, counts, files)


def _snapshot_postgres(url, work: Path) -> Snapshot:
    from ..extensions import db

    pg_dump = _tool("pg_dump")
    client_major = _tool_major(pg_dump)
    target = work / "database.pgdump"
    uri, env = _pg_env(url)
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            server_major = _server_major(conn)
            if client_major < server_major:
                raise BackupError(f"pg_dump 版本（{client_major}）低于数据库服务器版本（{server_major}），"
                                  f"无法备份：请安装 postgresql-client-{server_major}。")
            # pg_dump reads the snapshot this transaction exported, so the dump and the facts read
            # below (attachment list, counts) describe the same moment.
            snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar()

            def run(sql):
                if sql == "__tables__":
                    return [r[0] for r in conn.execute(text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"))]
                return [tuple(r) for r in conn.execute(text(sql))]

            revision, counts, files = _read_snapshot_facts(run)
            command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges",
                       f"--snapshot={snapshot_id}", f"--file={target}", f"--dbname={uri}"]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise BackupError(f"pg_dump 失败：{done.stderr.strip()[-500:]}")
    return Snapshot("postgresql", PG_MEMBER, target, revision, counts, files, server_major)


# ---------------------------------------------------------------- backup


class _HashingReader:
    """A file wrapper that hashes what tarfile reads from it, so each member is read only once."""

    def __init__(self, fh):
        self.fh = fh
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.fh.read(size)
        self.digest.update(data)
        return data


def _add_member(archive: tarfile.TarFile, name: str, path: Path, members: dict) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o600
    info.mtime = int(path.stat().st_mtime)
    with open(path, "rb") as fh:
        reader = _HashingReader(fh)
        archive.addfile(info, reader)
    members[name] = {"sha256": reader.digest.hexdigest(), "size": info.size}


@dataclass
class BackupResult:
    path: Path
    manifest: dict
    warnings: list


def create_backup(output: Path, force: bool = False) -> BackupResult:
    """Write the archive to ``output`` (via a temporary file renamed at the end)."""
    output = Path(output)
    if output.is_dir():
        raise BackupError(f"{output} 是一个目录，请给出备份文件名，例如 -o {output / 'fazhi-backup.tar.gz'}。")
    if output.exists() and not force:
        raise BackupError(f"{output} 已存在；要覆盖请加 --force。")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise BackupError(f"目录 {parent} 不存在。")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    kind = _database_kind(url)
    folder = _upload_folder()
    warnings: list[str] = []
    try:
        work = Path(tempfile.mkdtemp(prefix=".fazhi-backup-", dir=parent))
    except OSError as exc:
        raise BackupError(f"无法在 {parent} 中写入：{exc}") from None
    part = None
    try:
        early = work / "early"
        # No attachment file is deleted from the listing until the snapshot's files are gathered.
        with deletions_lock(folder, exclusive=True):
            for rel, path in _upload_files(folder).items():
                _link_or_copy(path, early / rel)

            snapshot = (_snapshot_sqlite if kind == "sqlite" else _snapshot_postgres)(url, work)

            files, missing = _staged_attachments(snapshot, early, folder, warnings)

        fd, part_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=parent)
        os.close(fd)
        part = Path(part_name)
        manifest = _write_archive(part, snapshot, files, missing)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        _move_into_place(part, output, force)
        part = None
        return BackupResult(output, manifest, warnings)
    except OSError as exc:
        raise BackupError(f"写入备份失败：{exc}") from None
    finally:
        if part is not None:
            part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _staged_attachments(snapshot, early: Path, folder: Path, warnings: list) -> tuple[list, list]:
    """(member name, staged file) of every attachment the snapshot lists, and the stored names of
    those whose file is missing; warnings for missing and altered files."""
    files: list[tuple[str, Path]] = []
    missing = []
    for stored_name, sha256 in snapshot.attachments:
        rel = _stored_relpath(stored_name)
        staged = early / rel
        if not staged.is_file() and not _link_or_copy(folder / rel, staged):
            missing.append(stored_name)
            warnings.append(f"附件文件缺失：{rel}（数据库中有记录，上传目录中没有该文件）")
            continue
        files.append((f"{UPLOADS}/{rel}", staged))
        if sha256 and _file_sha256(staged) != sha256:
            warnings.append(f"附件文件与登记的 SHA-256 不符（已按现状备份）：{rel}")
    return files, missing


def _write_archive(part: Path, snapshot, files: list, missing: list) -> dict:
    """Write the database, the attachments and then the manifest into ``part``; return the manifest."""
    members: dict = {}
    with tarfile.open(part, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as archive:
        _add_member(archive, snapshot.member, snapshot.path, members)
        for name, path in files:
            _add_member(archive, name, path, members)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": _app_version(),
            "migration_revision": snapshot.revision,
            "database": {"kind": snapshot.kind, "member": snapshot.member,
                         "server_major_version": snapshot.server_version},
            "attachment_storage": current_app.config.get("ATTACHMENT_STORAGE") or "folder",
            "created_at": _utc_now(),
            "counts": snapshot.counts,
            "missing_files": missing,
            "members": members,
        }
        data = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mode = 0o600
        info.mtime = int(datetime.now(UTC).timestamp())
        archive.addfile(info, _BytesReader(data))
    return manifest


def _move_into_place(part: Path, output: Path, force: bool) -> None:
    if force:
        os.replace(part, output)
        return
    try:
        # link() refuses an existing name: a file created meanwhile is not overwritten.
        os.link(part, output)
    except FileExistsError:
        raise BackupError(f"{output} 已存在；要覆盖请加 --force。") from None
    part.unlink()


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, size=-1):
        end = len(self.data) if size is None or size < 0 else self.pos + size
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


# ---------------------------------------------------------------- restore: read and verify


def _damaged(detail: str) -> BackupError:
    return BackupError(f"备份文件已损坏或不完整，未恢复任何内容：{detail}")


# Exactly the names a backup writes: the database member, the manifest, and uploads/<first two
# characters of the stored name>/<stored name> (services/attachments: token_hex(16) + "." + extension).
_UPLOAD_MEMBER = re.compile(r"^uploads/([0-9a-f]{2})/(\1[0-9a-f]{30}\.[A-Za-z0-9]{1,10})$")


_KIND_MEMBER = {"sqlite": SQLITE_MEMBER, "postgresql": PG_MEMBER}


def _canonical_member(name: str) -> bool:
    pure = PurePosixPath(name)
    if pure.as_posix() != name or pure.is_absolute() or any(p in (".", "..") for p in name.split("/")):
        return False
    return name in (MANIFEST, SQLITE_MEMBER, PG_MEMBER) or bool(_UPLOAD_MEMBER.match(name))


def _unpack(archive_path: Path, work: Path) -> dict[str, dict]:
    """Unpack every member into ``work``; name -> its SHA-256 and size as read."""
    seen: dict[str, dict] = {}
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for info in archive:
                name = info.name
                # Regular files under canonical names only: no links, devices, "..", "." or absolute paths.
                if not info.isreg() or not _canonical_member(name):
                    raise _damaged(f"包含不应有的内容“{name[:80]}”")
                if name in seen:
                    raise _damaged(f"“{name[:80]}”出现了两次")
                target = work.joinpath(*PurePosixPath(name).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(info)
                digest, size = hashlib.sha256(), 0
                with open(target, "xb") as out:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                seen[name] = {"sha256": digest.hexdigest(), "size": size}
    except BackupError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _damaged(f"无法解包（{exc or type(exc).__name__}）") from None
    return seen


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema_problem(manifest: dict) -> str | None:
    """What is wrong with the manifest's fields (types and required keys), or None. Checked in full
    before anything is written, so that no later step meets a value of the wrong kind."""
    for key in ("format_version", "migration_revision", "database", "created_at", "counts",
                "missing_files", "members"):
        if key not in manifest:
            return f"缺少 {key}"
    if not _is_int(manifest["format_version"]):
        return "format_version 不是整数"
    revision = manifest["migration_revision"]
    if revision is not None and (not isinstance(revision, str) or not re.fullmatch(r"[0-9A-Za-z_]{1,64}", revision)):
        return "migration_revision 格式不对"
    for key in ("app_version", "attachment_storage"):
        if key in manifest and not isinstance(manifest[key], str):
            return f"{key} 不是文字"
    created = manifest["created_at"]
    try:
        datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return "created_at 不是日期时间"
    database = manifest["database"]
    if not isinstance(database, dict):
        return "database 不是对象"
    if not isinstance(database.get("kind"), str) or database["kind"] not in _KIND_MEMBER:
        return "database.kind 应为 sqlite 或 postgresql"
    if not isinstance(database.get("member"), str) or database["member"] not in _KIND_MEMBER.values():
        return "database.member 不是数据库文件"
    major = database.get("server_major_version")
    if major is not None and not _is_int(major):
        return "database.server_major_version 不是整数"
    counts = manifest["counts"]
    if not isinstance(counts, dict) or not all(
            isinstance(k, str) and _is_int(v) and v >= 0 for k, v in counts.items()):
        return "counts 应为“表名: 行数”"
    missing = manifest["missing_files"]
    if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
        return "missing_files 应为文件名列表"
    members = manifest["members"]
    if not isinstance(members, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) and _is_int(v.get("size"))
            for v in members.values()):
        return "members 应为“成员: {sha256, size}”"
    return None


def _extract_verified(archive_path: Path, work: Path) -> dict:
    """Unpack every member into ``work`` and return the manifest once every checksum matched and
    every field has the expected type."""
    seen = _unpack(archive_path, work)
    if MANIFEST not in seen:
        raise _damaged("缺少 manifest.json")
    try:
        manifest = json.loads((work / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _damaged(f"manifest.json 无法读取（{exc}）") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("这不是本系统的备份文件（manifest.json 的 format 不符），未恢复任何内容。")
    version = manifest.get("format_version")
    if _is_int(version) and version > FORMAT_VERSION:
        raise BackupError(f"备份格式版本为 {version}，本程序只认识 {FORMAT_VERSION} 及以下："
                          "请用生成该备份的版本（或更新的版本）恢复。未恢复任何内容。")
    problem = _schema_problem(manifest)
    if problem:
        raise _damaged(f"manifest.json 内容不对（{problem}）")
    members = manifest["members"]
    present = set(seen) - {MANIFEST}
    lost = sorted(set(members) - present)
    if lost:
        raise _damaged(f"缺少 {len(lost)} 个文件，例如“{lost[0][:80]}”")
    extra = sorted(present - set(members))
    if extra:
        raise _damaged(f"有清单之外的文件，例如“{extra[0]}”")
    for name, expected in members.items():
        if seen[name] != {"sha256": expected["sha256"], "size": expected["size"]}:
            raise _damaged(f"“{name}”的 SHA-256 校验不符")
    if manifest["database"]["member"] not in members:
        raise _damaged("清单中没有数据库文件")
    return manifest


# ---------------------------------------------------------------- restore: the target


def _nonempty_tables(rows_in) -> list[tuple[str, int]]:
    return [(name, count) for name, count in rows_in if count and name not in IGNORED_WHEN_EMPTY]


def _sqlite_tables(path: Path) -> list[tuple[str, int]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    try:
        conn = sqlite3.connect(path, timeout=60)
        try:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            return [(n, conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"无法读取目标数据库 {path}：{exc}") from None


def _pg_tables(conn) -> list[tuple[str, int]]:
    names = [r[0] for r in conn.execute(text(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"))]
    return [(n, conn.execute(text(f'SELECT COUNT(*) FROM "{n}"')).scalar()) for n in names]


def _pg_tables_now() -> list[tuple[str, int]]:
    from ..extensions import db

    try:
        with db.engine.connect() as conn:
            return _pg_tables(conn)
    except SQLAlchemyError as exc:
        raise BackupError(f"无法连接目标数据库：{_first_line(exc)}") from None
    finally:
        db.engine.dispose()


def _refuse_if_in_use(tables: list[tuple[str, int]]) -> None:
    busy = _nonempty_tables(tables)
    if busy:
        listing = "、".join(f"{name}（{count}行）" for name, count in busy[:5])
        raise BackupError(f"目标数据库不是空的：{listing}。恢复只写入空数据库，以免覆盖现有数据；"
                          "请换一个新建的空数据库，或确认不再需要后自行清空。未恢复任何内容。")


def _known_revisions() -> tuple[set[str], set[str]]:
    from alembic.script import ScriptDirectory

    config = current_app.extensions["migrate"].migrate.get_config(
        current_app.extensions["migrate"].directory)
    script = ScriptDirectory.from_config(config)
    return {rev.revision for rev in script.walk_revisions()}, set(script.get_heads())


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target, timeout=60)
        try:
            # One step: the target is either untouched or holds the whole source.
            src.backup(dst, pages=-1)
        finally:
            dst.close()
    finally:
        src.close()


def _restore_sqlite(url, work: Path, member: str, _manifest: dict):
    """Copy the snapshot into the target; returns the undo, which puts the target back as it was
    (the empty database it was, or no file at all) and says so."""
    from ..extensions import db

    target = _sqlite_path(url)
    _refuse_if_in_use(_sqlite_tables(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    db.engine.dispose()
    before = None
    try:
        if target.exists():
            before = work / "target-before.sqlite3"
            _sqlite_copy(target, before)
        _sqlite_copy(work / member, target)
    except sqlite3.Error as exc:
        raise BackupError(f"恢复 SQLite 数据库失败，目标数据库未改动：{exc}") from None

    def undo() -> str:
        db.engine.dispose()
        if before is not None:
            _sqlite_copy(before, target)
            return f"数据库文件 {target} 已还原为恢复前的样子（空数据库）"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        return f"恢复写入的数据库文件 {target} 已删除"

    return undo


def _drop_all_tables() -> None:
    from ..extensions import db

    with db.engine.connect() as conn, conn.begin():
        for name, _count in _pg_tables(conn):
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        for (name,) in conn.execute(text("SELECT sequence_name FROM information_schema.sequences"
                                         " WHERE sequence_schema = current_schema()")):
            conn.execute(text(f'DROP SEQUENCE IF EXISTS "{name}" CASCADE'))
        _drop_functions(conn)
    db.engine.dispose()


def _drop_functions(conn) -> None:
    """The trigger functions stay when their tables are dropped, and pg_restore, which creates
    them again from the dump, fails on one that exists. Extensions' functions are left alone."""
    for (signature,) in conn.execute(text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = current_schema() AND NOT EXISTS"
            " (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')")):
        conn.execute(text(f"DROP FUNCTION IF EXISTS {signature} CASCADE"))


_PG_EMPTY = ("数据库中现在没有任何表（恢复前的空表结构也已删除）：可修正后重新恢复，"
             "或运行 fazhi-flow db upgrade 重建空结构")


def _restore_postgres(url, work: Path, member: str, manifest: dict):
    """pg_restore into the target; returns the undo, which drops every table again. The target's
    empty tables are dropped (and committed) before pg_restore runs, so after a failure the
    database is left without tables, which is what the messages say."""
    from ..extensions import db

    pg_restore = _tool("pg_restore")
    client_major = _tool_major(pg_restore)
    dumped_by = manifest["database"].get("server_major_version")
    with db.engine.connect() as conn, conn.begin():
        server_major = _server_major(conn)
        if isinstance(dumped_by, int) and client_major < dumped_by:
            raise BackupError(f"pg_restore 版本（{client_major}）低于生成备份的 PostgreSQL 版本"
                              f"（{dumped_by}）：请安装 postgresql-client-{max(dumped_by, server_major)}。"
                              "未恢复任何内容。")
        # Lock every table, then check it is empty: nothing can be written in between.
        tables = _pg_tables(conn)
        names = [name for name, _count in tables]
        if names:
            quoted = ", ".join(f'"{n}"' for n in names)
            conn.execute(text(f"LOCK TABLE {quoted} IN ACCESS EXCLUSIVE MODE"))
            tables = _pg_tables(conn)
        _refuse_if_in_use(tables)
        # An empty schema (from `fazhi-flow db upgrade`, maybe of a newer version) is dropped so
        # the dump recreates exactly its own tables and migration revision.
        for name in names:
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        _drop_functions(conn)
    db.engine.dispose()
    uri, env = _pg_env(url)
    command = [pg_restore, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
               f"--dbname={uri}", str(work / member)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore 失败，已整体撤销，没有恢复任何数据；{_PG_EMPTY}。"
                          f"pg_restore 的输出：{done.stderr.strip()[-500:]}")
    _fresh_figures_tokens()

    def undo() -> str:
        _drop_all_tables()
        return "恢复写入的表已全部删除，" + _PG_EMPTY

    return undo


def _fresh_figures_tokens() -> None:
    """The restored figures tokens carry transaction ids of the dumped cluster; a transaction of this
    cluster with the same id would then leave its cycle's token unchanged. New tokens without ids."""
    from ..extensions import db

    with db.engine.connect() as conn, conn.begin():
        if conn.execute(text("SELECT to_regclass('figures_version')")).scalar() is not None:
            conn.execute(text("UPDATE figures_version SET txid = NULL,"
                              " token = floor(random() * 9007199254740991)::bigint"))
    db.engine.dispose()


def _target_files_present(folder: Path) -> bool:
    if not folder.exists():
        return False
    if not folder.is_dir():
        raise BackupError(f"UPLOAD_FOLDER {folder} 不是目录。")
    return any(path.is_file() and path.name != DELETION_LOCK for path in folder.rglob("*"))


def _move(source: Path, target: Path) -> None:
    os.replace(source, target)  # same file system: the work folder sits beside UPLOAD_FOLDER


def _place_uploads(work: Path, folder: Path, placed: list[Path], made: list[Path]) -> None:
    """Rename the unpacked files into UPLOAD_FOLDER, noting each file placed and folder made so
    that a failure can take them away again."""
    for directory in (folder.parent, folder):
        if not directory.exists():
            directory.mkdir()
            made.append(directory)
    source = work / UPLOADS
    if not source.is_dir():
        return
    for rel, path in sorted(_upload_files(source).items()):
        target = folder / rel
        if not target.parent.exists():
            target.parent.mkdir()
            made.append(target.parent)
        _move(path, target)
        placed.append(target)


def _take_back(placed: list[Path], made: list[Path]) -> None:
    for path in placed:
        path.unlink(missing_ok=True)
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            pass


def _counts_after(kind: str, url) -> dict:
    from ..extensions import db

    counts = {}
    with db.engine.connect() as conn:
        present = {r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'" if kind == "sqlite" else
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))}
        for table in KEY_TABLES:
            if table in present:
                counts[table] = int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar())
    db.engine.dispose()
    return counts


@dataclass
class RestoreResult:
    manifest: dict
    files: int
    notes: list


def restore_backup(archive_path: Path) -> RestoreResult:
    """Verify the whole archive (checksums, member names, manifest fields), then write the database,
    then rename the files into place, then compare the row counts. A failure after the database was
    written takes everything written away again; the message says what state the target is in."""
    archive_path = Path(archive_path)
    if not archive_path.is_file():
        raise BackupError(f"找不到备份文件 {archive_path}。")
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    kind = _database_kind(url)
    folder = _upload_folder()
    # Checked before anything is unpacked (and again while writing): the quick answer for a wrong target.
    _refuse_if_in_use(_sqlite_tables(_sqlite_path(url)) if kind == "sqlite" else _pg_tables_now())
    if _target_files_present(folder):
        raise BackupError(f"上传目录 {folder} 中已有文件。恢复只写入空的上传目录，以免覆盖现有附件；"
                          "请换一个空目录（FAZHI_UPLOAD_FOLDER）。未恢复任何内容。")
    # The work folder sits beside UPLOAD_FOLDER so that the files are renamed into place, not copied.
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".fazhi-restore-", dir=folder.parent))
    except OSError as exc:
        raise BackupError(f"无法在 {folder.parent} 中写入：{exc}") from None
    try:
        manifest = _extract_verified(archive_path, work)
        database = manifest["database"]
        if database["kind"] != kind:
            raise BackupError(f"备份来自 {database['kind']} 数据库，当前配置的是 {kind} 数据库；"
                              "不支持跨数据库类型恢复。未恢复任何内容。")
        if database["member"] != _KIND_MEMBER[kind]:
            raise _damaged("数据库文件与数据库类型不符")
        revision = manifest["migration_revision"]
        known, heads = _known_revisions()
        if revision is not None and revision not in known:
            raise BackupError(f"备份的数据库结构版本（迁移 {revision}）比本程序新：请先安装生成该备份的版本"
                              "（或更新的版本）再恢复。未恢复任何内容。")
        restore_database = _restore_sqlite if kind == "sqlite" else _restore_postgres
        undo_database = restore_database(url, work, database["member"], manifest)
        files = _finish_or_undo(manifest, kind, url, work, folder, undo_database)
        notes = []
        if manifest["missing_files"]:
            notes.append(f"备份时已有 {len(manifest['missing_files'])} 个附件文件缺失，这些附件无法下载。")
        if revision is None:
            notes.append("备份中没有迁移版本记录（数据库不是由 fazhi-flow db upgrade 建立的）："
                         "请核对数据库结构与本程序一致后运行 fazhi-flow db stamp head。")
        elif revision not in heads:
            notes.append(f"数据库结构版本为 {revision}，低于本程序的 {'、'.join(sorted(heads))}："
                         "请运行 fazhi-flow db upgrade。")
        return RestoreResult(manifest, files, notes)
    except OSError as exc:
        raise BackupError(f"恢复失败，目标未改动：{exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _finish_or_undo(manifest: dict, kind: str, url, work: Path, folder: Path, undo_database) -> int:
    """Place the files and compare the counts; on any failure take the files and the database back
    out. Returns the number of files placed."""
    placed: list[Path] = []
    made: list[Path] = []
    try:
        _place_uploads(work, folder, placed, made)
        expected = manifest["counts"]
        got = _counts_after(kind, url)
        differ = [t for t, n in expected.items() if got.get(t) != n]
        if differ:
            raise BackupError("恢复后的行数与备份清单不符（" + "、".join(
                f"{t}：清单{expected[t]}，实际{got.get(t)}" for t in differ[:5]) + "），请检查备份来源")
        return len(placed)
    except BaseException as exc:
        try:
            _take_back(placed, made)
            state = undo_database() + "，上传目录中放入的文件已删除"
        except Exception as undo_exc:  # noqa: BLE001 - the operator must learn the undo failed too
            state = (f"撤销也失败了（{type(undo_exc).__name__}: {_first_line(undo_exc)}）：目标数据库和上传目录"
                     f"处于部分恢复的状态，请勿使用，清空数据库和上传目录 {folder} 后重新恢复")
        if isinstance(exc, BackupError):
            detail = str(exc)
        elif isinstance(exc, (OSError, SQLAlchemyError, sqlite3.Error)):
            detail = f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            raise
        raise BackupError(f"恢复失败：{detail}。已撤销：{state}。") from None


# ---------------------------------------------------------------- commands


def _first_line(exc: Exception) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _fail(message: str):
    click.secho(message, fg="red", err=True)
    sys.exit(1)


@click.command("backup", cls=PlainCommand)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=True, path_type=Path),
              help="备份文件（.tar.gz）")
@click.option("--force", is_flag=True, help="覆盖已存在的备份文件")
@with_appcontext
def backup_command(output: Path, force: bool):
    """备份数据库（一致的快照）和附件文件到一个归档文件。"""
    try:
        result = create_backup(output, force=force)
    except BackupError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"备份失败，数据库出错（未写入备份文件）：{_first_line(exc)}")
    for line in result.warnings:
        click.secho(f"警告：{line}", fg="yellow", err=True)
    m = result.manifest
    counts = m["counts"]
    files = sum(1 for name in m["members"] if name.startswith(f"{UPLOADS}/"))
    click.echo(f"已备份到 {result.path}（{result.path.stat().st_size} 字节）：{m['database']['kind']} 数据库"
               f"（迁移版本 {m['migration_revision'] or '无'}），年度报告{counts.get('report_cycle', 0)}份、"
               f"材料{counts.get('contribution', 0)}份、修订{counts.get('revision', 0)}个、"
               f"附件{counts.get('attachment', 0)}个（文件{files}个）、发布版本{counts.get('publication', 0)}个。")


@click.command("restore", cls=PlainCommand)
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def restore_command(archive: Path):
    """从备份文件恢复到空的数据库和空的上传目录（先校验整个备份文件）。"""
    try:
        result = restore_backup(archive)
    except BackupError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"恢复失败，数据库出错：{_first_line(exc)}")
    m = result.manifest
    # The backup's moment in the configured zone (Beijing time by default), like every CLI time.
    click.echo(f"已恢复 {cn_datetime_text(datetime.fromisoformat(m['created_at']))}（{zone_label()}）的备份（{m['database']['kind']} 数据库，"
               f"附件文件{result.files}个）。")
    for line in result.notes:
        click.secho(f"注意：{line}", fg="yellow")


COMMANDS = (backup_command, restore_command)
