"""Admin pages: a new cycle from an uploaded cycle definition file (docs/cycle-file.md).

Uploading shows every change the file would make (created, updated field by field, removed) and
writes nothing; the admin confirms on that page. The confirmation carries the file's text back
(compressed in a hidden field, or the file chosen again when it is too large for a form field) and is
checked again: when the changes are no longer the ones shown, the new list is shown instead.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import zlib

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField

from ...errors import DomainError
from ..handler import handler, on_refusal
from . import bp
from .common import MAX_CYCLE_FILE
from .cycles import _new_cycle_page
from .forms import CycleUploadForm

# Werkzeug refuses a form field over 500 kB (max_form_memory_size); a larger text is chosen again.
MAX_PAYLOAD = 400_000


class CycleImportConfirmForm(FlaskForm):
    payload = HiddenField()  # the file's text, zlib-compressed, base64
    fingerprint = HiddenField()  # of the changes shown
    file = FileField("再次选择同一文件")


def _cycle_file_text(upload) -> str:
    data = upload.read(MAX_CYCLE_FILE + 1)
    if len(data) > MAX_CYCLE_FILE:
        raise DomainError("文件过大：年度报告定义文件最大1MB。")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("文件不是UTF-8编码的文本，请用UTF-8编码保存YAML文件后再上传。") from None


def _pack(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def _unpack(payload: str) -> str:
    """The text of ``_pack``; anything else (a changed page) is refused, never decompressed past the limit."""
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(payload, validate=True), MAX_CYCLE_FILE + 1)
        if len(data) > MAX_CYCLE_FILE or not inflater.eof:
            raise ValueError("too large")
        return data.decode("utf-8")
    except (binascii.Error, zlib.error, ValueError):
        raise DomainError("确认信息不完整，请重新上传年度报告定义文件。") from None


def _fingerprint(result) -> str:
    text = "\n".join([result.title, result.region_label, *result.lines()])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _preview_page(text: str, result, status: int = 200, changed_since: bool = False):
    payload = _pack(text)
    form = CycleImportConfirmForm(prefix="f", formdata=None)
    form.fingerprint.data = _fingerprint(result)
    form.payload.data = payload if len(payload) <= MAX_PAYLOAD else ""
    return render_template("admin/cycle_import_preview.html", result=result, form=form,
                           reupload=not form.payload.data, changed_since=changed_since,
                           active_nav="admin"), status


@bp.route("/cycles/new/file", methods=["POST"])
@handler("admin.manage")
def cycle_new_file():
    """Check the uploaded file and list what it would change; nothing is written here."""
    from ...services.importer import preview_cycle

    form = CycleUploadForm(prefix="f")
    if not form.validate_on_submit():
        return _new_cycle_page(upload_form=form, status=400)
    with on_refusal(lambda exc: _new_cycle_page(upload_form=form, errors=getattr(exc, "errors", None))):
        text = _cycle_file_text(form.file.data)
        result = preview_cycle(text, current_user)
    return _preview_page(text, result)


@bp.route("/cycles/new/file/confirm", methods=["POST"])
@handler("admin.manage")
def cycle_new_file_confirm():
    """Write the file, when its changes are still the ones the admin saw."""
    from ...extensions import db
    from ...services.importer import import_cycle

    form = CycleImportConfirmForm(prefix="f")
    upload = CycleUploadForm(prefix="f")
    with on_refusal(lambda exc: _new_cycle_page(upload_form=upload, errors=getattr(exc, "errors", None))):
        if not form.validate_on_submit():
            raise DomainError("确认信息不完整，请重新上传年度报告定义文件。")
        if form.payload.data:
            text = _unpack(form.payload.data)
        elif form.file.data:
            text = _cycle_file_text(form.file.data)
        else:
            raise DomainError("请再次选择同一个年度报告定义文件，以确认导入。")
        result = import_cycle(text, current_user)
    if _fingerprint(result) != form.fingerprint.data:
        # The file or the database changed since the preview: show what would happen now.
        db.session.rollback()
        result.cycle, result.passwords = None, {}
        return _preview_page(text, result, status=409, changed_since=True)
    _flash_imported(result)
    cycle_url = url_for(".cycle", cycle_id=result.cycle.id) \
        if result.cycle.region_id == current_user.region_id else url_for(".cycles")
    if result.passwords:
        return render_template("admin/passwords.html", passwords=result.passwords,
                               back=cycle_url, active_nav="admin")
    return redirect(cycle_url, code=303)


def _flash_imported(result) -> None:
    summary = result.summary()
    flash(f"已导入“{result.cycle.title}”（{result.region_label}）。" + (f"{summary}。" if summary else "")
          + ("" if result.changed else "文件与现有内容一致，没有变化。"), "success")
    for warning in result.warnings:
        flash(f"请注意：{warning}", "warning")
