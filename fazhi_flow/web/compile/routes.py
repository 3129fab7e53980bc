"""Routes of 汇总签发. Each one declares its gate (``@handler``) and runs as one unit of work: load, check
the cycle with the policy, validate, one service call, redirect (the handler commits or rolls back).

The area's list has its own gate (``compile.view`` with this area's Chinese message); the pages of one
cycle are "authenticated" and ask ``policy.can`` about that cycle, answering with the same kind of message."""
from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from ... import policy
from ...errors import Conflict, PermissionDenied
from ...extensions import db
from ...figures.numbers import format_number
from ...models import ReportCycle, Section
from ...pages.compile import build_edit_page, build_section_page, build_signoff_page, correction_diff
from ...services.diffs import diff_summary, diff_texts
from ...publish.document import ReportDocument
from ...publish.html import render_article
from ...publish.pdf import pdf_available
from ...services import compile as svc
from ...workflow.states import CYCLE_EVENT_LABELS
from ..errors import abort_with
from ..fields import db_int, optional_int
from ..handler import handler, on_refusal
from ..loading import own_cycle_or_abort
from . import bp
from .forms import ActionForm, AppendixForm, CommentForm, CorrectionForm, ReturnForm, SectionTextForm, SignForm


def _cycle_or_404(cycle_id: int) -> ReportCycle:
    # Drafts of another region do not exist for this user (overseers included: they read publications).
    return own_cycle_or_abort(cycle_id, current_user)


READER_ONLY = "汇总签发只对管理员和签发领导开放。"


def _reader_cycle(cycle_id: int) -> ReportCycle:
    """The cycle, for someone who may read its draft (admins and leaders)."""
    cycle = _cycle_or_404(cycle_id)
    if not policy.can(current_user, "cycle.read_draft", cycle):
        abort_with(403, READER_ONLY)
    return cycle


def _admin_cycle(cycle_id: int) -> ReportCycle:
    """The cycle, for someone who may compile it (admins)."""
    cycle = _cycle_or_404(cycle_id)
    if not policy.can(current_user, "cycle.compile", cycle):
        abort_with(403, "只有管理员可以汇总编辑和发布年度报告。")
    return cycle


def _to_edit(cycle: ReportCycle, section: Section | None = None):
    if section is not None and request.args.get("back") == "section":
        # Saved from the section's own page: back to it.
        return redirect(url_for("compile.section", cycle_id=cycle.id, section_id=section.id), code=303)
    anchor = f"s{section.id}" if section is not None else None
    return redirect(url_for("compile.edit", cycle_id=cycle.id, _anchor=anchor), code=303)


def _to_signoff(cycle: ReportCycle):
    return redirect(url_for("compile.signoff", cycle_id=cycle.id), code=303)


def _valid(form) -> bool:
    """True when ``form`` validates; else its messages are flashed (the page it goes back to shows them)."""
    if form.validate_on_submit():
        return True
    for errors in form.errors.values():
        for message in errors:
            flash(message, "error")
    return False


def _signing_cycle(cycle_id: int) -> ReportCycle:
    """The cycle, for a leader while a draft (or a correction) awaits signing."""
    cycle = _cycle_or_404(cycle_id)
    if policy.cycle_principal_for(current_user, cycle, "sign") is None:
        raise PermissionDenied("只有签发领导可以签发或退回待签发的年度报告。")
    if not policy.can(current_user, "cycle.sign", cycle):
        # E.g. the same form submitted twice: the first submission already decided.
        raise Conflict(f"年度报告当前为“{cycle.state_label}”，没有等待签发的稿件。请刷新页面查看最新状态。")
    return cycle


def _version_arg(name: str) -> int | None:
    """A draft number from the query string; one that is given but malformed names no draft (404)."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    number = request.args.get(name, type=db_int)
    if number is None:
        abort_with(404, "没有这一稿。")
    return number


def _article(document: ReportDocument) -> Markup:
    return Markup(render_article(document))  # render_article escapes every text


@bp.route("/")
@handler("compile.view", message=READER_ONLY)
def index():
    cycles = list(db.session.scalars(
        select(ReportCycle).where(ReportCycle.region_id == current_user.region_id, ReportCycle.state.in_(
            ("compiling", "signoff", "signed", "published", "correcting")))
        .order_by(ReportCycle.year.desc(), ReportCycle.id.desc())
    ))
    return render_template("compile/index.html", cycles=cycles, latest=svc.latest_versions(cycles))


@bp.route("/<int:cycle_id>")
@handler("authenticated")
def edit(cycle_id: int):
    cycle = _reader_cycle(cycle_id)
    if not policy.can(current_user, "cycle.compile", cycle):
        return redirect(url_for("compile.signoff", cycle_id=cycle.id))
    page = build_edit_page(cycle, current_user)
    forms = {
        v.section.id: SectionTextForm(formdata=None, body=v.text, version=v.draft.version if v.draft else 0)
        for v in page.views
    }
    # Where a section is shown: its card on this page, else its own page (the link made once).
    section_url = url_for("compile.section", cycle_id=cycle.id, section_id=0)[:-1]
    return render_template(
        "compile/edit.html", cycle=cycle, views=page.views, forms=forms, svc=svc,
        editable=page.editable, last_return=page.last_return, correction_return=page.correction_return,
        latest=page.latest, publications=page.publications, action_form=ActionForm(formdata=None),
        comment_form=CommentForm(formdata=None), missing=page.missing, stale=page.stale,
        pdf_ok=pdf_available(), changes=page.changes, format_number=format_number,
        signature_checked=page.checked, appendix_form=AppendixForm(formdata=None, appendix=page.appendix),
        summaries=page.summaries, inline=page.inline, section_url=section_url,
    )


def _section_or_404(cycle: ReportCycle, section_id: int) -> Section:
    section = db.session.get(Section, section_id)
    if section is None or section.cycle_id != cycle.id:
        abort_with(404, "该章节不存在。")
    return section


@bp.route("/<int:cycle_id>/sections/<int:section_id>")
@handler("authenticated")
def section(cycle_id: int, section_id: int):
    cycle = _reader_cycle(cycle_id)
    if not policy.can(current_user, "cycle.compile", cycle):
        return redirect(url_for("compile.signoff", cycle_id=cycle.id))
    page = build_section_page(cycle, _section_or_404(cycle, section_id), current_user)
    v = page.view
    form = SectionTextForm(formdata=None, body=v.text, version=v.draft.version if v.draft else 0)
    return render_template("compile/section.html", cycle=cycle, page=page, v=v, forms={v.section.id: form},
                           editable=page.editable, latest=page.latest, back="section")


@bp.route("/<int:cycle_id>/sections/<int:section_id>", methods=["POST"])
@handler("authenticated")
def save_section(cycle_id: int, section_id: int):
    cycle = _admin_cycle(cycle_id)
    section = _section_or_404(cycle, section_id)
    form = SectionTextForm()
    if _valid(form):
        svc.save_section_text(cycle, section, current_user, form.body.data, form.version.data)
        flash(f"已保存“{section.numbered_title}”的合并稿。", "success")
    return _to_edit(cycle, section)


@bp.route("/<int:cycle_id>/sections/<int:section_id>/reset", methods=["POST"])
@handler("authenticated")
def reset_section(cycle_id: int, section_id: int):
    cycle = _admin_cycle(cycle_id)
    section = _section_or_404(cycle, section_id)
    if ActionForm().validate_on_submit():
        svc.reset_section_text(cycle, section, current_user)
        flash(f"“{section.numbered_title}”已按已通过的报送材料重新生成。", "success")
    return _to_edit(cycle, section)


@bp.route("/<int:cycle_id>/appendix", methods=["POST"])
@handler("authenticated")
def appendix(cycle_id: int):
    cycle = _admin_cycle(cycle_id)
    form = AppendixForm()
    if _valid(form) and (version := svc.set_appendix(cycle, current_user, form.appendix.data)) is not None:
        state = "将附" if form.appendix.data else "不再附"
        flash(f"合并稿{state}“附件：统计指标汇总表”（第{version.number}稿）。", "success")
    return _to_edit(cycle)


@bp.route("/<int:cycle_id>/preview")
@handler("authenticated")
def preview(cycle_id: int):
    cycle = _reader_cycle(cycle_id)
    document = svc.current_document(cycle)
    return render_template("compile/preview.html", cycle=cycle, article=_article(document),
                           document=document, pdf_ok=pdf_available())


@bp.route("/<int:cycle_id>/draft.<fmt>")
@handler("authenticated")
def draft_file(cycle_id: int, fmt: str):
    cycle = _reader_cycle(cycle_id)
    if fmt not in svc.FORMATS:
        abort_with(404, "不支持该格式。")
    number = _version_arg("version")
    if number:
        document = ReportDocument.from_dict(svc.get_version(cycle, number).document)
        name = svc.download_name(cycle, fmt, draft=True).replace("（草稿）", f"（第{number}稿）")
    else:
        document, name = svc.current_document(cycle), svc.download_name(cycle, fmt, draft=True)
    content = svc.render_format(document, fmt)
    return _file_response(content, fmt, name)


def _file_response(content: bytes, fmt: str, name: str) -> Response:
    from urllib.parse import quote

    response = Response(content, content_type=svc.FORMATS[fmt][0])  # carries its charset
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return response


@bp.route("/<int:cycle_id>/request-signoff", methods=["POST"])
@handler("authenticated")
def request_signoff(cycle_id: int):
    cycle = _admin_cycle(cycle_id)
    form = CommentForm()
    if _valid(form):
        svc.request_signoff(cycle, current_user, comment=form.comment.data)
        flash(f"已提请签发第{svc.latest_version(cycle).number}稿，等待签发领导审阅。", "success")
    return _to_edit(cycle)


@bp.route("/<int:cycle_id>/signoff")
@handler("authenticated")
def signoff(cycle_id: int):
    page = build_signoff_page(_reader_cycle(cycle_id), current_user)
    return render_template(
        "compile/signoff.html", article=_article(page.document), event_labels=CYCLE_EVENT_LABELS,
        sign_form=SignForm(formdata=None, version=page.version.number if page.version else ""),
        return_form=ReturnForm(formdata=None), **page.context())


@bp.route("/<int:cycle_id>/sign", methods=["POST"])
@handler("authenticated")
def sign(cycle_id: int):
    cycle = _signing_cycle(cycle_id)
    form = SignForm()
    if not _valid(form):
        return _to_signoff(cycle)
    version = optional_int(form.version.data)
    if version is None:
        # The page says which version was read; without it we cannot tell it is the latest.
        raise Conflict("无法确认您阅读的是哪一稿，请刷新页面、重新阅读后再签发。")
    correcting = cycle.state == "correcting"
    svc.sign_report(cycle, current_user, version, comment=form.comment.data)
    if correcting:
        publication = svc.latest_publication(cycle)
        flash(f"已签发更正，第{publication.version}版已发布。SHA-256：{publication.sha256}", "success")
        if publication.pdf_status == "pending":
            flash("更正版本的 PDF 正在后台生成，约一两分钟后可下载。", "info")
    else:
        flash("已签发。管理员发布后，报告将在公开页面上线。", "success")
    return _to_signoff(cycle)


@bp.route("/<int:cycle_id>/return", methods=["POST"])
@handler("authenticated")
def return_draft(cycle_id: int):
    cycle = _signing_cycle(cycle_id)
    form = ReturnForm()
    if _valid(form):
        svc.return_report(cycle, current_user, form.comment.data)
        flash("已退回修改，管理员将看到您的意见。", "success")
    return _to_signoff(cycle)


@bp.route("/<int:cycle_id>/versions")
@handler("authenticated")
def versions(cycle_id: int):
    cycle = _reader_cycle(cycle_id)
    rows = svc.versions(cycle)
    published = {p.draft_version_id: p for p in svc.publications(cycle)}
    return render_template("compile/versions.html", cycle=cycle, versions=rows[::-1], published=published)


@bp.route("/<int:cycle_id>/versions/<int:number>")
@handler("authenticated")
def version(cycle_id: int, number: int):
    cycle = _reader_cycle(cycle_id)
    row = svc.get_version(cycle, number)
    return render_template("compile/version.html", cycle=cycle, version=row,
                           article=_article(ReportDocument.from_dict(row.document)))


@bp.route("/<int:cycle_id>/diff")
@handler("authenticated")
def diff(cycle_id: int):
    cycle = _reader_cycle(cycle_id)
    new_number = _version_arg("b")
    new = svc.get_version(cycle, new_number) if new_number else svc.latest_version(cycle)
    if new is None:
        abort_with(404, "还没有任何稿件版本。")
    old_number = _version_arg("a") or (new.number - 1)
    if old_number < 1:
        abort_with(404, "第1稿之前没有可比较的版本。")
    old = svc.get_version(cycle, old_number)
    rows = diff_texts(old.text, new.text)
    return render_template("compile/diff.html", cycle=cycle, old=old, new=new, rows=rows,
                           summary=diff_summary(rows), all_versions=svc.versions(cycle))


@bp.route("/<int:cycle_id>/publish", methods=["POST"])
@handler("authenticated")
def publish(cycle_id: int):
    cycle = _admin_cycle(cycle_id)
    if ActionForm().validate_on_submit():
        publication = svc.publish_report(cycle, current_user)
        flash(f"已发布。SHA-256：{publication.sha256}", "success")
        if publication.pdf_status == "pending":
            flash("PDF 正在后台生成，约一两分钟后可在发布版本中下载；Word、网页和纯文本已可下载。", "info")
        elif publication.pdf_status == "none":
            flash("PDF 未生成：" + svc.PdfUnavailable().message, "warning")
    return _to_edit(cycle)


@bp.route("/<int:cycle_id>/correction", methods=["GET", "POST"])
@handler("authenticated")
def correction(cycle_id: int):
    cycle = _admin_cycle(cycle_id)
    form = CorrectionForm()
    if not form.validate_on_submit():
        return _correction_page(cycle, form, 200)
    # A refusal is shown on this page with the note as typed: nothing the admin wrote is lost.
    with on_refusal(lambda: _correction_page(cycle, form, 200)[0]):
        svc.request_correction(cycle, current_user, form.note.data, form.published.data, form.draft.data)
    flash("已提请签发更正。签发领导签发后，更正作为新版本发布；此前的版本仍公开可查。", "success")
    return _to_edit(cycle)


def _correction_page(cycle: ReportCycle, form: CorrectionForm, status: int):
    """The correction form with the diff against the published version; the hidden fields say which
    publication and draft the admin compared (kept from the form when it is shown again)."""
    previous, latest = svc.latest_publication(cycle), svc.latest_version(cycle)
    # The page shows the diff as it is now, so the fields name these versions (the note stays).
    for field, value in ((form.published, previous and previous.version), (form.draft, latest and latest.number)):
        field.data, field.raw_data = value, None
    rows = correction_diff(cycle, previous)
    return render_template("compile/correction.html", cycle=cycle, form=form, previous=previous,
                           rows=rows, summary=diff_summary(rows), note=svc.correction_note(cycle)), status
