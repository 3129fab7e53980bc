"""我的任务, the editor, attachments, history and diff; 待单位审核 for the unit head.

Each route declares who may enter it (``@handler``) and runs as one unit of work: load and check the
object, validate the form, call one service, redirect (the handler commits, or rolls back on refusal).
"""
from __future__ import annotations

import functools

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import joinedload

from ... import policy
from ...database import get_locked, lock_row
from ...errors import Conflict, DomainError
from ...extensions import db
from ...models import Contribution
from ...pages.editor import EditorPage, contribution_figures
from ...pages.tasks import TasksPage, unit_contributions
from ...services import attachments as attachment_service
from ...services import contributions as svc
from ...services.audit import record_refusal
from ...services.diffs import has_changes, paragraph_diff
from ...timeutil import to_local
from .. import bound_text
from ..errors import abort_with, csrf_refused
from ..fields import arg_int, optional_int
from ..handler import handler, on_refusal
from ..helpers import has_endpoint
from ..loading import attachment_or_abort, contribution_or_abort, in_own_region, transition_logs
from . import bp
from .forms import DecisionForm, EditorForm, ReturnForm, VersionForm


# The refusal texts of the two areas' gates.
TASKS_ONLY = "“我的任务”只对各单位的联络员和单位负责人开放。"
UNIT_HEADS_ONLY = "“待单位审核”只对单位负责人开放。"


def _unit_contributions(unit_id: int, states=None) -> list[Contribution]:
    return unit_contributions(unit_id, states)


@bp.route("/")
@handler("tasks.view", message=TASKS_ONLY)
def index():
    return render_template("tasks/index.html", page=TasksPage.build(current_user))


def _render_editor(contribution: Contribution, form: EditorForm, *, conflict: str | None = None,
                   error: str | None = None, status: int = 200, autosave: bool = True):
    page = EditorPage.build(current_user, contribution, figures=has_endpoint("figures.contribution"),
                            extensions=has_endpoint("reminders.request_extension"))
    return render_template(
        "tasks/edit.html", form=form, conflict=conflict, error=error, version_form=VersionForm(),
        autosave=autosave and not conflict,
        allowed_files=attachment_service.ALLOWED_TEXT,
        max_file=attachment_service.human_size(attachment_service.max_bytes()), **page.context(),
    ), status


@bp.app_template_global("last_year_text")
def last_year_text(previous: Contribution) -> str:
    """Last year's approved text with each ``{{code}}`` printed from the values as approved."""
    from ...figures import yoy

    return bound_text.current().text(previous, previous.body, yoy.approved_snapshot(previous))


def _figures(contribution: Contribution):
    """The figures of the contribution for the editor's summary, or None (no figures area, no right)."""
    return contribution_figures(current_user, contribution, has_endpoint("figures.contribution"))


def _read_upload(storage) -> tuple[str | None, bytes] | None:
    if storage is None or not getattr(storage, "filename", ""):
        return None
    limit = attachment_service.max_bytes()
    data = storage.stream.read(limit + 1)  # one byte more is enough to know it is too large
    return storage.filename, data


def _rescue_page(contribution_id: int, reason: str, status: int):
    """The typed text of a save that could not be accepted, to copy, with a way back to the editor."""
    back = url_for("tasks.edit", contribution_id=contribution_id)
    return render_template("tasks/rescue.html", text=request.form.get("body", ""), reason=reason,
                           login_url=url_for("auth.login", next=back), back=back), status


def _version_posted(contribution: Contribution) -> int:
    return arg_int("version", contribution.version, source=request.form)


@bp.errorhandler(CSRFError)
def _expired_form(exc):
    """A 保存草稿 whose page expired (CSRF check failed) keeps the text that was typed.

    A logged-in author gets the editor back with the text and a fresh token; anybody else gets the
    text to copy. Other forms of this area get the ordinary error page.
    """
    if request.endpoint == "tasks.autosave":
        db.session.rollback()
        record_refusal("csrf", exc.description)
        return _autosave_answer(400, AUTOSAVE_EXPIRED, kind="expired")
    if request.endpoint != "tasks.edit" or request.method != "POST":
        return csrf_refused(exc)
    db.session.rollback()
    record_refusal("csrf", exc.description)
    contribution_id = (request.view_args or {}).get("contribution_id")
    contribution = db.session.get(Contribution, contribution_id) if contribution_id else None
    if contribution is not None and policy.can(current_user, "contribution.edit", contribution):
        form = EditorForm(formdata=None)
        form.body.data = request.form.get("body", "")
        form.version.data = _version_posted(contribution)
        note = "您选择的附件没有上传，请重新选择。" if request.files.get("file") else ""
        return _render_editor(contribution, form, status=400, error=(
            "页面已过期（可能曾在别处退出或重新登录），刚才的内容还没有保存。"
            f"请核对后再点一次“保存草稿”。{note}"))
    return _rescue_page(contribution_id or 0, "页面已过期或登录已超时，刚才的内容没有保存。", 400)


def _keep_text_when_logged_out(view):
    """A save after the login ran out (or after logging out elsewhere) must not drop the text: it gets
    the rescue page instead of the handler's redirect to the login page. The handler's declaration
    (copied by functools.wraps) stays readable on the outer function."""

    @functools.wraps(view)
    def run(contribution_id: int):
        if request.method == "POST" and not policy.logged_in(current_user):
            return _rescue_page(contribution_id, "登录已超时，刚才的内容没有保存。", 401)
        return view(contribution_id)

    return run


@bp.route("/<int:contribution_id>", methods=["GET", "POST"])
@_keep_text_when_logged_out
@handler("authenticated")
def edit(contribution_id: int):
    # A save without a file reads the draft once, locked. With a file, the attachment takes a
    # decision's locks (the cycle's figures token row, then the contribution's): taken before the
    # draft's own, so that they come in that order.
    draft_save = request.method == "POST" and not getattr(request.files.get("file"), "filename", "")
    contribution = contribution_or_abort(contribution_id, current_user, for_draft_save=draft_save)
    if request.method == "POST" and not draft_save:
        lock_row(contribution)
    form = EditorForm()
    if request.method == "GET":
        form.body.data = contribution.body
        form.version.data = contribution.version
        return _render_editor(contribution, form)
    if not form.validate():
        # Keep what was typed; only the hidden version can be missing or malformed here. Which version
        # the text was based on is unknown, so nothing saves it by itself: only a deliberate 保存草稿.
        _show_version(form, contribution)
        return _render_editor(contribution, form, error="页面信息不完整，请核对后再保存。", status=400,
                              autosave=False)
    upload = _read_upload(request.files.get("file"))
    typed = form.body.data or ""
    with on_refusal(lambda exc: _refused_save(contribution, form, typed, upload, exc), status=_save_status,
                    flash=False):
        svc.save_draft(contribution, current_user, typed, expected_version=form.version.data)
        if upload is not None:
            added = attachment_service.add_attachment(contribution, current_user, *upload)
            flash(f"草稿已保存，附件“{added.filename}”已上传。", "success")
    return _after_save(contribution, upload)


def _after_save(contribution: Contribution, upload):
    """Where a saved draft goes: 确认提交 for 保存并提交, else back to the editor saying what was done."""
    action = request.form.get("action", "save")
    if action == "submit":
        return redirect(url_for("tasks.confirm_submit", contribution_id=contribution.id))
    if upload is None:
        flash("草稿已保存。请先选择要上传的文件。" if action == "upload" else "草稿已保存。",
              "warning" if action == "upload" else "success")
    return redirect(url_for("tasks.edit", contribution_id=contribution.id))


def _save_status(exc: DomainError) -> int:
    return 409 if isinstance(exc, Conflict) else 400


def _show_version(form: EditorForm, contribution: Contribution) -> None:
    """Give the re-shown editor the version now stored. An integer field prints what was posted
    (raw_data) before its data, so that is replaced too: else the page would post the stale version
    again and 保存草稿 after a conflict would conflict for ever."""
    form.version.data = contribution.version
    form.version.raw_data = [str(contribution.version)]


def _refused_save(contribution: Contribution, form: EditorForm, typed: str, upload, exc: DomainError):
    """The editor showing why a save was refused, inside the form (not flashed), with what was typed.

    After a conflict the form is given the version now in the database (saving again is then a
    deliberate choice to replace) and autosave stays off. Any other refusal (too long …) keeps the
    version that was posted: the text is still based on it, so a colleague's newer save is met by a
    conflict, never silently replaced by an autosave.
    """
    form.body.data = typed
    if isinstance(exc, Conflict):
        _show_version(form, contribution)
        note = "（您选择的附件没有上传，请保存后重新选择。）" if upload else ""
        return _render_editor(contribution, form, conflict=exc.message + note)
    return _render_editor(contribution, form, error=exc.message)


# ---------------------------------------------------------------- autosave (自动保存)
# The editor's script posts the text a few seconds after typing pauses; the answers are JSON for it,
# errors included (a page or a redirect to the login page would be useless to a script).

AUTOSAVE_LOGGED_OUT = "登录已超时，自动保存没有完成，内容已保存在本机浏览器。请在新窗口重新登录后再点“保存草稿”。"
AUTOSAVE_EXPIRED = "页面已过期，自动保存没有完成，内容已保存在本机浏览器。请刷新页面，恢复这些文字后再保存。"
AUTOSAVE_NOT_FOUND = "这份材料不存在，或不由您填写。"
AUTOSAVE_NO_VERSION = "页面缺少版本信息，请刷新后重试。"
AUTOSAVE_NO_BODY = "没有收到正文，内容没有保存。请刷新后重试。"


def _autosave_answer(status: int, message: str, **extra):
    return jsonify(message=message, **extra), status


def _json_when_logged_out(view):
    """A lost login answers the script 401 with a message instead of the login page."""

    @functools.wraps(view)
    def run(contribution_id: int):
        if not policy.logged_in(current_user):
            return _autosave_answer(401, AUTOSAVE_LOGGED_OUT, kind="logged_out")
        return view(contribution_id)

    return run


@bp.route("/<int:contribution_id>/autosave", methods=["POST"])
@_json_when_logged_out
@handler("authenticated")
def autosave(contribution_id: int):
    """Save the typed draft (version-checked) and answer {version, saved_at, message}.

    Whoever may not write this material (another region's, another unit's, not a liaison) gets 404
    as for an id that does not exist; a draft that can no longer be edited, or was saved by someone
    else since the page was loaded, gets 409 and keeps its stored text.
    """
    contribution = get_locked(Contribution, contribution_id, [joinedload(Contribution.cycle)])
    if (contribution is None or not in_own_region(contribution, current_user)
            or not policy.can(current_user, "contribution.write", contribution)):
        return _autosave_answer(404, AUTOSAVE_NOT_FOUND, kind="not_found")
    version = arg_int("version", None, source=request.form)
    body = request.form.get("body")
    if version is None:
        return _autosave_answer(400, AUTOSAVE_NO_VERSION, kind="invalid")
    if body is None:
        return _autosave_answer(400, AUTOSAVE_NO_BODY, kind="invalid")
    try:
        svc.autosave_draft(contribution, current_user, body, expected_version=version)
    except DomainError as exc:
        db.session.rollback()  # nothing of a refused save stays (the handler rolls back a 4xx too)
        if isinstance(exc, svc.DraftClosed):
            return _autosave_answer(409, exc.message, kind="state")
        if isinstance(exc, Conflict):
            return _autosave_answer(409, exc.message, kind="conflict")
        return _autosave_answer(400 if exc.status < 500 else exc.status, exc.message, kind="invalid")
    saved = to_local(contribution.updated_at)
    return jsonify(version=contribution.version, saved_at=saved.isoformat(timespec="seconds"),
                   message=f"已自动保存 {saved:%H:%M}")


@bp.route("/<int:contribution_id>/submit", methods=["GET", "POST"])
@handler("authenticated")
def confirm_submit(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    form = VersionForm()
    if not policy.can(current_user, "contribution.submit", contribution):
        flash(f"材料当前为“{contribution.state_label}”，不能提交审核。", "warning")
        return redirect(url_for("tasks.edit", contribution_id=contribution.id))
    # Asked before the page is shown, not only when 确认 is pressed: empty material goes back to the editor.
    try:
        svc.refuse_empty_submission(contribution, current_user)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("tasks.edit", contribution_id=contribution.id))
    if request.method == "POST" and form.validate_on_submit():
        if form.version.data != contribution.version:
            raise Conflict("您确认之后材料又被修改过，请重新核对后再提交。")
        # A refusal (something changed since the page was shown) shows the page again listing the
        # problem, as 409 whatever the refusal.
        with on_refusal(lambda: _confirm_page(contribution_or_abort(contribution_id, current_user), form),
                        status=409):
            svc.submit_contribution(contribution, current_user)
        who = "本单位负责人审核（同意报送）" if contribution.state == "unit_review" else "依法治区办审核"
        flash(f"已提交审核，等待{who}。审核结果会在“消息”中通知您。", "success")
        return redirect(url_for("tasks.index"))
    return _confirm_page(contribution, form), (409 if request.method == "POST" else 200)


def _confirm_page(contribution: Contribution, form: VersionForm) -> str:
    form.version.data = contribution.version
    problems, warnings = _submit_preview(contribution)
    return render_template("tasks/confirm_submit.html", c=contribution, form=form, problems=problems,
                           warnings=warnings)


def _submit_preview(contribution: Contribution) -> tuple[list[str], list[str]]:
    """What 确认提交 would refuse with (the SUBMIT_CHECKS, run read-only now) and the warnings the
    reviewer will see, so the liaison learns both before pressing the button."""
    problems = []
    for check in svc.SUBMIT_CHECKS:
        try:
            check(contribution, current_user)
        except DomainError as exc:
            problems.append(exc.message)
    fig = _figures(contribution)
    if fig is None:
        return problems, []
    warnings = [r.message for r in fig.own_results if r.failed and r.rule.severity == "warning"
                and not r.needs_explanation]
    warnings += [item.message for item in fig.literals]
    if fig.mostly_unchanged:
        warnings.append("正文与上年度通过的文字基本相同，审核人会看到这一提示；请确认已写入今年的新情况。")
    return problems, warnings


@bp.route("/<int:contribution_id>/recall", methods=["POST"])
@handler("authenticated")
def recall(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    form = VersionForm()
    if form.validate_on_submit():
        svc.recall_contribution(contribution, current_user)
        flash("已撤回，材料回到“起草中”，可以继续修改后再提交。", "success")
    else:
        flash("操作未完成，请刷新页面后重试。", "error")
    return redirect(url_for("tasks.edit", contribution_id=contribution.id))


@bp.route("/<int:contribution_id>/attachments/<int:attachment_id>/delete", methods=["POST"])
@handler("authenticated")
def delete_attachment(contribution_id: int, attachment_id: int):
    attachment = attachment_or_abort(attachment_id, current_user)
    if attachment.contribution_id != contribution_id:
        abort_with(404, "这个附件不存在，可能已被删除。")
    # The CSRF token is checked for every POST by CSRFProtect; nothing else is posted here.
    name = attachment.filename
    stored = attachment_service.remove_attachment(attachment, current_user)
    # Committed here, before the file goes: a file is never removed for a row that stays.
    db.session.commit()
    attachment_service.discard_file(stored)
    flash(f"附件“{name}”已删除。", "success")
    return redirect(url_for("tasks.edit", contribution_id=contribution_id))


@bp.route("/attachments/<int:attachment_id>")
@handler("authenticated")
def download(attachment_id: int):
    attachment = attachment_or_abort(attachment_id, current_user)
    response = attachment_service.send_attachment(attachment)  # from the folder or the database
    if response is None:
        abort_with(404, "附件文件已丢失，请联系管理员。")
    return response


def _revision_text(contribution: Contribution, key: str | None):
    """'draft' → the current text; a number → that revision; returns (label, text) or None.

    The text is as displayed: cited figures are printed (a revision with the values it was submitted with).
    """
    renderer = bound_text.current()
    if key == "draft":
        return "当前草稿", renderer.text(contribution)
    number = optional_int(key)
    if number is not None:
        for revision in contribution.revisions:
            if revision.number == number:
                return f"第{revision.number}版", renderer.revision(revision)
    return None


@bp.route("/<int:contribution_id>/history")
@handler("authenticated")
def history(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    revisions = contribution.revisions
    numbers = [str(r.number) for r in revisions]
    default_b = "draft" if (not revisions or (contribution.body or "") != revisions[-1].body) else numbers[-1]
    default_a = numbers[-1] if default_b == "draft" and numbers else (numbers[-2] if len(numbers) > 1 else None)
    a_key = request.args.get("a") or default_a
    b_key = request.args.get("b") or default_b
    left, right = _revision_text(contribution, a_key), _revision_text(contribution, b_key)
    diff = None
    problem = None
    if (request.args.get("a") or request.args.get("b")) and (left is None or right is None):
        problem = "请选择两个存在的版本进行比较。"
    if left is not None and right is not None and problem is None:
        diff = paragraph_diff(left[1], right[1])
    return render_template(
        "tasks/history.html", c=contribution, logs=transition_logs(contribution), revisions=revisions,
        a_key=a_key, b_key=b_key, left=left, right=right, diff=diff, changed=diff is not None and has_changes(diff),
        problem=problem,
    )


# ---------------------------------------------------------------- unit head (单位负责人)


@bp.route("/unit-queue")
@handler("unit_queue.view", message=UNIT_HEADS_ONLY)
def unit_queue():
    # A unit head's own unit, and the units whose unit head delegated to the viewer (委托).
    units = [current_user.unit_id] if current_user.has_role("unit_head") else []
    units += [p.unit_id for p in policy.acting_for(current_user) if p.has_role("unit_head")]
    rows = _unit_contributions(units, states=("unit_review",))
    rows.sort(key=lambda c: (c.submitted_at or c.updated_at, c.id))
    return render_template("tasks/unit_queue.html", rows=rows, own_unit_id=current_user.unit_id)


@bp.route("/<int:contribution_id>/unit-review")
@handler("unit_queue.view", message=UNIT_HEADS_ONLY)
def unit_review(contribution_id: int):
    contribution = contribution_or_abort(contribution_id, current_user)
    if not policy.can(current_user, "contribution.unit_review", contribution):
        abort_with(403, "只能审核本单位的材料。")
    approve_form, return_form = DecisionForm(), ReturnForm()
    approve_form.version.data = return_form.version.data = contribution.version
    return render_template("tasks/unit_review.html", c=contribution, approve_form=approve_form,
                           return_form=return_form, logs=transition_logs(contribution),
                           can_decide=policy.can(current_user, "contribution.unit_approve", contribution))


def _decide(contribution_id: int, event: str):
    contribution = contribution_or_abort(contribution_id, current_user)
    form = DecisionForm() if event == "unit_approve" else ReturnForm()
    ok = form.validate_on_submit()
    if ok and event == "unit_return":
        ok = form.check_paragraph(len(contribution.paragraphs))
    if not ok:
        approve_form, return_form = (form, ReturnForm(formdata=None)) if event == "unit_approve" \
            else (DecisionForm(formdata=None), form)
        approve_form.version.data = return_form.version.data = contribution.version
        return render_template("tasks/unit_review.html", c=contribution, approve_form=approve_form,
                               return_form=return_form, logs=transition_logs(contribution),
                               can_decide=policy.can(current_user, f"contribution.{event}", contribution)), 400
    if form.version.data != contribution.version:
        raise Conflict("这份材料在您打开页面后有了变化，请查看最新内容后再处理。")
    context = {}
    if event == "unit_return" and form.paragraph.data:
        context["paragraph"] = form.paragraph.data
    operation = svc.unit_approve_contribution if event == "unit_approve" else svc.unit_return_contribution
    operation(contribution, current_user, comment=form.comment.data, **context)
    flash("已同意报送，材料已转给依法治区办审核。" if event == "unit_approve"
          else "已退回修改，联络员会在“消息”中看到您的意见。", "success")
    return redirect(url_for("tasks.unit_queue"))


@bp.route("/<int:contribution_id>/unit-approve", methods=["POST"])
@handler("unit_queue.view", message=UNIT_HEADS_ONLY)
def unit_approve(contribution_id: int):
    return _decide(contribution_id, "unit_approve")


@bp.route("/<int:contribution_id>/unit-return", methods=["POST"])
@handler("unit_queue.view", message=UNIT_HEADS_ONLY)
def unit_return(contribution_id: int):
    return _decide(contribution_id, "unit_return")
