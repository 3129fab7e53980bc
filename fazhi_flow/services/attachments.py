"""Evidence attachments: check the type by content, store under a generated name, serve, delete.

The bytes live where ``ATTACHMENT_STORAGE`` says: ``folder`` (default) keeps files in
``app.config['UPLOAD_FOLDER']`` (outside static files) as ``<2 hex>/<32 hex>.<ext>``; ``database``
keeps them in table ``attachment_blob`` under the same name, so several web machines share them.
Everything that writes, reads, serves or deletes attachment bytes goes through this module. The name
the user gave is kept only as metadata for the download.
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager

import hashlib
import io
import os
import secrets
import zipfile
from pathlib import Path

from flask import current_app, send_file
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from .. import policy
from ..database import lock_row
from ..errors import DomainError
from ..extensions import db
from ..models import Attachment, Contribution
from ..models.ops import AttachmentBlob
from ..timeutil import utcnow
from .audit import record

# extension -> (content type, label). jpeg is accepted as a spelling of jpg.
ALLOWED = {
    "pdf": ("application/pdf", "PDF"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word（DOCX）"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel（XLSX）"),
    "jpg": ("image/jpeg", "JPG 图片"),
    "png": ("image/png", "PNG 图片"),
}
ALIASES = {"jpeg": "jpg"}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_PER_CONTRIBUTION = 20
ALLOWED_TEXT = "PDF、Word（DOCX）、Excel（XLSX）、JPG、PNG"


def max_bytes() -> int:
    return int(current_app.config.get("ATTACHMENT_MAX_BYTES") or DEFAULT_MAX_BYTES)


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} 字节"


def detect_type(data: bytes) -> str | None:
    """Return the extension the content really is (pdf, docx, xlsx, jpg, png), or None."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if "[Content_Types].xml" not in names:
            return None
        if any(name.lower().endswith("vbaproject.bin") for name in names):
            return None  # documents with macros are not accepted
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
    return None


def clean_filename(name: str | None) -> str:
    """Keep the user's file name for display only: no path, no control characters, bounded length."""
    name = (name or "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().strip(".")
    if not name:
        return "附件"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:190] + dot + ext) if dot and len(ext) <= 8 else name[:200]
    return name


def _extension(filename: str) -> str:
    ext = filename.rpartition(".")[2].lower() if "." in filename else ""
    return ALIASES.get(ext, ext)


FOLDER = "folder"
DATABASE = "database"
STORAGES = (FOLDER, DATABASE)


def storage_kind(config=None) -> str:
    """The configured storage, ``folder`` or ``database``; anything else is refused by name."""
    raw = (config if config is not None else current_app.config).get("ATTACHMENT_STORAGE") or FOLDER
    kind = str(raw).strip().lower()
    if kind not in STORAGES:
        raise RuntimeError(f"ATTACHMENT_STORAGE 只能是 folder 或 database，现在是“{str(raw)[:40]}”。")
    return kind


def storage_path(stored_name: str) -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"]) / stored_name[:2] / stored_name


# ---------------------------------------------------------------- the two storages
# Reads try the configured storage first and then the other one, so attachments stay readable
# while `fazhi-flow storage move` is running or after it was interrupted.


def folder_read(stored_name: str) -> bytes | None:
    try:
        return storage_path(stored_name).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def folder_write(stored_name: str, data: bytes, durable: bool = False) -> None:
    """Write the file under a temporary name and rename it, so no reader sees half a file.
    ``durable``: fsync before the rename (the move deletes the only other copy afterwards)."""
    path = storage_path(stored_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


# A lock file at the top of UPLOAD_FOLDER: deletions take it shared, a backup exclusively while it
# takes its database snapshot and gathers the snapshot's files, so that no file whose row is in the
# snapshot can vanish in between. Deletions run after their commit, so a short wait costs nobody.
DELETION_LOCK = ".deletions.lock"


@contextmanager
def deletions_lock(folder=None, exclusive: bool = False):
    folder = Path(folder or current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / DELETION_LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def folder_delete(stored_name: str) -> None:
    path = storage_path(stored_name)
    if not path.exists():
        return
    with deletions_lock():
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def blob_read(stored_name: str) -> bytes | None:
    # A column query: the bytes are not kept in the session's identity map.
    return db.session.scalar(select(AttachmentBlob.content).where(AttachmentBlob.stored_name == stored_name))


def blob_write(stored_name: str, data: bytes) -> None:
    """Insert or replace the row (flushed; it commits or rolls back with the caller's transaction)."""
    row = db.session.get(AttachmentBlob, stored_name)
    if row is None:
        db.session.add(AttachmentBlob(stored_name=stored_name, content=data, created_at=utcnow()))
    else:
        row.content = data
    db.session.flush()


def blob_delete(stored_name: str) -> None:
    db.session.execute(delete(AttachmentBlob).where(AttachmentBlob.stored_name == stored_name))


def read_bytes(stored_name: str) -> bytes | None:
    """The attachment's bytes from the configured storage, else from the other one; None if neither."""
    readers = (blob_read, folder_read) if storage_kind() == DATABASE else (folder_read, blob_read)
    for reader in readers:
        data = reader(stored_name)
        if data is not None:
            return data
    return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_attachment(contribution: Contribution, actor, filename: str | None, data: bytes) -> Attachment:
    """Check and store one evidence file; flush its row (the caller commits).

    :raise DomainError: wrong type, empty or too large file, or too many files.
    """
    lock_row(contribution)  # not while a colleague's submit is in flight
    policy.require(actor, "contribution.attach", contribution, "只有本单位联络员在材料起草中或已退回时可以上传附件。")
    name = clean_filename(filename)
    ext = _extension(name)
    if ext not in ALLOWED:
        raise DomainError(f"不支持“{name}”这种文件。请上传 {ALLOWED_TEXT} 格式的文件。")
    if not data:
        raise DomainError(f"文件“{name}”是空的，请重新选择。")
    limit = max_bytes()
    if len(data) > limit:
        raise DomainError(f"文件“{name}”有{human_size(len(data))}，超过了{human_size(limit)}的限制。")
    real = detect_type(data)
    if real != ext:
        raise DomainError(f"文件“{name}”的内容不是有效的{ALLOWED[ext][1]}文件，可能已损坏或被改了扩展名。")
    if len(contribution.attachments) >= MAX_PER_CONTRIBUTION:
        raise DomainError(f"每份材料最多上传{MAX_PER_CONTRIBUTION}个附件。")

    stored_name = f"{secrets.token_hex(16)}.{ext}"
    if storage_kind() == DATABASE:
        # Commits or rolls back with the attachment row.
        db.session.add(AttachmentBlob(stored_name=stored_name, content=data, created_at=utcnow()))
    else:
        folder_write(stored_name, data)
        # The file is on disk before the row is committed; if the transaction rolls back, remove it.
        db.session.info.setdefault(UNCOMMITTED_FILES, []).append(stored_name)

    attachment = Attachment(
        contribution=contribution, filename=name, stored_name=stored_name,
        content_type=ALLOWED[ext][0], size=len(data), sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by_id=actor.id, created_at=utcnow(),
    )
    db.session.add(attachment)
    record(actor, "attachment.add", f"contribution:{contribution.id}", filename=name, size=len(data),
           on_behalf_of=policy.acting_as(actor, "contribution.attach", contribution))
    db.session.flush()
    return attachment


def remove_attachment(attachment: Attachment, actor) -> str:
    """Delete the row and any bytes kept in the database (flush); return the stored name so the
    caller removes the file, if there is one, after commit."""
    contribution = attachment.contribution
    policy.require(actor, "contribution.attach", contribution, "只有本单位联络员在材料起草中或已退回时可以删除附件。")
    stored = attachment.stored_name
    record(actor, "attachment.remove", f"contribution:{contribution.id}", filename=attachment.filename,
           on_behalf_of=policy.acting_as(actor, "contribution.attach", contribution))
    contribution.attachments.remove(attachment)
    db.session.delete(attachment)
    db.session.flush()
    # After the row's delete, which waits for `storage move` holding that row: a blob the move
    # committed meanwhile is seen and deleted too. Both storages, as a move may be under way.
    blob_delete(stored)
    return stored


def send_attachment(attachment: Attachment):
    """The download response for an attachment, or None when its bytes are in neither storage."""
    name = clean_filename(attachment.filename)
    path = storage_path(attachment.stored_name)
    if storage_kind() == FOLDER and path.is_file():
        return send_file(path, mimetype=attachment.content_type, as_attachment=True,
                         download_name=name, max_age=0)
    data = read_bytes(attachment.stored_name)
    if data is None:
        return None
    # The SHA-256 is the same on every web machine, unlike a file's modification time.
    return send_file(io.BytesIO(data), mimetype=attachment.content_type, as_attachment=True,
                     download_name=name, max_age=0, etag=attachment.sha256,
                     last_modified=attachment.created_at)


def discard_file(stored_name: str) -> None:
    """Remove an attachment's file (after the commit that deleted its row); blobs went with the row."""
    folder_delete(stored_name)


UNCOMMITTED_FILES = "fazhi_uncommitted_files"


@event.listens_for(Session, "after_commit")
def _files_committed(session) -> None:
    session.info.pop(UNCOMMITTED_FILES, None)


@event.listens_for(Session, "after_rollback")
def _discard_uncommitted_files(session) -> None:
    for stored_name in session.info.pop(UNCOMMITTED_FILES, []):
        discard_file(stored_name)
