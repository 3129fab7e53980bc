"""Figures pages. Each route declares who may enter it (``@handler``) and runs as one unit of work:
load and check the object, read the form, call one service, redirect (or re-render with the typed
input and a Chinese message; the handler commits or rolls back)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from markupsafe import Markup

from ... import policy
from ...errors import DomainError
from ...extensions import db
from ...figures.evaluate import FigureBook
from ...figures.summary import export_xlsx, summary_rows
from ...models import Contribution, ReportCycle, Section
from ...models.indicator import (
    INDICATOR_TYPES,
    MEASURE_UNITS,
    REPORTED_BY,
    ROLLUPS,
    Indicator,
    Rule,
)
from ...services import figures as svc
from ...services.attachments import clean_filename
from ..errors import abort_with
from ..fields import arg_int, db_int
from ..handler import handler, on_refusal
from ..loading import contribution_or_abort
from . import bp


def _contribution(contribution_id: int):
    found = db.session.get(Contribution, contribution_id)
    if found is not None and policy.region_of(found) != current_user.region_id:
        # Another region's material does not exist for this user (not even as "not yours").
        abort_with(404, "这份材料不存在。")
    contribution = contribution_or_abort(contribution_id, current_user)
    if not policy.can(current_user, "figures.view", contribution):
        abort_with(403, "您没有权限查看这份材料的统计数据。")
    return contribution


def _editable(contribution):
    if not policy.can(current_user, "figures.edit", contribution):
        abort_with(403, "只有本单位联络员可以在材料可编辑时（起草中或已退回、征集中）修改。")


def _cycle(cycle_id: int) -> ReportCycle:
    cycle = db.session.get(ReportCycle, cycle_id)
    if cycle is None or cycle.region_id != current_user.region_id:
        abort_with(404, "这个年度报告不存在。")
    return cycle


def _version() -> int | None:
    return arg_int("version", source=request.form)


def editor_url(contribution) -> str | None:
    """The text editor of another area, when it exists."""
    from ..helpers import has_endpoint

    return url_for("tasks.edit", contribution_id=contribution.id) if has_endpoint("tasks.edit") else None


# ---------------------------------------------------------------- the values form


@bp.route("/contribution/<int:contribution_id>", methods=["GET", "POST"])
@handler("authenticated")
def contribution(contribution_id: int):
    contribution = _contribution(contribution_id)
    if request.method == "GET":
        return _values_page(contribution)
    _editable(contribution)
    book = FigureBook(contribution.cycle)
    codes = [ind.code for ind in book.indicators_for(contribution)]
    values = {code: request.form.get(f"value-{code}", "") for code in codes}
    # A value posted for a roll-up (nobody enters one) is refused by name, not dropped without a word.
    values |= {code: request.form[f"value-{code}"] for code, ind in book.indicators.items()
               if ind.rollup and f"value-{code}" in request.form}
    explanations = {key: request.form.get(f"explain-{key}", "") for key in request.form.getlist("explain_keys")}
    typed = {**values, **{f"explain-{k}": v for k, v in explanations.items()}}
    with on_refusal(_form_refusal(lambda errors: _values_page(contribution, typed, errors),
                                  "填报的数值有误，均未保存，请按提示修改。"), status=_form_status, flash=False):
        svc.save_figures(contribution, current_user, values, explanations, stamp=request.form.get("stamp") or None)
    flash("统计数据已保存。", "success")
    return redirect(url_for("figures.contribution", contribution_id=contribution.id))


def _form_refusal(page, summary: str):
    """An ``on_refusal`` page for a form of values: the fields a FigureFormError refused are shown
    beside them (``page(errors)``) under ``summary``; any other refusal is flashed as it is."""

    def render(exc):
        errors = exc.errors if isinstance(exc, svc.FigureFormError) else {}
        flash(summary if errors else exc.message, "error")
        return page(errors)

    return render


def _form_status(exc) -> int | None:
    """422 for refused fields; None leaves any other refusal its own status."""
    return 422 if isinstance(exc, svc.FigureFormError) else None


def _values_page(contribution, typed: dict | None = None, errors: dict | None = None):
    report = svc.contribution_figures(contribution, current_user)
    errors = errors or {}
    # Refusals of values the form has no field for (a roll-up posted by hand): shown above the form.
    fields = {r.indicator.code for r in report.rows} | {key for key, _, _ in report.explainable}
    return render_template(
        "figures/contribution.html", contribution=contribution, fig=report,
        other_errors=[message for key, message in errors.items() if key not in fields],
        editable=policy.can(current_user, "figures.edit", contribution), typed=typed or {}, errors=errors,
        stamp=svc.values_stamp(contribution, report.book), editor_url=editor_url(contribution),
        rendered=svc.rendered_for(contribution, report.book, current_user),
    )


@bp.route("/contribution/<int:contribution_id>/checks")
@handler("authenticated")
def checks(contribution_id: int):
    """The rule results and flags of one contribution on a page of their own (review include)."""
    contribution = _contribution(contribution_id)
    return render_template("figures/checks.html", contribution=contribution,
                           fig=svc.contribution_figures(contribution, current_user))


def figures_panel(contribution) -> Markup:
    """Template global: the review include for ``contribution`` ('' when the viewer may not see it)."""
    if not policy.can(current_user, "figures.view", contribution):
        return Markup("")
    report = svc.contribution_figures(contribution, current_user)
    if not report.rows and not report.results and not report.literals and not report.mostly_unchanged:
        return Markup("")
    return Markup(render_template("figures/_review_panel.html", contribution=contribution, fig=report))


bp.add_app_template_global(figures_panel, "figures_panel")


@bp.app_template_global("signature_rules")
def signature_rules(cycle) -> dict:
    """Template global for the sign-off page: failing rules on the approved figures, by level."""
    results = [r for r in svc.signature_rule_results(cycle) if r.failed]
    return {"errors": [r for r in results if r.blocking], "warnings": [r for r in results if not r.blocking]}


@bp.app_template_global("figures_url")
def figures_url(contribution) -> str:
    """Template global: the link to the values page, for the editor."""
    return url_for("figures.contribution", contribution_id=contribution.id)


# ---------------------------------------------------------------- last year's text, Word import


def _confirm_page(contribution, new_text, action, source, extra=None):
    return render_template("figures/confirm_replace.html", contribution=contribution, new_text=new_text,
                           action=action, source=source, extra=extra or {}), 409


@bp.route("/contribution/<int:contribution_id>/from-last-year", methods=["POST"])
@handler("authenticated")
def from_last_year(contribution_id: int):
    contribution = _contribution(contribution_id)
    _editable(contribution)
    # Refused: back to the values page, wherever the button was.
    with on_refusal(lambda: redirect(url_for("figures.contribution", contribution_id=contribution.id))):
        try:
            svc.start_from_last_year(contribution, current_user, confirm=request.form.get("confirm") == "1",
                                     expected_version=_version())
        except svc.NeedsConfirmation:
            # A question, not a refusal: nothing was written; ask before replacing the text.
            from ...figures.yoy import approved_text, previous_contribution

            return _confirm_page(contribution, approved_text(previous_contribution(contribution)),
                                 url_for("figures.from_last_year", contribution_id=contribution.id), "上年度文字")
    flash("已用上年度通过的文字作为草稿，请逐段更新为今年的情况。", "success")
    return redirect(editor_url(contribution) or url_for("figures.contribution", contribution_id=contribution.id))


@bp.route("/contribution/<int:contribution_id>/import", methods=["GET", "POST"])
@handler("authenticated")
def import_docx(contribution_id: int):
    contribution = _contribution(contribution_id)
    _editable(contribution)
    if request.method == "GET":
        return render_template("figures/import.html", contribution=contribution, mode="replace")
    upload = request.files.get("file")
    mode = request.form.get("mode", "replace")
    if upload is None or not upload.filename:
        flash("请选择要导入的 .docx 文件。", "error")
        return render_template("figures/import.html", contribution=contribution, mode=mode), 400
    data = upload.read()
    with on_refusal(lambda: render_template("figures/import.html", contribution=contribution, mode=mode)):
        try:
            svc.import_docx_draft(contribution, current_user, data, upload.filename, mode=mode,
                                  expected_version=_version())
        except svc.NeedsConfirmation:
            # A question, not a refusal: nothing was written; ask before replacing the text.
            from ...figures.docx_import import docx_to_text

            return _confirm_page(contribution, docx_to_text(data, upload.filename),
                                 url_for("figures.import_apply", contribution_id=contribution.id),
                                 f"Word 文档“{upload.filename}”", {"send_text": True})
    flash("已导入 Word 文档的文字，请核对后保存或提交。", "success")
    return redirect(editor_url(contribution) or url_for("figures.contribution", contribution_id=contribution.id))


@bp.route("/contribution/<int:contribution_id>/import/apply", methods=["POST"])
@handler("authenticated")
def import_apply(contribution_id: int):
    """Second step of a Word import that replaces existing text: the liaison confirmed."""
    contribution = _contribution(contribution_id)
    _editable(contribution)
    text = request.form.get("text", "")
    if request.form.get("confirm") != "1":
        flash("未确认，草稿保持不变。", "info")
        return redirect(url_for("figures.contribution", contribution_id=contribution.id))
    # Refused: the confirmation page again with the text, as 409 whatever the refusal.
    with on_refusal(lambda: _confirm_page(contribution, text, url_for("figures.import_apply",
                                                                      contribution_id=contribution.id),
                                          "Word 文档", {"send_text": True}), status=409):
        svc.replace_draft(contribution, current_user, text, confirm=True, expected_version=_version(),
                          source="导入 Word 文档")
    flash("已用 Word 文档的文字替换草稿。", "success")
    return redirect(editor_url(contribution) or url_for("figures.contribution", contribution_id=contribution.id))


# ---------------------------------------------------------------- definitions (admin)


ADMINS_ONLY = "只有管理员可以定义统计指标和校验规则。"


@bp.route("/cycle/<int:cycle_id>/definitions", methods=["GET", "POST"])
@handler("admin.manage", message=ADMINS_ONLY)
def definitions(cycle_id: int):
    cycle = _cycle(cycle_id)
    if request.method == "GET":
        return _definitions_page(cycle)
    form_kind, typed = request.form.get("form"), request.form.to_dict()
    section = db.session.get(Section, request.form.get("section_id", type=db_int) or 0)
    if section is not None and section.cycle_id != cycle.id and section.cycle.region_id != cycle.region_id:
        abort_with(404, "这个章节不存在。")
    with on_refusal(_form_refusal(lambda errors: _definitions_page(cycle, typed, errors, form_kind),
                                  "填写有误，未保存，请按提示修改。"), status=_form_status, flash=False):
        done = _define(cycle, section, form_kind, typed)
    flash(done, "success")
    return redirect(url_for("figures.definitions", cycle_id=cycle.id))


def _define(cycle, section, form_kind: str | None, typed: dict) -> str:
    """One change of the definitions form; returns the message to show."""
    if form_kind == "indicator":
        ind = svc.define_indicator(cycle, current_user, section, {
            **typed, "required": request.form.get("required") == "1"})
        return f"已保存指标“{ind.name}”（{ind.code}）。"
    if form_kind == "rule":
        rule = svc.add_rule(cycle, current_user, section, typed.get("expression", ""),
                            typed.get("severity", "error"), typed.get("message"))
        return f"已添加校验规则“{rule.expression}”。"
    if form_kind == "delete_indicator":
        ind = _posted_of_cycle(Indicator, "indicator_id", cycle, "这个指标不存在。")
        svc.delete_indicator(cycle, current_user, ind)
        return f"已删除指标“{ind.name}”。"
    if form_kind == "delete_rule":
        svc.delete_rule(cycle, current_user, _posted_of_cycle(Rule, "rule_id", cycle, "这条规则不存在。"))
        return "已删除校验规则。"
    raise DomainError("未知的操作。")


def _posted_of_cycle(model, field: str, cycle, missing: str):
    """The indicator or rule whose id was posted in ``field``; 404 unless it belongs to ``cycle``."""
    row = db.session.get(model, request.form.get(field, type=db_int) or 0)
    if row is None or row.cycle_id != cycle.id:
        abort_with(404, missing)
    return row


def _definitions_page(cycle, typed: dict | None = None, errors: dict | None = None, form_kind=None):
    sections = [s for top in cycle.top_sections() for s in top.walk()]
    return render_template("figures/definitions.html", cycle=cycle, sections=sections, typed=typed or {},
                           errors=errors or {}, form_kind=form_kind, types=INDICATOR_TYPES,
                           measures=MEASURE_UNITS, reported_by=REPORTED_BY, rollup_ways=ROLLUPS,
                           rollups=svc.cycle_rollups(cycle))


# ---------------------------------------------------------------- summary, XLSX, clone


CYCLE_READERS_ONLY = "指标汇总只对依法治区办和签发领导开放。"


@bp.route("/cycle/<int:cycle_id>/summary")
@handler("figures.cycle", message=CYCLE_READERS_ONLY)
def summary(cycle_id: int):
    cycle = _cycle(cycle_id)
    from ...figures.evaluate import evaluate_cycle

    book = FigureBook(cycle)
    results = evaluate_cycle(book, detail=True)
    return render_template("figures/summary.html", cycle=cycle, rows=summary_rows(cycle, book), results=results,
                           problems=[r for r in results if r.status in ("failed", "invalid")],
                           changes=svc.changes_after_approval(cycle, book))


@bp.route("/cycle/<int:cycle_id>/summary.xlsx")
@handler("figures.cycle", message=CYCLE_READERS_ONLY)
def summary_xlsx(cycle_id: int):
    import io

    cycle = _cycle(cycle_id)
    return send_file(io.BytesIO(export_xlsx(cycle)), as_attachment=True,
                     download_name=clean_filename(f"{cycle.region}{cycle.year}年统计指标汇总.xlsx"),
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.route("/cycle/<int:cycle_id>/clone", methods=["GET", "POST"])
@handler("admin.manage", message=ADMINS_ONLY)
def clone(cycle_id: int):
    """Old address of 复制为新年度: cloning happens only on the admin page, after a preview of every
    changed year and date, so this creates nothing and sends the admin there with the cycle chosen."""
    cycle = _cycle(cycle_id)
    if request.method == "POST":
        flash("复制为新年度需先预览标题、填报说明中的年份和各截止日期的改动，确认后才创建。请在下方核对后点“预览改动”。",
              "error")
    return redirect(url_for("admin.cycle_new", source=cycle.id, _anchor="clone"), code=303)


@bp.app_template_filter("fig_number")
def fig_number(value) -> str:
    from ...figures.numbers import format_number

    return "未填" if value is None else format_number(value)


@bp.app_template_filter("fig_paragraphs")
def fig_paragraphs(value) -> Markup:
    """Paragraphs of an already-escaped rendering (Markup), one <p> per line."""
    lines = [line for line in Markup(value).split("\n") if line.strip()]
    return Markup("").join(Markup("<p>{}</p>").format(line) for line in lines)


# ---------------------------------------------------------------- figures from Excel (统计表)

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _sheet_file(data: bytes, name: str):
    import io

    return send_file(io.BytesIO(data), as_attachment=True, download_name=clean_filename(name), mimetype=XLSX_MIME)


def _uploaded_sheet() -> bytes | None:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    return upload.read()


def _sheet_refusal(page):
    """An ``on_refusal`` page for an upload: per-cell errors listed on the page, anything else flashed."""
    from ...services.figure_sheet import SheetError

    def render(exc):
        errors = exc.errors if isinstance(exc, SheetError) else []
        flash("统计表有错误，均未保存，请按下列提示修改后重新上传。" if errors else exc.message, "error")
        return page(errors)

    return render


def _sheet_upload(preview, **context):
    """The upload page of a sheet (GET), or its preview after an upload (POST): ``preview(data)`` reads
    the file; per-cell errors come back on the upload page, nothing is written."""
    def page(errors=None):
        return render_template("figures/sheet_upload.html", errors=errors or [], **context)

    if request.method == "GET":
        return page()
    data = _uploaded_sheet()
    if data is None:
        flash("请选择填写好的统计表（.xlsx 文件）。", "error")
        return page(), 400
    with on_refusal(_sheet_refusal(page), flash=False):
        result = preview(data)
    return render_template("figures/sheet_preview.html", preview=result, **context)


@bp.route("/contribution/<int:contribution_id>/sheet.xlsx")
@handler("authenticated")
def unit_sheet(contribution_id: int):
    """The unit's indicator sheet of this contribution, to fill in Excel or WPS."""
    from ...services.figure_sheet import unit_sheet as build

    contribution = _contribution(contribution_id)
    return _sheet_file(build(contribution), f"{contribution.unit.name}统计表_{contribution.section.path_label}"
                                            f"_材料{contribution.id}.xlsx")


@bp.route("/contribution/<int:contribution_id>/sheet", methods=["GET", "POST"])
@handler("authenticated")
def unit_sheet_upload(contribution_id: int):
    """Upload the filled sheet: a preview of every change, or the errors by cell; nothing written."""
    from ...services import figure_sheet as sheet

    contribution = _contribution(contribution_id)
    _editable(contribution)
    return _sheet_upload(lambda data: sheet.preview_unit(contribution, current_user, data),
                         contribution=contribution, section=None)


@bp.route("/contribution/<int:contribution_id>/sheet/confirm", methods=["POST"])
@handler("authenticated")
def unit_sheet_confirm(contribution_id: int):
    """Write the previewed values through the values form's service (stamp-checked again)."""
    from ...services import figure_sheet as sheet

    contribution = _contribution(contribution_id)
    _editable(contribution)
    book = FigureBook(contribution.cycle)
    values = {ind.code: request.form[f"value-{ind.code}"] for ind in book.indicators_for(contribution)
              if f"value-{ind.code}" in request.form}
    with on_refusal(lambda: redirect(url_for("figures.unit_sheet_upload", contribution_id=contribution.id))):
        sheet.save_unit(contribution, current_user, values, request.form.get("stamp") or "")
    flash(f"已按统计表保存{len(values)}项统计数据。", "success")
    return redirect(url_for("figures.contribution", contribution_id=contribution.id))


def _section(cycle, section_id: int) -> Section:
    section = db.session.get(Section, section_id)
    if section is None or section.cycle_id != cycle.id:
        abort_with(404, "这个章节不存在。")
    return section


@bp.route("/cycle/<int:cycle_id>/section/<int:section_id>/sheet.xlsx")
@handler("admin.manage", message=ADMINS_ONLY)
def section_sheet(cycle_id: int, section_id: int):
    """Every unit's indicators of a section in one sheet (one row per unit × indicator)."""
    from ...services.figure_sheet import section_sheet as build

    cycle = _cycle(cycle_id)
    section = _section(cycle, section_id)
    return _sheet_file(build(cycle, section), f"{cycle.year}年统计表_{section.path_label}_全部单位.xlsx")


@bp.route("/cycle/<int:cycle_id>/section/<int:section_id>/sheet", methods=["GET", "POST"])
@handler("admin.manage", message=ADMINS_ONLY)
def section_sheet_upload(cycle_id: int, section_id: int):
    from ...services import figure_sheet as sheet

    cycle = _cycle(cycle_id)
    section = _section(cycle, section_id)
    return _sheet_upload(lambda data: sheet.preview_section(cycle, section, current_user, data),
                         contribution=None, cycle=cycle, section=section)


@bp.route("/cycle/<int:cycle_id>/section/<int:section_id>/sheet/confirm", methods=["POST"])
@handler("admin.manage", message=ADMINS_ONLY)
def section_sheet_confirm(cycle_id: int, section_id: int):
    from ...services import figure_sheet as sheet

    cycle = _cycle(cycle_id)
    section = _section(cycle, section_id)
    posted = _posted_section_values()
    with on_refusal(lambda: redirect(url_for("figures.section_sheet_upload", cycle_id=cycle.id,
                                             section_id=section.id))):
        written, skipped = sheet.save_section(cycle, section, current_user, posted)
    note = "；".join(f"{s.contribution.unit.name}未保存（{s.reason}）" for s in skipped)
    flash(f"已按统计表保存{written}项统计数据。" + (f"{note}。" if note else ""), "success")
    return redirect(url_for("figures.definitions", cycle_id=cycle.id))


def _posted_section_values() -> dict[int, tuple[str, dict]]:
    """contribution id → (stamp, code → value) from the confirmation form (``stamp-<id>``, ``value-<id>-<code>``)."""
    from ..fields import optional_int

    posted: dict[int, tuple[str, dict]] = {}
    for cid in request.form.getlist("contribution", type=db_int)[:1000]:
        if cid:
            posted[cid] = (request.form.get(f"stamp-{cid}") or "", {})
    for key, value in request.form.items():
        head, _, rest = key.partition("-")
        cid_text, _, code = rest.partition("-")
        cid = optional_int(cid_text) if head == "value" else None
        if cid in posted and code:
            posted[cid][1][code] = value
    return posted
