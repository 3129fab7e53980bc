"""Operations on figures: save a unit's indicator values and explanations, check before 提交审核,
snapshot values with each revision and at approval, and list what a later change affects.

Importing this module registers its submit check and revision data in ``services.contributions`` and
its approval snapshot on the workflow signal (idempotently).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select

from .. import policy
from ..database import lock_row
from ..errors import Conflict, DomainError
from ..extensions import db
from ..figures import bound as B
from ..figures import yoy as Y
from ..figures.evaluate import FigureBook, evaluate_contribution
from ..figures.literal import check_literals
from ..figures.numbers import STORABLE, format_number, parse_value, storable_number
from ..figures.visibility import Visibility
from ..models.indicator import FigureExplanation, IndicatorValue
from ..timeutil import utcnow
from ..workflow.machine import transition_fired
from . import contributions as C
from .audit import record

MAX_EXPLANATION_CHARS = 1000


class FigureFormError(DomainError):
    """Values were refused; ``errors`` maps a field (indicator code or explanation key) to its message."""

    def __init__(self, errors: dict[str, str]):
        lines = list(errors.values())
        super().__init__("填报的数值有误，均未保存：\n" + "\n".join(lines))
        self.errors = errors


# ---------------------------------------------------------------- permissions


def can_view_figures(user, contribution) -> bool:
    """The unit's own people, admins, leaders and the section's reviewers read a unit's values."""
    return policy.can(user, "figures.view", contribution)


def can_edit_figures(user, contribution) -> bool:
    return policy.can(user, "figures.edit", contribution)


def can_view_cycle_figures(user) -> bool:
    """Only the office (admins, reviewers) and leaders see every unit's values side by side."""
    return policy.can(user, "figures.cycle")


def sees_unit_breakdown(user) -> bool:
    return policy.can(user, "figures.cycle")


# ---------------------------------------------------------------- what a contribution's figures say


@dataclass
class FigureRow:
    indicator: object
    value: Decimal | None
    previous: Decimal | None = None
    jump: object = None
    explanation: str | None = None
    approved_value: Decimal | None = None

    @property
    def display(self) -> str:
        return format_number(self.value) if self.value is not None else ""

    @property
    def changed_since_approval(self) -> bool:
        return self.approved_value is not None and self.value != self.approved_value


@dataclass
class ValueChange:
    indicator: object
    contribution: object
    old: Decimal | None
    new: Decimal | None
    sentences: list = field(default_factory=list)  # (citing contribution, before, after)


@dataclass
class ContributionFigures:
    contribution: object
    book: FigureBook
    rows: list
    results: list
    literals: list
    jumps: list
    unknown_citations: list
    empty_citations: list
    foreign_citations: list = field(default_factory=list)  # codes the reader cannot check (visibility)
    previous: object = None  # last year's contribution of the same unit and section
    previous_text: str | None = None
    similarity: float = 0.0
    changes: list = field(default_factory=list)
    # Roll-ups of the contribution's section (figures.rollup.Rollup): shown, never entered.
    rollups: list = field(default_factory=list)

    @property
    def missing_required(self) -> list:
        return [r.indicator for r in self.rows if r.indicator.required and r.value is None]

    @property
    def mostly_unchanged(self) -> bool:
        return self.similarity > Y.SIMILARITY_THRESHOLD

    @property
    def own_results(self) -> list:
        return [r for r in self.results if self.contribution.id in r.owners]

    @property
    def concerning_results(self) -> list:
        """Rules this unit's figures enter (its own values or its part of a sum)."""
        return [r for r in self.results if r.concerns(self.contribution.id)]

    @property
    def pending_explanations(self) -> list[tuple[str, str]]:
        """(key, message) of every flag that still needs the liaison's written explanation."""
        pending = [(r.explanation_key, r.message) for r in self.own_results if r.needs_explanation]
        pending += [(j.key, j.message) for j in self.jumps
                    if not (self.book.explanation(self.contribution, j.key) or "").strip()]
        return pending

    @property
    def explainable(self) -> list[tuple[str, str, str]]:
        """(key, message, current explanation) of every flag that takes an explanation."""
        items = [(r.explanation_key, r.message, r.explanation or "") for r in self.own_results
                 if r.failed and r.rule.severity == "warning"]
        items += [(j.key, j.message, self.book.explanation(self.contribution, j.key) or "") for j in self.jumps]
        return items

    def blocking(self) -> list[str]:
        """Everything that stops 提交审核, as sentences a liaison understands."""
        problems = [f"必填指标“{i.name}”（{i.measure}）尚未填写。" for i in self.missing_required]
        problems += [r.full_message for r in self.concerning_results if r.blocks(self.contribution.id)]
        problems += [f"“{r.rule.message or r.rule.expression}”未通过，需要填写说明：{r.message}"
                     for r in self.own_results if r.needs_explanation]
        problems += [f"{j.message}（请在说明栏填写）" for j in self.jumps
                     if not (self.book.explanation(self.contribution, j.key) or "").strip()]
        problems += [f"正文引用了不存在的指标“{{{{{code}}}}}”，请删除或改正。" for code in self.unknown_citations]
        problems += [f"正文引用了“{ind.name}”，但尚未填写该数值。" for ind in self.empty_citations]
        problems += [r.message for r in self.own_results if r.status == "invalid"]
        return problems

    @property
    def warning_count(self) -> int:
        return (len([r for r in self.results if r.failed]) + len(self.literals) + len(self.jumps)
                + len(self.foreign_citations)
                + (1 if self.mostly_unchanged else 0))


def _values_stamp(book: FigureBook, contribution) -> str:
    parts = [f"{i.code}={book.value(contribution, i)}" for i in book.indicators_for(contribution)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def values_stamp(contribution, book: FigureBook | None = None) -> str:
    """A short fingerprint of the values as loaded; the form sends it back to detect a lost update."""
    return _values_stamp(book or FigureBook(contribution.cycle), contribution)


def contribution_figures(contribution, viewer=None, book: FigureBook | None = None) -> ContributionFigures:
    """Everything the editor, the review page and the submit check need to know about the figures."""
    book = book or FigureBook(contribution.cycle)
    if contribution.id not in book.contributions:
        book.contributions[contribution.id] = contribution
    detail = viewer is not None and sees_unit_breakdown(viewer)
    seen = Visibility(book, viewer)
    previous = Y.previous_contribution(contribution)
    previous_values = Y.previous_values(contribution) if previous is not None else {}
    rows = []
    for ind in book.indicators_for(contribution):
        row = book.row(contribution, ind)
        value = book.value(contribution, ind)
        prev = previous_values.get(ind.code)
        jump = Y.jumps([(ind, prev, value)])[0] if Y.is_jump(prev, value) else None
        rows.append(FigureRow(ind, value, prev, jump, book.explanation(contribution, f"yoy:{ind.code}"),
                              None if row is None or row.approved_value is None else Decimal(row.approved_value)))
    values = seen.values_for(contribution)
    checks = [(r.indicator, r.value) for r in rows]
    own = {r.indicator.code for r in rows}
    checks += [(ind, values.get(code)) for code, ind in book.indicators.items()
               if code not in own and not isinstance(values.get(code), str)]
    text = contribution.body or ""
    cited = B.citations(text)
    foreign = seen.foreign(text)
    unknown = [code for code in B.unknown_citations(text, book.indicators) if code not in foreign]
    empty = []
    for c in cited:
        if c.code in own and not c.is_sum and values.get(c.code) is None:
            ind = book.indicators[c.code]
            if ind not in empty:
                empty.append(ind)
    previous_text = Y.approved_text(previous)
    return ContributionFigures(
        contribution=contribution, book=book, rows=rows,
        results=evaluate_contribution(book, contribution, detail, seen),
        literals=check_literals(text, checks, previous_values, contribution.cycle.year, contribution.unit.name),
        jumps=[r.jump for r in rows if r.jump is not None],
        unknown_citations=unknown, empty_citations=empty, foreign_citations=foreign, previous=previous, previous_text=previous_text,
        similarity=Y.similarity(text, previous_text) if previous_text else 0.0,
        changes=[ch for ch in changes_after_approval(contribution.cycle, book, seen)
                 if ch.contribution.id == contribution.id or any(s[0].id == contribution.id for s in ch.sentences)],
        rollups=[book.rollup(ind) for ind in book.indicators.values()
                 if ind.rollup and ind.section_id == contribution.section_id],
    )


# ---------------------------------------------------------------- saving


def save_figures(contribution, actor, raw_values: dict, explanations: dict | None = None,
                 stamp: str | None = None) -> ContributionFigures:
    """Save the unit's values (and explanations of flagged figures) in one go.

    ``raw_values`` maps indicator code → the text typed (blank clears the value). Every field is
    checked before anything is written: one bad field refuses the whole form.

    :raise PermissionDenied: the actor may not edit this contribution now.
    :raise FigureFormError: a value or explanation is malformed; ``errors`` says which.
    :raise Conflict: the values changed since ``stamp`` was taken.
    """
    policy.require(actor, "contribution.write", contribution, "只有本单位联络员可以填报该材料的统计数据。")
    lock_row(contribution)  # a colleague's submit in flight: refuse after it rather than change its figures
    if contribution.cycle.state != "collecting":
        raise DomainError(f"年度报告当前为“{contribution.cycle.state_label}”，统计数据只能在征集中填报。")
    if contribution.state not in ("draft", "returned"):
        raise DomainError(f"材料当前为“{contribution.state_label}”，不能修改统计数据。如需修改，请先撤回。")
    book = FigureBook(contribution.cycle)
    if stamp is not None and stamp != _values_stamp(book, contribution):
        raise Conflict("统计数据已被他人修改，您填写的内容尚未保存。请核对页面上的最新数值后再保存。")
    indicators = book.indicators_for(contribution)
    parsed, cleaned = _checked_form(book, indicators, raw_values, explanations or {})
    now = utcnow()
    changed = _write_values(book, contribution, actor, indicators, parsed, now)
    changed |= _write_explanations(contribution, actor, cleaned, now)
    if changed:
        record(actor, "figures.save", f"contribution:{contribution.id}", changed=changed,
               on_behalf_of=policy.acting_as(actor, "figures.edit", contribution))
    db.session.flush()
    return contribution_figures(contribution, actor)


def _checked_form(book, indicators, raw_values: dict, explanations: dict) -> tuple[dict, dict]:
    """The parsed values and stripped explanations; FigureFormError naming every bad field."""
    known = {i.code for i in indicators}
    errors: dict[str, str] = {}
    for code in raw_values:
        if code in known:
            continue
        ind = book.indicators.get(code)
        if ind is not None and ind.rollup:
            errors[code] = (f"“{ind.name}”（{code}）是汇总指标，数值由下级地区审核通过的数值自动汇总，"
                            "不能填报。")
        else:
            errors[code] = f"指标“{code}”不属于本材料，不能填报。"
    parsed = {}
    for ind in indicators:
        if ind.code not in raw_values:
            continue
        try:
            parsed[ind.code] = parse_value(raw_values[ind.code], ind)
        except ValueError as exc:
            errors[ind.code] = str(exc)
    allowed_keys = {f"yoy:{i.code}" for i in indicators} | {f"rule:{r.id}" for r in book.rules}
    cleaned = {}
    for key, text in explanations.items():
        text = (text or "").strip()
        if key not in allowed_keys:
            errors[key] = "说明对应的项目不存在，请刷新页面后重试。"
        elif len(text) > MAX_EXPLANATION_CHARS:
            errors[key] = f"说明过长（{len(text)}字），最多{MAX_EXPLANATION_CHARS}字。"
        else:
            cleaned[key] = text
    if errors:
        raise FigureFormError(errors)
    return parsed, cleaned


def _write_values(book, contribution, actor, indicators, parsed: dict, now) -> dict:
    """Store the values that differ; return code -> [old, new] as displayed, for the audit log."""
    changed = {}
    for ind in indicators:
        if ind.code not in parsed:
            continue
        new = parsed[ind.code]
        row = book.row(contribution, ind)
        old = None if row is None or row.value is None else Decimal(row.value)
        if old == new and (row is not None or new is None):
            continue
        if row is None:
            row = IndicatorValue(contribution_id=contribution.id, indicator_id=ind.id)
            db.session.add(row)
        row.value = new
        row.updated_at = now
        row.updated_by_id = actor.id
        changed[ind.code] = [None if old is None else format_number(old), None if new is None else format_number(new)]
    return changed


def _write_explanations(contribution, actor, cleaned: dict, now) -> dict:
    """Store, update or delete (blank text) explanations; return key -> what happened, for the audit log."""
    changed = {}
    for key, text in cleaned.items():
        row = db.session.scalar(select(FigureExplanation).where(
            FigureExplanation.contribution_id == contribution.id, FigureExplanation.key == key))
        if not text:
            if row is not None:
                db.session.delete(row)
                changed[key] = "说明已删除"
            continue
        if row is None:
            row = FigureExplanation(contribution_id=contribution.id, key=key, text=text)
            db.session.add(row)
        elif row.text == text:
            continue
        row.text = text
        row.author_id = actor.id
        row.updated_at = now
        changed[key] = "说明已更新"
    return changed


# ---------------------------------------------------------------- submit, revision, approval hooks


def check_before_submit(contribution, actor) -> None:
    """Refuse 提交审核 while the figures have an error, a missing required value or a flag without an
    explanation (registered in ``services.contributions.SUBMIT_CHECKS``).

    :raise DomainError: listing every problem, numbered.
    """
    # Only the unit's liaison submits; let the workflow give its own refusal to anybody else.
    if not policy.can(actor, "contribution.write", contribution):
        return
    if contribution.state not in ("draft", "returned") or contribution.cycle.state != "collecting":
        return
    report = contribution_figures(contribution, actor)
    problems = report.blocking()
    if problems:
        numbered = "\n".join(f"{n}. {p}" for n, p in enumerate(problems, 1))
        raise DomainError(f"统计数据还有{len(problems)}个问题，暂不能提交审核：\n{numbered}")


def revision_figures(contribution) -> dict:
    """The values and explanations at submission, kept with the revision."""
    book = FigureBook(contribution.cycle)
    figures = {}
    for ind in book.indicators_for(contribution):
        value = book.value(contribution, ind)
        figures[ind.code] = None if value is None else format_number(value)
    explanations = {key: row.text for (cid, key), row in book.explanations.items() if cid == contribution.id}
    data = {}
    if figures:
        data["figures"] = figures
    if explanations:
        data["explanations"] = explanations
    return data


def _on_transition(sender, event=None, **_):
    """At 通过 (approve) remember each value, so a later change can name the sentences it affects."""
    from ..models import Contribution

    if event != "approve" or not isinstance(sender, Contribution) or sender.state != "approved":
        return
    for row in db.session.scalars(select(IndicatorValue).where(IndicatorValue.contribution_id == sender.id)):
        row.approved_value = row.value


SIGNATURE_STEPS = {"request_signoff": "提请签发", "sign": "签发", "publish": "发布"}


def signature_rule_results(cycle) -> list:
    """Every rule of the cycle checked on the approved figures, the numbers the report prints."""
    from ..figures.evaluate import evaluate_cycle
    from ..publish.numbers import ApprovedFigureBook

    return evaluate_cycle(ApprovedFigureBook(cycle), detail=True)


def check_rules_before_signature(cycle, actor, event: str) -> None:
    """Refuse 提请签发, 签发 and 发布 while an error-level rule fails on the approved figures
    (registered in ``services.cycles.SIGNATURE_CHECKS``, so the CLI is held to it as well).

    :raise DomainError: naming each rule with its figures and arithmetic; nothing is changed.
    """
    failed = [r for r in signature_rule_results(cycle) if r.blocking]
    if not failed:
        return
    step = SIGNATURE_STEPS.get(event, "签发")
    lines = "\n".join(f"{n}. 规则“{r.rule.message or r.rule.expression}”未通过：{r.full_message}"
                      for n, r in enumerate(failed, 1))
    raise DomainError(f"审核通过的统计数据有{len(failed)}项校验规则未通过，不能{step}：\n{lines}\n"
                      f"请退回相关单位更正数值、重新审核通过并重新生成相关章节后再{step}。")


def install() -> None:
    """Register the hooks once (safe to call repeatedly)."""
    from . import cycles as cycle_ops

    if check_rules_before_signature not in cycle_ops.SIGNATURE_CHECKS:
        cycle_ops.SIGNATURE_CHECKS.append(check_rules_before_signature)
    if check_before_submit not in C.SUBMIT_CHECKS:
        C.SUBMIT_CHECKS.append(check_before_submit)
    if revision_figures not in C.REVISION_DATA:
        C.REVISION_DATA.append(revision_figures)
    transition_fired.connect(_on_transition, weak=False)


install()


# ---------------------------------------------------------------- bound numbers


def bound_values(contribution, book: FigureBook | None = None) -> dict:
    """The values ``contribution``'s text may cite, for ``figures.bound.render_bound``."""
    book = book or FigureBook(contribution.cycle)
    return book.values_for(contribution)


def bound_names(cycle, book: FigureBook | None = None) -> dict:
    book = book or FigureBook(cycle)
    return {code: ind.name for code, ind in book.indicators.items()}


def render_contribution_text(contribution, book: FigureBook | None = None) -> str:
    """The contribution's text with every ``{{code}}`` printed from its current value."""
    book = book or FigureBook(contribution.cycle)
    return B.render_bound(contribution.body or "", book.values_for(contribution), bound_names(contribution.cycle, book))


def rendered_for(contribution, book: FigureBook, viewer):
    """The contribution's text as HTML, numbers printed as ``viewer`` may see them."""
    seen = Visibility(book, viewer)
    text = contribution.body or ""
    return B.render_bound_html(text, seen.values_for_text(contribution, text), seen.names())


def changes_after_approval(cycle, book: FigureBook | None = None, seen: Visibility | None = None) -> list[ValueChange]:
    """Values that differ from the value approved earlier, with every sentence whose printed text
    changes because of them (before and after).

    ``seen`` limits both to what its reader may see: its own unit's values and sentences only.
    """
    book = book or FigureBook(cycle)
    seen = seen or Visibility(book)
    pending = []
    # Copies: reading a text's figures may load more into the book (a book that prepared nothing).
    for (cid, _iid), row in list(book.values.items()):
        contribution = book.contributions.get(cid)
        if row.approved_value is None or contribution is None or not seen.sees(contribution):
            continue
        old = Decimal(row.approved_value)
        new = None if row.value is None else Decimal(row.value)
        if old != new:
            pending.append(ValueChange(book.by_id[row.indicator_id], contribution, old, new))
    for change in pending:
        change.sentences = _changed_sentences(book, seen, change)
    return pending


def _changed_sentences(book: FigureBook, seen: Visibility, change: ValueChange) -> list[tuple]:
    """(citing contribution, before, after) of each sentence that prints differently after ``change``."""
    code = change.indicator.code
    names = seen.names()
    found = []
    for citing in list(book.contributions.values()):
        hits = B.sentences_citing(citing.body or "", code) if seen.sees(citing) else []
        if not hits:
            continue
        after = seen.values_for(citing)
        before = dict(after)
        if seen.source(code, citing) is change.contribution:
            before[code] = change.old
        total = after.get(f"sum({code})")
        if not isinstance(total, str) and (total is not None or change.old is not None):
            before[f"sum({code})"] = (total or Decimal(0)) - (change.new or Decimal(0)) + change.old
        for sentence in hits:
            old_text, new_text = B.render_bound(sentence, before, names), B.render_bound(sentence, after, names)
            if old_text != new_text:
                found.append((citing, old_text, new_text))
    return found


# ---------------------------------------------------------------- replacing the draft text


class NeedsConfirmation(DomainError):
    """The draft already has text; the caller must ask the liaison before replacing it."""

    status = 409


def replace_draft(contribution, actor, new_body: str, confirm: bool = False,
                  expected_version: int | None = None, source: str = "导入"):
    """Make ``new_body`` the draft text; refuse to overwrite existing text without ``confirm``.

    :raise NeedsConfirmation: the draft has other text and ``confirm`` is false; nothing is written.
    """
    current = (contribution.body or "").strip()
    if current and current != (new_body or "").strip() and not confirm:
        raise NeedsConfirmation(f"当前草稿已有{len(current)}字内容，{source}后将被替换。请确认后再继续。")
    C.save_draft(contribution, actor, new_body, expected_version=expected_version)
    record(actor, "contribution.replace_text", f"contribution:{contribution.id}", source=source,
           on_behalf_of=policy.acting_as(actor, "contribution.write", contribution))
    return contribution


def import_docx_draft(contribution, actor, data: bytes, filename: str, mode: str = "replace",
                      confirm: bool = False, expected_version: int | None = None):
    """Put a Word/WPS document's text into the draft (``replace`` or ``append``)."""
    from ..figures.docx_import import docx_to_text, merge_text

    policy.require(actor, "figures.edit", contribution, "只有本单位联络员可以在材料可编辑时导入 Word 文档。")
    if mode not in ("replace", "append"):
        raise DomainError("请选择“替换草稿”或“追加到草稿末尾”。")
    text = docx_to_text(data, filename)
    body = merge_text(contribution.body or "", text, mode)
    if mode == "append":
        confirm = True  # appending keeps every word of the draft
    return replace_draft(contribution, actor, body, confirm, expected_version, source="导入 Word 文档")


def start_from_last_year(contribution, actor, confirm: bool = False, expected_version: int | None = None):
    """Start the draft from last year's approved text of the same unit and section."""
    policy.require(actor, "figures.edit", contribution, "只有本单位联络员可以在材料可编辑时编辑草稿。")
    text = Y.approved_text(Y.previous_contribution(contribution))
    if not text:
        raise DomainError("没有找到本单位上年度该章节已通过的材料，无法沿用。")
    return replace_draft(contribution, actor, text, confirm, expected_version, source="沿用上年度文字")


def set_share_approved_figures(cycle, actor, share: bool) -> None:
    """Whether liaisons may see other units' approved figures (figures.visibility); audited."""
    _require_admin(actor)
    share = bool(share)
    if cycle.share_approved_figures != share:
        cycle.share_approved_figures = share
        record(actor, "cycle.share_figures", f"cycle:{cycle.id}", share=share)
        db.session.flush()


# ---------------------------------------------------------------- definitions (admin)


def _require_admin(actor):
    policy.require(actor, "admin.manage", None, "只有管理员可以定义统计指标和校验规则。")


def _require_definable(cycle):
    if cycle.state not in ("setup", "collecting"):
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，只能在筹备中或征集中修改指标和规则。")


def _indicator_bounds(data: dict, errors: dict) -> dict:
    """The minimum and maximum typed (None when blank); problems go into ``errors`` by field."""
    bounds = {}
    for key, label in (("minimum", "最小值"), ("maximum", "最大值")):
        raw = (data.get(key) or "").strip()
        if not raw:
            bounds[key] = None
            continue
        try:
            bounds[key] = storable_number(raw)
        except ValueError:
            errors[key] = f"{label}应为{STORABLE}，您填写的是“{raw[:40]}”。"
    if not errors.get("minimum") and not errors.get("maximum") and bounds.get("minimum") is not None \
            and bounds.get("maximum") is not None and bounds["minimum"] > bounds["maximum"]:
        errors["maximum"] = "最大值不能小于最小值。"
    return bounds


def define_indicator(cycle, actor, section, data: dict):
    """Create or update (by code) an indicator of ``section``.

    ``data``: code, name, measure, type, reported_by, required (bool), minimum, maximum, guidance,
    rollup (blank: units enter it; sum/avg/count/min/max: taken from the regions below) — strings as typed.

    :raise FigureFormError: with a message per field; nothing is written.
    """
    import re

    from ..models.indicator import INDICATOR_TYPES, REPORTED_BY, Indicator

    _require_admin(actor)
    _require_definable(cycle)
    if section is None or section.cycle_id != cycle.id:
        raise DomainError("请选择本年度报告中的章节。")
    errors = {}
    code = (data.get("code") or "").strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,59}", code):
        errors["code"] = "指标代码只能由英文字母、数字和下划线组成，以字母或下划线开头，最长60个字符。"
    name = (data.get("name") or "").strip()
    if not name or len(name) > 200:
        errors["name"] = "请填写指标名称（最多200字）。"
    measure = (data.get("measure") or "").strip()
    if not measure or len(measure) > 10:
        errors["measure"] = "请填写计量单位，例如 件、人、次、万元、%。"
    kind = data.get("type") or "integer"
    if kind not in INDICATOR_TYPES:
        errors["type"] = "请选择数值类型。"
    reported_by = data.get("reported_by") or "all"
    if reported_by not in REPORTED_BY:
        errors["reported_by"] = "请选择由谁填报。"
    bounds = _indicator_bounds(data, errors)
    existing = db.session.scalar(select(Indicator).where(Indicator.cycle_id == cycle.id, Indicator.code == code))
    if existing is not None and existing.section_id != section.id:
        errors["code"] = f"指标代码“{code}”已在“{existing.section.path_label}”中使用，同一年度内不能重复。"
    rollup = _rollup_choice(cycle, existing, (data.get("rollup") or "").strip() or None, errors)
    if errors:
        raise FigureFormError(errors)
    indicator = existing or Indicator(cycle_id=cycle.id, section_id=section.id, code=code,
                                      position=len(section.indicators))
    indicator.name, indicator.measure, indicator.type = name, measure, kind
    indicator.reported_by = reported_by
    indicator.rollup = rollup
    # Nobody enters a roll-up, so nobody can be required to.
    indicator.required = bool(data.get("required")) and rollup is None
    indicator.minimum, indicator.maximum = bounds["minimum"], bounds["maximum"]
    indicator.guidance = (data.get("guidance") or "").strip() or None
    if existing is None:
        db.session.add(indicator)
    record(actor, "indicator.save", f"cycle:{cycle.id}", code=code, created=existing is None, rollup=rollup)
    db.session.flush()
    return indicator


def _rollup_choice(cycle, existing, rollup: str | None, errors: dict) -> str | None:
    """The ``rollup`` typed, checked: a known way, a region with regions below, no unit's value lost."""
    from ..models import Region
    from ..models.indicator import ROLLUPS

    if rollup is None:
        return None
    if rollup not in ROLLUPS:
        errors["rollup"] = f"汇总方式“{rollup[:20]}”无效，可选：{'、'.join(ROLLUPS.values())}，或留空由单位填报。"
        return None
    below = db.session.scalar(select(Region.id).where(Region.parent_id == cycle.region_id,
                                                      Region.active.is_(True)).limit(1))
    if below is None:
        errors["rollup"] = "本地区没有下级地区，不能设置汇总方式；请留空，由单位填报。"
    elif existing is not None and existing.rollup is None and db.session.scalar(
            select(IndicatorValue.id).where(IndicatorValue.indicator_id == existing.id,
                                            IndicatorValue.value.is_not(None)).limit(1)):
        errors["rollup"] = f"已有单位填报了“{existing.name}”，不能改为汇总指标。"
    return rollup


def cycle_rollups(cycle) -> dict:
    """Indicator id → ``figures.rollup.Rollup`` of every roll-up of ``cycle`` (definitions page)."""
    from ..figures.rollup import load_rollups
    from ..models.indicator import Indicator

    return load_rollups(cycle, db.session.scalars(
        select(Indicator).where(Indicator.cycle_id == cycle.id, Indicator.rollup.is_not(None))))


def delete_indicator(cycle, actor, indicator):
    """Delete an indicator that no unit has entered and no rule names."""
    from ..figures.expr import ExpressionError, codes_in, parse_rule
    from ..models.indicator import Rule

    _require_admin(actor)
    _require_definable(cycle)
    entered = db.session.scalar(select(IndicatorValue.id).where(IndicatorValue.indicator_id == indicator.id,
                                                                IndicatorValue.value.is_not(None)).limit(1))
    if entered:
        raise DomainError(f"已有单位填报了“{indicator.name}”，不能删除。")
    for rule in db.session.scalars(select(Rule).where(Rule.cycle_id == cycle.id)):
        try:
            used = indicator.code in codes_in(parse_rule(rule.expression))
        except ExpressionError:
            used = False
        if used:
            raise DomainError(f"校验规则“{rule.expression}”引用了“{indicator.code}”，请先删除或修改该规则。")
    record(actor, "indicator.delete", f"cycle:{cycle.id}", code=indicator.code)
    db.session.delete(indicator)
    db.session.flush()


def add_rule(cycle, actor, section, expression: str, severity: str = "error", message: str | None = None):
    """Add a rule to ``section`` after checking it with the parser.

    :raise FigureFormError: ``expression`` / ``severity`` / ``message`` errors; nothing is written.
    """
    from ..figures.expr import validate
    from ..models.indicator import Indicator, Rule

    _require_admin(actor)
    _require_definable(cycle)
    if section is None or section.cycle_id != cycle.id:
        raise DomainError("请选择本年度报告中的章节。")
    expression = (expression or "").strip()
    codes = set(db.session.scalars(select(Indicator.code).where(Indicator.cycle_id == cycle.id)))
    errors = {}
    problems = validate(expression, codes)
    if problems:
        errors["expression"] = "；".join(problems)
    if severity not in ("error", "warning"):
        errors["severity"] = "请选择“错误”或“提示”。"
    message = (message or "").strip()
    if len(message) > 300:
        errors["message"] = "提示文字最多300字。"
    if errors:
        raise FigureFormError(errors)
    rule = Rule(cycle_id=cycle.id, section_id=section.id, expression=expression, severity=severity,
                message=message or None, position=len(section.rules))
    db.session.add(rule)
    record(actor, "rule.add", f"cycle:{cycle.id}", expression=expression)
    db.session.flush()
    return rule


def delete_rule(cycle, actor, rule):
    _require_admin(actor)
    _require_definable(cycle)
    record(actor, "rule.delete", f"cycle:{cycle.id}", expression=rule.expression)
    db.session.delete(rule)
    db.session.flush()
