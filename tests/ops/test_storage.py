"""Attachment bytes in the folder or in the database: upload, download, delete, rollback, and the
``storage move`` / ``storage verify`` commands (checksums, problems listed, resumable)."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

import fazhi_flow
from fazhi_flow.models import Attachment
from fazhi_flow.models.ops import AttachmentBlob
from fazhi_flow.services import attachments as store
from fazhi_flow.timeutil import utcnow

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")


def pdf(n: int) -> bytes:
    # Distinct content per file, so a mix-up between attachments cannot pass a checksum.
    return PDF + f"% {n}\n".encode() * (n + 1)


@pytest.fixture(autouse=True)
def _own_upload_folder(app, monkeypatch, tmp_path):
    # The session's upload folder holds other tests' files; these tests count files.
    monkeypatch.setitem(app.config, "UPLOAD_FOLDER", str(tmp_path / "uploads"))


@pytest.fixture(params=[store.FOLDER, store.DATABASE])
def storage(request, app, monkeypatch):
    monkeypatch.setitem(app.config, "ATTACHMENT_STORAGE", request.param)
    return request.param


def _use(app, monkeypatch, kind):
    monkeypatch.setitem(app.config, "ATTACHMENT_STORAGE", kind)


def _blob(db, name):
    return db.session.scalar(select(AttachmentBlob.content).where(AttachmentBlob.stored_name == name))


def _blob_count(db):
    n = db.session.scalar(select(func.count()).select_from(AttachmentBlob))
    db.session.commit()
    return n


def _upload(client, world, name, data):
    return client.post(
        f"/tasks/{world.contribution.id}",
        data={"body": "正文", "version": world.contribution.version, "action": "upload",
              "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _add(world, db, count):
    rows = [store.add_attachment(world.contribution, world.liaison, f"记录{n}.pdf", pdf(n)) for n in range(count)]
    db.session.commit()
    return rows


def _storage(runner, *args):
    return runner.invoke(args=["fazhi", "storage", *args], catch_exceptions=False)


# ---------------------------------------------------------------- the web in each storage


def test_upload_download_delete(storage, as_user, world, db):
    client = as_user(world.liaison)
    data = pdf(7)
    assert _upload(client, world, "检查记录.pdf", data).status_code == 302
    row = db.session.scalar(select(Attachment))
    in_db, on_disk = _blob(db, row.stored_name), store.storage_path(row.stored_name)
    if storage == store.DATABASE:
        assert in_db == data and not on_disk.exists()
    else:
        assert in_db is None and on_disk.read_bytes() == data
    with client.get(f"/tasks/attachments/{row.id}") as download:
        assert download.status_code == 200 and download.data == data
        assert download.headers["Content-Type"] == "application/pdf"
        assert download.headers["Content-Length"] == str(len(data))
        disposition = download.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and "filename*=UTF-8''%E6%A3%80" in disposition
    assert client.post(f"/tasks/{world.contribution.id}/attachments/{row.id}/delete").status_code == 302
    assert db.session.scalar(select(Attachment)) is None
    assert _blob(db, row.stored_name) is None and not on_disk.exists()


def test_download_headers_are_the_same_in_both_storages(app, monkeypatch, as_user, world, db):
    _use(app, monkeypatch, store.FOLDER)
    client = as_user(world.liaison)
    (row,) = _add(world, db, 1)
    url = f"/tasks/attachments/{row.id}"
    with client.get(url) as response:
        from_folder = dict(response.headers)
    assert store.folder_read(row.stored_name) == pdf(0)
    assert store.blob_read(row.stored_name) is None
    # Now the same attachment from the database.
    store.blob_write(row.stored_name, pdf(0))
    db.session.commit()
    store.folder_delete(row.stored_name)
    _use(app, monkeypatch, store.DATABASE)
    with client.get(url) as response:
        assert response.data == pdf(0)
        from_database = dict(response.headers)
    # Date-stamped headers (Date, and Expires set to the moment of answering) differ by the clock only.
    varying = {"ETag", "Last-Modified", "Date", "Expires", "X-Request-ID"}
    assert set(from_folder) == set(from_database)
    assert {k: v for k, v in from_folder.items() if k not in varying} == \
           {k: v for k, v in from_database.items() if k not in varying}
    # A browser's conditional request is answered from the checksum, the same on every machine.
    assert from_database["ETag"] == f'"{row.sha256}"'
    assert client.get(url, headers={"If-None-Match": from_database["ETag"]}).status_code == 304


def test_a_rolled_back_upload_leaves_nothing(storage, world, db):
    stored = store.add_attachment(world.contribution, world.liaison, "记录.pdf", pdf(1)).stored_name
    db.session.rollback()  # e.g. a later step of the same request failed
    assert store.read_bytes(stored) is None
    assert not store.storage_path(stored).exists() and _blob_count(db) == 0
    kept = store.add_attachment(world.contribution, world.liaison, "记录.pdf", pdf(2)).stored_name
    db.session.commit()
    db.session.rollback()  # a later, unrelated rollback must not touch committed bytes
    assert store.read_bytes(kept) == pdf(2)


def test_reads_fall_back_to_the_other_storage(app, monkeypatch, as_user, world, db):
    """While a move is under way some attachments are still on the other side: they are served."""
    _use(app, monkeypatch, store.FOLDER)
    in_folder, in_database = _add(world, db, 2)
    store.blob_write(in_database.stored_name, pdf(1))
    db.session.commit()
    store.folder_delete(in_database.stored_name)
    client = as_user(world.liaison)
    for kind in store.STORAGES:
        _use(app, monkeypatch, kind)
        for row, data in ((in_folder, pdf(0)), (in_database, pdf(1))):
            with client.get(f"/tasks/attachments/{row.id}") as response:
                assert response.status_code == 200 and response.data == data, kind
    store.blob_delete(in_database.stored_name)
    db.session.commit()
    response = client.get(f"/tasks/attachments/{in_database.id}")
    assert response.status_code == 404 and "附件文件已丢失" in response.get_data(as_text=True)


def test_storage_setting_is_checked(app, monkeypatch, world, db, runner):
    _use(app, monkeypatch, " Database ")
    assert store.storage_kind() == store.DATABASE
    _use(app, monkeypatch, "s3")
    with pytest.raises(RuntimeError, match="只能是 folder 或 database"):
        store.storage_kind()
    result = _storage(runner, "verify")
    assert result.exit_code == 1 and "ATTACHMENT_STORAGE 只能是 folder 或 database" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- storage move / verify


def test_move_there_and_back(app, monkeypatch, world, db, runner):
    _use(app, monkeypatch, store.FOLDER)
    rows = _add(world, db, 3)
    names = [r.stored_name for r in rows]

    dry = _storage(runner, "move", "--to", "database", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "可移动到数据库 3 个，原已在数据库 0 个，有问题 0 个；试运行，未做改动。" in dry.output
    assert _blob_count(db) == 0 and all(store.storage_path(n).exists() for n in names)

    moved = _storage(runner, "move", "--to", "database")
    assert moved.exit_code == 0, moved.output
    assert "已移动到数据库 3 个，原已在数据库 0 个，有问题 0 个。" in moved.output
    assert "请把设置改为 database 并重启网站服务" in moved.output  # the setting still says folder
    assert not any(store.storage_path(n).exists() for n in names)
    assert [_blob(db, n) for n in names] == [pdf(0), pdf(1), pdf(2)]

    _use(app, monkeypatch, store.DATABASE)
    verified = _storage(runner, "verify")
    assert verified.exit_code == 0 and "数据库中完好的附件 3 个，有问题 0 个。" in verified.output
    again = _storage(runner, "move", "--to", "database")
    assert again.exit_code == 0 and "已移动到数据库 0 个，原已在数据库 3 个" in again.output
    assert "请把设置改为" not in again.output

    back = _storage(runner, "move", "--to", "folder")
    assert back.exit_code == 0 and "已移动到文件夹 3 个" in back.output
    assert _blob_count(db) == 0
    assert [store.storage_path(n).read_bytes() for n in names] == [pdf(0), pdf(1), pdf(2)]
    assert not list(store.storage_path(names[0]).parent.glob("*.part"))


@pytest.mark.parametrize("target", [store.DATABASE, store.FOLDER])
def test_missing_and_damaged_sources_are_listed_and_kept(app, monkeypatch, world, db, runner, target):
    source = store.FOLDER if target == store.DATABASE else store.DATABASE
    _use(app, monkeypatch, source)
    missing, damaged, fine = _add(world, db, 3)
    if source == store.FOLDER:
        store.folder_delete(missing.stored_name)
        store.storage_path(damaged.stored_name).write_bytes(pdf(99))
    else:
        store.blob_delete(missing.stored_name)
        store.blob_write(damaged.stored_name, pdf(99))
        db.session.commit()
    read = store.folder_read if source == store.FOLDER else store.blob_read

    result = _storage(runner, "move", "--to", target)
    assert result.exit_code == 1
    assert f"附件 {missing.id}（记录0.pdf，{missing.stored_name}）" in result.output and "不存在" in result.output
    assert f"附件 {damaged.id}（记录1.pdf，{damaged.stored_name}）" in result.output
    assert "已损坏（校验值不符）" in result.output
    assert "有问题 2 个" in result.output and "原处的内容没有删除" in result.output
    assert f"附件 {fine.id}（" not in result.output
    assert read(damaged.stored_name) == pdf(99)  # the damaged source is not deleted
    assert read(fine.stored_name) is None
    _use(app, monkeypatch, target)
    assert store.read_bytes(fine.stored_name) == pdf(2)

    checked = _storage(runner, "verify")
    assert checked.exit_code == 1 and "完好的附件 1 个，有问题 2 个。" in checked.output
    assert "也没有完好的副本" in checked.output
    db.session.commit()


def test_verify_points_at_copies_left_on_the_other_side(app, monkeypatch, world, db, runner):
    _use(app, monkeypatch, store.FOLDER)
    first, second = _add(world, db, 2)
    _use(app, monkeypatch, store.DATABASE)  # switched before the move
    result = _storage(runner, "verify")
    assert result.exit_code == 1 and "数据库中完好的附件 0 个，有问题 2 个。" in result.output
    assert "文件夹中有完好的副本（运行 storage move --to database 移过来）" in result.output
    store.storage_path(second.stored_name).write_bytes(pdf(50))
    store.blob_write("ffffffffffffffffffffffffffffffff.pdf", pdf(60))  # belong to no attachment
    store.folder_write("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.pdf", pdf(61))
    db.session.commit()
    moved = _storage(runner, "move", "--to", "database")
    assert moved.exit_code == 1 and f"附件 {second.id}（" in moved.output
    result = _storage(runner, "verify")
    assert result.exit_code == 1 and "数据库中完好的附件 1 个，有问题 1 个。" in result.output
    assert "另有不属于任何附件的内容：数据库中 1 个，文件夹中 1 个" in result.output
    assert store.read_bytes(first.stored_name) == pdf(0)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no handler catches it."""


def _crash_on(monkeypatch, name, call):
    real = getattr(store, name)
    calls = []

    def dying(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(store, name, dying)
    return lambda: monkeypatch.setattr(store, name, real)


@pytest.mark.parametrize("target,step", [
    (store.DATABASE, "folder_delete"),  # after the commit, before the file is removed
    (store.DATABASE, "blob_write"),  # before the commit
    (store.FOLDER, "blob_delete"),  # the file written, the row not yet deleted
    (store.FOLDER, "folder_read"),  # while reading back the file just written
])
def test_an_interrupted_move_leaves_everything_readable_and_resumes(
        app, monkeypatch, world, db, runner, target, step):
    source = store.FOLDER if target == store.DATABASE else store.DATABASE
    _use(app, monkeypatch, source)
    rows = _add(world, db, 4)  # uploaded into the source storage
    from fazhi_flow.ops import storage as ops_storage

    # The third attachment is where it dies (folder_read is called twice per item: check, read back).
    restore = _crash_on(monkeypatch, step, {"folder_read": 6}.get(step, 3))
    with pytest.raises(Crash):
        ops_storage.move(target)
    restore()
    db.session.rollback()
    db.session.expire_all()
    for kind in store.STORAGES:
        _use(app, monkeypatch, kind)
        assert [store.read_bytes(r.stored_name) for r in rows] == [pdf(n) for n in range(4)]
    result = _storage(runner, "move", "--to", target)
    assert result.exit_code == 0, result.output
    assert "有问题 0 个" in result.output
    _use(app, monkeypatch, target)
    checked = _storage(runner, "verify")
    assert checked.exit_code == 0 and "完好的附件 4 个，有问题 0 个。" in checked.output
    assert "不属于任何附件" not in checked.output
    assert (_blob_count(db) == 0) == (target == store.FOLDER)
    assert all(store.storage_path(r.stored_name).exists() == (target == store.FOLDER) for r in rows)


@pytest.mark.parametrize("hook", ["blob_read", "folder_read"])
def test_a_user_deleting_an_attachment_during_a_move(app, monkeypatch, world, db, hook):
    """An attachment deleted after the listing (before its check, or after its check but before
    its copy) is counted as deleted, not as a problem, and leaves no copy behind."""
    _use(app, monkeypatch, store.FOLDER)
    first, second = _add(world, db, 2)
    from fazhi_flow.ops import storage as ops_storage

    real = getattr(store, hook)
    deleted = []

    def deleting(name):
        data = real(name)
        if name == second.stored_name and not deleted:
            deleted.append(name)
            store.remove_attachment(db.session.get(Attachment, second.id), world.liaison)
            db.session.commit()
            store.discard_file(name)
        return data

    monkeypatch.setattr(store, hook, deleting)
    outcome = ops_storage.move(store.DATABASE)
    monkeypatch.setattr(store, hook, real)
    assert deleted and (outcome.done, outcome.gone, outcome.problems) == (1, 1, [])
    assert store.folder_read(second.stored_name) is None and store.blob_read(second.stored_name) is None
    assert store.blob_read(first.stored_name) == pdf(0)
    db.session.commit()


def test_bad_input_is_one_line_and_status_1(runner, db):
    for args, message in (
        (("move",), "请用 --to database 或 --to folder 指定目标存储。"),
        (("move", "--to", "cloud"), "目标存储只能是 database 或 folder，不能是“cloud”。"),
        (("move", "--to", "database", "--force"), "No such option"),
        (("frobnicate",), "No such command"),
    ):
        result = _storage(runner, *args)
        assert result.exit_code == 1, args
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_sha256_is_what_the_upload_recorded(world, db, storage):
    (row,) = _add(world, db, 1)
    assert row.sha256 == hashlib.sha256(pdf(0)).hexdigest() == store.sha256_hex(store.read_bytes(row.stored_name))


def test_killed_midway_every_attachment_stays_whole_and_a_second_run_finishes(
        app, monkeypatch, world, db, runner, database_url, tmp_path):
    """The real thing: the command's process is killed (SIGKILL) in the middle of a move."""
    _use(app, monkeypatch, store.FOLDER)
    total = 200
    rows = []
    for n in range(total):
        data = pdf(n) + bytes(20_000)
        name = f"{n:032x}.pdf"
        store.folder_write(name, data)
        rows.append(Attachment(contribution_id=world.contribution.id, filename=f"记录{n}.pdf", stored_name=name,
                               content_type="application/pdf", size=len(data), sha256=store.sha256_hex(data),
                               uploaded_by_id=world.liaison.id, created_at=utcnow()))
    db.session.add_all(rows)
    db.session.commit()
    expected = {r.stored_name: r.sha256 for r in rows}
    db.session.commit()  # reading the rows began a transaction: on SQLite it would hold the write lock

    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env.update(FAZHI_ENV="testing", FAZHI_DATABASE_URL=database_url, FAZHI_INSTANCE_PATH=str(tmp_path),
               FAZHI_UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"], FAZHI_ATTACHMENT_STORAGE="database",
               PYTHONPATH=str(Path(fazhi_flow.__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", "from fazhi_flow.cli import main; main()",
                             "storage", "move", "--to", "database"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Watched through a plain engine that only reads: the test's own SQLite session begins IMMEDIATE,
    # and queued for the write lock behind the mover's back-to-back commits it could see nothing
    # until the move had finished.
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    watcher = create_engine(database_url, poolclass=NullPool)
    try:
        deadline = time.time() + 120
        moved = 0
        while time.time() < deadline and proc.poll() is None and moved < total // 10:
            with watcher.connect() as conn:
                moved = conn.scalar(select(func.count()).select_from(AttachmentBlob))
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        output = proc.communicate(timeout=30)[0].decode("utf-8", "replace")
        watcher.dispose()
    assert proc.returncode == -signal.SIGKILL, output  # it really was killed, not finished
    moved = _blob_count(db)
    assert 0 < moved < total, moved

    for kind in store.STORAGES:  # whatever the web is set to, every attachment reads whole
        _use(app, monkeypatch, kind)
        for name, sha in expected.items():
            assert store.sha256_hex(store.read_bytes(name)) == sha, name
        db.session.commit()
    result = _storage(runner, "move", "--to", "database")
    assert result.exit_code == 0, result.output
    assert "有问题 0 个" in result.output
    _use(app, monkeypatch, store.DATABASE)
    checked = _storage(runner, "verify")
    assert checked.exit_code == 0 and f"数据库中完好的附件 {total} 个，有问题 0 个。" in checked.output
    # Only the deletions' lock file (services/attachments.py DELETION_LOCK) may remain.
    assert not [p for p in Path(app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file() and p.name != ".deletions.lock"]


def test_a_delete_waits_for_the_move_of_that_attachment_and_leaves_no_copy(app, monkeypatch, world, db):
    """Two connections: the move holds the attachment's row while copying it; a user's delete of
    that attachment waits, then removes the row, the copy in the database and the file."""
    import threading

    from fazhi_flow.models import User

    _use(app, monkeypatch, store.FOLDER)
    (row,) = _add(world, db, 1)
    attachment_id, name, liaison_id = row.id, row.stored_name, world.liaison.id
    db.session.commit()
    from fazhi_flow.ops import storage as ops_storage

    copied, go = threading.Event(), threading.Event()
    real_write = store.blob_write

    def write_then_wait(*args):
        real_write(*args)
        copied.set()  # the copy is flushed, the row held, nothing committed yet
        assert go.wait(30)

    monkeypatch.setattr(store, "blob_write", write_then_wait)
    results = {}

    def mover():
        with app.app_context():
            try:
                results["move"] = ops_storage.move(store.DATABASE)
            finally:
                db.session.remove()

    def deleter():
        with app.app_context():
            try:
                attachment = db.session.get(Attachment, attachment_id)
                store.remove_attachment(attachment, db.session.get(User, liaison_id))
                db.session.commit()
                store.discard_file(name)
                results["delete"] = "ok"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=mover)]
    threads[0].start()
    assert copied.wait(30)
    threads.append(threading.Thread(target=deleter))
    threads[1].start()
    threads[1].join(1.0)
    assert threads[1].is_alive(), "the delete did not wait for the move holding the row"
    go.set()
    for thread in threads:
        thread.join(60)
    monkeypatch.setattr(store, "blob_write", real_write)
    outcome = results["move"]
    assert results["delete"] == "ok" and outcome.problems == [] and outcome.done + outcome.gone == 1
    assert db.session.get(Attachment, attachment_id) is None
    assert store.blob_read(name) is None and store.folder_read(name) is None
    db.session.commit()
