"""``fazhi-flow storage move --to database|folder`` and ``fazhi-flow storage verify``.

The move copies one attachment at a time, checks the copy against ``Attachment.sha256`` and only
then deletes the source, so an interrupted move leaves every attachment whole on at least one side
(the web reads either side) and running it again finishes the job. A missing or damaged source is
listed and left where it is; the command then exits 1.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import Attachment
from ..models.ops import AttachmentBlob
from ..services import attachments as store
from .clickutil import PlainGroup

BATCH = 200
LABELS = {store.FOLDER: "文件夹", store.DATABASE: "数据库"}


@dataclass
class Outcome:
    done: int = 0  # moved (or, in a dry run, to be moved)
    already: int = 0  # already whole in the target storage
    gone: int = 0  # deleted by a user while the move ran
    problems: list[str] = field(default_factory=list)


@dataclass
class _Item:
    id: int
    stored_name: str
    sha256: str
    filename: str

    def label(self) -> str:
        return f"附件 {self.id}（{self.filename}，{self.stored_name}）"


def _items():
    """Every attachment, a batch at a time, each batch's transaction ended at once (on SQLite even
    a read holds the write lock, and the web is still running)."""
    last = 0
    while True:
        rows = db.session.execute(
            select(Attachment.id, Attachment.stored_name, Attachment.sha256, Attachment.filename)
            .where(Attachment.id > last).order_by(Attachment.id).limit(BATCH)
        ).all()
        db.session.commit()
        if not rows:
            return
        for row in rows:
            yield _Item(*row)
        last = rows[-1].id


def _lock(item: _Item) -> bool:
    """Hold the attachment's row until the commit, so a user deleting it waits and then deletes the
    copy too; False when it has been deleted meanwhile."""
    found = db.session.execute(
        select(Attachment.id).where(Attachment.id == item.id).with_for_update()
    ).first()
    return found is not None


def _exists(item: _Item) -> bool:
    found = db.session.execute(select(Attachment.id).where(Attachment.id == item.id)).first()
    db.session.commit()
    return found is not None


def _whole(data: bytes | None, item: _Item) -> bool:
    return data is not None and store.sha256_hex(data) == item.sha256


def _state(data: bytes | None, item: _Item) -> str:
    return "不存在" if data is None else "已损坏（校验值不符）"


def _to_database(item: _Item, dry_run: bool, outcome: Outcome) -> None:
    blob = store.blob_read(item.stored_name)
    db.session.commit()
    if _whole(blob, item):
        if not dry_run:
            store.folder_delete(item.stored_name)  # a move interrupted after its commit
        outcome.already += 1
        return
    data = store.folder_read(item.stored_name)
    if not _whole(data, item):
        if not _exists(item):  # deleted by a user, file and all, since the listing
            outcome.gone += 1
            return
        where = "" if blob is None else "；数据库中的副本也已损坏"
        outcome.problems.append(f"{item.label()}：文件{_state(data, item)}{where}，未移动。")
        return
    if dry_run:
        outcome.done += 1
        return
    if not _lock(item):
        db.session.rollback()
        outcome.gone += 1
        return
    store.blob_write(item.stored_name, data)
    db.session.commit()
    copy = store.blob_read(item.stored_name)  # read back what the database really holds
    db.session.commit()
    if not _whole(copy, item):
        if not _exists(item):  # a user deleted it, copy and all, right after our commit
            store.folder_delete(item.stored_name)
            outcome.gone += 1
            return
        outcome.problems.append(f"{item.label()}：写入数据库后读回的内容与校验值不符，已保留文件。")
        return
    store.folder_delete(item.stored_name)
    outcome.done += 1


def _to_folder(item: _Item, dry_run: bool, outcome: Outcome) -> None:
    data = store.folder_read(item.stored_name)
    if _whole(data, item):
        if not dry_run:
            store.blob_delete(item.stored_name)  # a move interrupted before deleting the row
        db.session.commit()
        outcome.already += 1
        return
    blob = store.blob_read(item.stored_name)
    db.session.commit()
    if not _whole(blob, item):
        if not _exists(item):
            outcome.gone += 1
            return
        where = "" if data is None else "；文件夹中的文件也已损坏"
        outcome.problems.append(f"{item.label()}：数据库中的内容{_state(blob, item)}{where}，未移动。")
        return
    if dry_run:
        outcome.done += 1
        return
    if not _lock(item):
        db.session.rollback()
        outcome.gone += 1
        return
    try:
        store.folder_write(item.stored_name, blob, durable=True)
        copy = store.folder_read(item.stored_name)
    except OSError as exc:
        db.session.rollback()
        outcome.problems.append(f"{item.label()}：写入文件失败（{exc.strerror or exc}），已保留数据库中的内容。")
        return
    if not _whole(copy, item):
        db.session.rollback()
        outcome.problems.append(f"{item.label()}：写入文件后读回的内容与校验值不符，已保留数据库中的内容。")
        return
    store.blob_delete(item.stored_name)
    db.session.commit()
    outcome.done += 1


def move(target: str, dry_run: bool = False, progress=None) -> Outcome:
    """Move every attachment's bytes into ``target`` (``folder`` or ``database``)."""
    step = _to_database if target == store.DATABASE else _to_folder
    outcome = Outcome()
    for n, item in enumerate(_items(), 1):
        step(item, dry_run, outcome)
        if progress and n % 1000 == 0:
            progress(n)
    return outcome


@dataclass
class Check:
    ok: int = 0
    problems: list[str] = field(default_factory=list)
    elsewhere: int = 0  # whole only in the other storage (served from there; `storage move` fixes it)
    stray_blobs: int = 0
    stray_files: int = 0


def verify(kind: str) -> Check:
    """Check every attachment's bytes in storage ``kind`` against its SHA-256."""
    here, there = ((store.blob_read, store.folder_read) if kind == store.DATABASE
                   else (store.folder_read, store.blob_read))
    other = LABELS[store.FOLDER if kind == store.DATABASE else store.DATABASE]
    check = Check()
    known = set()
    for item in _items():
        known.add(item.stored_name)
        data = here(item.stored_name)
        if _whole(data, item):
            check.ok += 1
        else:
            spare = there(item.stored_name)
            if _whole(spare, item):
                check.elsewhere += 1
                check.problems.append(f"{item.label()}：{LABELS[kind]}中{_state(data, item)}，"
                                      f"{other}中有完好的副本（运行 storage move --to {kind} 移过来）。")
            else:
                check.problems.append(f"{item.label()}：{LABELS[kind]}中{_state(data, item)}，"
                                      f"{other}中也没有完好的副本。")
        db.session.commit()
    # Bytes no attachment refers to: an upload whose transaction is still open, or left-overs.
    names = db.session.scalars(select(AttachmentBlob.stored_name)).all()
    db.session.commit()
    check.stray_blobs = sum(1 for name in names if name not in known)
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    if folder.is_dir():
        check.stray_files = sum(1 for path in folder.glob("??/*") if path.is_file() and path.name not in known)
    return check


def _fail(message: str):
    click.echo(message, err=True)
    sys.exit(1)


def _configured() -> str:
    try:
        return store.storage_kind()
    except RuntimeError as exc:
        _fail(str(exc))


def _database_errors(run):
    """A database that is unreachable or not upgraded is one line, not a traceback."""
    try:
        return run()
    except SQLAlchemyError as exc:
        db.session.rollback()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        _fail(f"无法读写数据库（{reason}）。请检查 DATABASE_URL，并运行 fazhi-flow db upgrade。")


@click.group("storage", cls=PlainGroup)
def storage_group():
    """附件存储：在文件夹和数据库之间移动附件，校验附件。"""


@storage_group.command("move")
@click.option("--to", "target", metavar="database|folder", help="目标存储：database（数据库）或 folder（文件夹）。")
@click.option("--dry-run", is_flag=True, help="只检查并统计，不移动。")
def move_command(target, dry_run):
    """把所有附件移到目标存储，移动前后都核对 SHA-256；可以重复运行，中断后再运行即可继续。"""
    wanted = (target or "").strip().lower()
    if wanted not in store.STORAGES:
        _fail("请用 --to database 或 --to folder 指定目标存储。" if not target
              else f"目标存储只能是 database 或 folder，不能是“{target[:40]}”。")
    configured = _configured()
    outcome = _database_errors(lambda: move(wanted, dry_run, progress=lambda n: click.echo(f"已处理 {n} 个附件……")))
    for line in outcome.problems:
        click.echo(line, err=True)
    verb = "可移动" if dry_run else "已移动"
    click.echo(f"{verb}到{LABELS[wanted]} {outcome.done} 个，原已在{LABELS[wanted]} {outcome.already} 个，"
               f"有问题 {len(outcome.problems)} 个" + (f"，移动中被删除 {outcome.gone} 个" if outcome.gone else "")
               + ("；试运行，未做改动。" if dry_run else "。"))
    if configured != wanted:
        click.echo(f"注意：当前设置 ATTACHMENT_STORAGE={configured}，新上传的附件仍存入{LABELS[configured]}。"
                   f"请把设置改为 {wanted} 并重启网站服务，然后再运行一次本命令。")
    if outcome.problems:
        _fail(f"{len(outcome.problems)} 个附件未移动（见上），原处的内容没有删除。请从备份找回后再运行本命令。")


@storage_group.command("verify")
def verify_command():
    """核对当前存储（ATTACHMENT_STORAGE）中每个附件的 SHA-256。"""
    kind = _configured()
    check = _database_errors(lambda: verify(kind))
    for line in check.problems:
        click.echo(line, err=True)
    click.echo(f"{LABELS[kind]}中完好的附件 {check.ok} 个，有问题 {len(check.problems)} 个。")
    if check.stray_blobs or check.stray_files:
        click.echo(f"另有不属于任何附件的内容：数据库中 {check.stray_blobs} 个，文件夹中 {check.stray_files} 个"
                   "（可能是正在上传的文件或以前遗留的文件，不影响使用）。")
    if check.problems:
        sys.exit(1)


COMMANDS = (storage_group,)
