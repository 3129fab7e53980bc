"""Admin pages: a new cycle from an uploaded cycle definition file (docs/cycle-file.md)."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from ...errors import DomainError
from ..handler import handler, on_refusal
from . import bp
from .common import MAX_CYCLE_FILE
from .cycles import _new_cycle_page
from .forms import CycleUploadForm


def _cycle_file_text(upload) -> str:
    data = upload.read(MAX_CYCLE_FILE + 1)
    if len(data) > MAX_CYCLE_FILE:
        raise DomainError("文件过大：年度报告定义文件最大1MB。")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError("文件不是UTF-8编码的文本，请用UTF-8编码保存YAML文件后再上传。") from None


@bp.route("/cycles/new/file", methods=["POST"])
@handler("admin.manage")
def cycle_new_file():
    from ...services.importer import import_cycle

    form = CycleUploadForm(prefix="f")
    if not form.validate_on_submit():
        return _new_cycle_page(upload_form=form, status=400)
    with on_refusal(lambda exc: _new_cycle_page(upload_form=form, errors=getattr(exc, "errors", None))):
        result = import_cycle(_cycle_file_text(form.file.data), current_user)
    _flash_imported(result)
    if result.passwords:
        return render_template("admin/passwords.html", passwords=result.passwords,
                               back=url_for(".cycle", cycle_id=result.cycle.id), active_nav="admin")
    return redirect(url_for(".cycle", cycle_id=result.cycle.id), code=303)


def _flash_imported(result) -> None:
    created = "、".join(f"{label}{result.created[k]}个" for k, label in
                       (("units", "单位"), ("users", "用户"), ("sections", "章节"), ("assignments", "任务分配"))
                       if result.created.get(k))
    flash(f"已导入“{result.cycle.title}”。" + (f"新建：{created}。" if created else "")
          + ("" if result.changed else "文件与现有内容一致，没有变化。"), "success")
    for warning in result.warnings:
        flash(f"请注意：{warning}", "warning")
