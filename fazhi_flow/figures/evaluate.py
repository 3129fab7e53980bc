"""Evaluate rules (校验规则) over the values of a cycle, with messages that show the arithmetic.

A bare indicator code in a rule means, for the contribution being checked: that unit's own value when
the unit reports the indicator; otherwise the value of the one unit that reports it (for example a
figure of another section). ``sum(code)`` adds the values of every unit that reports the indicator.

A rule "belongs" to a contribution when one of its bare codes is that unit's own value; only such a
rule can block the unit's submission (提交审核). Sums and other units' figures are shown to it, but a
unit is never blocked because a different unit's figure is missing or wrong.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from decimal import Decimal, DivisionByZero, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from . import expr as E
from .numbers import format_number
from .visibility import PLACEHOLDER

TOLERANCE = Decimal("0.005")  # for comparisons of computed quotients (rates)
MAX_SUM_TERMS = 8  # per-unit terms shown in a sum before "等N个单位"

STATUS_LABELS = {"ok": "通过", "failed": "未通过", "incomplete": "待填报后校验", "invalid": "规则有误"}
SEVERITY_LABELS = {"error": "错误", "warning": "提示"}
# While collecting, a unit still drafting may yet fill in an optional figure: its blank is no 0 until
# it submits, so a sum() over it is not yet checkable (nobody is blocked).
UNSUBMITTED = ("draft", "returned")
NOT_YET_CHECKABLE = "尚有单位未填报，暂不核对"


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One entered value as a read-only page needs it (``FigureBook(readonly=True)``)."""

    contribution_id: int
    indicator_id: int
    value: Decimal | None
    approved_value: Decimal | None
    updated_at: object


def plain_values(cycle_id: int) -> dict[tuple[int, int], ValueRow]:
    """Every value of the cycle as a plain row, by (contribution id, indicator id)."""
    from ..models import Contribution
    from ..models.indicator import IndicatorValue

    return {(row[0], row[1]): ValueRow(*row) for row in db.session.execute(
        select(IndicatorValue.contribution_id, IndicatorValue.indicator_id, IndicatorValue.value,
               IndicatorValue.approved_value, IndicatorValue.updated_at)
        .join(Contribution).where(Contribution.cycle_id == cycle_id))}


@functools.lru_cache(maxsize=4096)
def parsed(expression: str):
    """The rule's tree, or the ExpressionError saying why it is none. Trees are frozen, so one parse
    serves every request of the process (a city's 60 rules were parsed again on every page)."""
    try:
        return E.parse_rule(expression)
    except E.ExpressionError as exc:
        return exc


class FigureBook:
    """Everything needed to check one cycle's figures, loaded with a handful of queries.

    The number of queries does not depend on the size of the cycle. Totals are computed once per
    indicator; ``values_for`` resolves only the codes asked for. ``readonly`` books (pages) hold
    values as plain rows instead of ORM objects, which a page of a large cycle loads several times
    faster; code that changes values (``services.figures.save_figures``) uses the default.
    """

    _rollups: dict | None = None  # indicator id -> figures.rollup.Rollup, read on first use

    def __init__(self, cycle, readonly: bool = False):
        from ..models import Contribution
        from ..models.indicator import (
            FigureExplanation,
            Indicator,
            Rule,
        )

        self.cycle = cycle
        indicators = list(db.session.scalars(
            select(Indicator).where(Indicator.cycle_id == cycle.id)
            .order_by(Indicator.section_id, Indicator.position, Indicator.id)))
        self.indicators = {i.code: i for i in indicators}
        self.by_id = {i.id: i for i in indicators}
        self.rules = list(db.session.scalars(
            select(Rule).where(Rule.cycle_id == cycle.id).order_by(Rule.section_id, Rule.position, Rule.id)))
        contributions, self.roles, self.values = self._load_entries(cycle, readonly)
        self.explanations = {}
        for row in db.session.scalars(select(FigureExplanation).join(Contribution).where(
                Contribution.cycle_id == cycle.id)):
            self.explanations[(row.contribution_id, row.key)] = row
        by_id, self.reporters, self._reporter_ids, self._entered = self._index(contributions, indicators)
        self.contributions = dict(by_id)  # callers may add to it (a text's own contribution)
        self._totals: dict[int, Decimal | None] = {}
        self._trees: dict[str, object] = {}

    def _index(self, contributions, indicators) -> tuple[dict, dict, dict, dict]:
        """(contributions by id, reporters by indicator id, their ids, each contribution's indicator ids);
        plain data only, so a book that keeps it across requests (``PlainApprovedFigureBook``) holds no
        mapped object of another session."""
        reporters = {i.id: [] for i in indicators}
        by_section: dict[int, list] = {}
        for c in contributions:
            by_section.setdefault(c.section_id, []).append(c)
        for ind in indicators:
            if ind.rollup:  # taken from the regions below: no unit enters it
                continue
            # As Indicator.reports(assignment): every unit of the section, or only its lead unit
            # (the indicator's setting read once, not once per unit).
            everyone = (ind.reported_by or "all") == "all"
            reporters[ind.id] = [c for c in by_section.get(ind.section_id, [])
                                 if everyone or self.roles[c.id] == "lead"]
        # Membership by id and each unit's indicators, so a lookup never scans every reporter.
        reporter_ids = {iid: {c.id for c in found} for iid, found in reporters.items()}
        entered: dict[int, list] = {}
        for ind in indicators:
            for c in reporters[ind.id]:
                entered.setdefault(c.id, []).append(ind.id)
        return {c.id: c for c in contributions}, reporters, reporter_ids, entered

    def _load_entries(self, cycle, readonly: bool) -> tuple[list, dict[int, str], dict]:
        """The contributions, their roles by id and the values by (contribution id, indicator id)."""
        from ..models import Contribution
        from ..models.indicator import IndicatorValue

        contributions, roles = self._load_contributions(cycle)
        values = {}
        if contributions and readonly:
            values = plain_values(cycle.id)
        elif contributions:
            for row in db.session.scalars(select(IndicatorValue).join(Contribution).where(
                    Contribution.cycle_id == cycle.id)):
                values[(row.contribution_id, row.indicator_id)] = row
        return contributions, roles, values

    def _load_contributions(self, cycle) -> tuple[list, dict[int, str]]:
        """The cycle's contributions in outline order, each with its unit, and their roles by id."""
        from ..models import Assignment, Contribution, Section

        # The assignment's role decides who reports what (read as a column: no Assignment objects);
        # the unit names each figure in messages.
        loaded = db.session.execute(
            select(Contribution, Assignment.role).join(Assignment, Contribution.assignment_id == Assignment.id)
            .join(Section, Assignment.section_id == Section.id)
            .where(Contribution.cycle_id == cycle.id).order_by(Section.position, Assignment.id)
            .options(selectinload(Contribution.unit))).all()
        return [c for c, _ in loaded], {c.id: role for c, role in loaded}

    def role(self, contribution) -> str | None:
        """The contribution's role in its section (lead/support), without loading its assignment."""
        role = self.roles.get(contribution.id)
        return role if role is not None else contribution.assignment.role

    # ------------------------------------------------ what a page may ask for in advance

    def prepare(self, contributions=(), rules: bool = False) -> None:
        """Load at once what showing ``contributions`` needs (``rules``: and checking their rules).

        Everything is loaded already here; ``figures.scoped.ScopedFigureBook`` loads only this.
        """

    def note_reader(self, unit_id) -> None:
        """The unit of a restricted reader whose totals will be asked for (``Visibility``)."""

    def unit_roles(self, unit_id) -> list[tuple[int, str]]:
        """(section id, role) of each of the unit's contributions in the cycle."""
        return [(c.section_id, self.role(c)) for c in self.contributions.values()
                if unit_id is not None and c.unit_id == unit_id]

    # ------------------------------------------------ roll-ups (figures taken from the regions below)

    def rollup(self, indicator):
        """The ``figures.rollup.Rollup`` of a roll-up indicator (value and breakdown), else None.
        Every roll-up of the cycle is read at the first one asked for, in a fixed number of statements."""
        if not indicator.rollup:
            return None
        if self._rollups is None:
            from .rollup import load_rollups

            self._rollups = load_rollups(self.cycle, self.by_id.values())
        return self._rollups.get(indicator.id)

    def rollup_value(self, indicator) -> Decimal | None:
        found = self.rollup(indicator)
        return None if found is None else found.value

    def visible_total(self, seen, indicator) -> tuple[bool, Decimal | None]:
        """(visible, total) of ``indicator`` for the reader of ``seen`` (a ``Visibility``): shown only
        when every unit's part of it may be seen."""
        if indicator.rollup:  # made of other regions' approved figures: the same for every reader
            return True, self.rollup_value(indicator)
        if not seen.restricted:
            return True, self.total(indicator)
        parts = [seen.value(c, indicator) for c in self.reporters[indicator.id]]
        if not all(visible for visible, _ in parts):
            return False, None
        entered = [v for _, v in parts if v is not None]
        return True, (sum(entered, Decimal(0)) if entered else None)

    # -------------------------------------------------------------- lookups

    def reports(self, contribution, indicator) -> bool:
        """Whether ``contribution``'s unit enters ``indicator``."""
        return contribution is not None and contribution.id in self._reporter_ids.get(indicator.id, ()) \
            and self.contributions.get(contribution.id) is contribution

    def indicators_for(self, contribution) -> list:
        """The indicators this contribution's unit enters, in form order."""
        if self.contributions.get(contribution.id) is not contribution:
            return []
        return [self.by_id[iid] for iid in self._entered.get(contribution.id, ())]

    def value(self, contribution, indicator) -> Decimal | None:
        row = self.values.get((contribution.id, indicator.id))
        return None if row is None or row.value is None else Decimal(row.value)

    def row(self, contribution, indicator):
        return self.values.get((contribution.id, indicator.id))

    def explanation(self, contribution, key: str) -> str | None:
        row = self.explanations.get((contribution.id, key)) if contribution is not None else None
        return row.text if row is not None else None

    def tree(self, rule):
        if rule.expression not in self._trees:
            self._trees[rule.expression] = parsed(rule.expression)
        return self._trees[rule.expression]

    def resolve(self, code: str, contribution):
        """Return (value, source contribution or None, note) for a bare code seen from ``contribution``."""
        ind = self.indicators.get(code)
        if ind is None:
            raise _Invalid(f"规则引用了未定义的指标“{code}”")
        if ind.rollup:  # no unit is its source
            return self.rollup_value(ind), None
        reporters = self.reporters[ind.id]
        if self.reports(contribution, ind):
            return self.value(contribution, ind), contribution
        if len(reporters) == 1:
            return self.value(reporters[0], ind), reporters[0]
        if not reporters:
            return None, None
        raise _Ambiguous(code)

    def values_for(self, contribution, codes=None) -> dict:
        """Values a contribution's text may cite: ``code`` and ``sum(code)`` keys, Decimal or None.

        ``codes`` limits the answer to those indicator codes (e.g. the ones a text cites); unknown
        codes are left out, as when every code is asked for.
        """
        wanted = self.indicators if codes is None else {c: self.indicators[c] for c in codes if c in self.indicators}
        values = {}
        for code, ind in wanted.items():
            try:
                values[code] = self.resolve(code, contribution)[0]
            except (_Ambiguous, _Invalid):
                values[code] = None
            values[f"sum({code})"] = self.total(ind)
        return values

    def total(self, indicator) -> Decimal | None:
        if indicator.rollup:
            return self.rollup_value(indicator)
        if indicator.id not in self._totals:
            entered = [self.value(c, indicator) for c in self.reporters[indicator.id]]
            entered = [v for v in entered if v is not None]
            self._totals[indicator.id] = sum(entered, Decimal(0)) if entered else None
        return self._totals[indicator.id]

    def rules_for(self, contribution) -> list:
        """Rules of the contribution's section plus rules elsewhere that name an indicator it enters."""
        own_codes = {i.code for i in self.indicators_for(contribution)}
        chosen = []
        for rule in self.rules:
            if rule.section_id == contribution.section_id or _codes(self, rule) & own_codes:
                chosen.append(rule)
        return chosen


class _Invalid(Exception):
    pass


class _Ambiguous(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class _Missing(Exception):
    pass


@dataclass
class RuleResult:
    rule: object
    status: str  # ok | failed | incomplete | invalid
    message: str
    contribution: object = None  # the contribution whose own figures the rule was checked for
    owners: set = field(default_factory=set)  # ids of contributions whose own bare values are used
    explanation: str | None = None
    left: Decimal | None = None
    right: Decimal | None = None
    # ids of every contribution whose figure enters the rule (bare or in a sum), and of those among
    # them whose figure changed last when the rule failed: the unit that broke it is the one blocked.
    inputs: set = field(default_factory=set)
    breakers: set = field(default_factory=set)
    note: str = ""  # for a failed rule over several units' figures: whose figure changed last

    @property
    def full_message(self) -> str:
        return self.message + self.note

    def concerns(self, contribution_id) -> bool:
        return contribution_id in self.owners or contribution_id in self.inputs

    def blocks(self, contribution_id) -> bool:
        """Whether this result stops ``contribution_id``'s 提交审核."""
        if not self.blocking:
            return False
        return contribution_id in (self.breakers or self.owners)

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def severity_label(self) -> str:
        return SEVERITY_LABELS.get(self.rule.severity, self.rule.severity)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def blocking(self) -> bool:
        return self.failed and self.rule.severity == "error"

    @property
    def needs_explanation(self) -> bool:
        return self.failed and self.rule.severity == "warning" and not (self.explanation or "").strip()

    @property
    def explanation_key(self) -> str:
        return f"rule:{self.rule.id}"


@dataclass
class _Val:
    value: Decimal | None
    text: str
    compound: bool = False
    divides: bool = False
    hidden: bool = False  # part of it may not be shown to the reader: never print its result


class _Evaluator:
    def __init__(self, book: FigureBook, contribution, detail: bool, visibility=None):
        self.book = book
        self.contribution = contribution
        self.detail = detail
        self.visibility = visibility
        self.owners: set[int] = set()
        self.missing: list[str] = []
        self.rows: list[tuple] = []  # (contribution, indicator) of every figure read
        self.pending = False  # a figure of another unit that the reader's checks may not use yet

    def counts(self, source) -> bool:
        """Whether this reader's verdict may use ``source``'s values (``Visibility.checks_with``)."""
        return self.visibility is None or not self.visibility.restricted or self.visibility.checks_with(source)

    def shown(self, source, ind, value) -> str | None:
        """The number as the reader may see it, or None when it is hidden."""
        if self.visibility is None or not self.visibility.restricted or source is None:
            # No source unit: a roll-up of the regions below, the same for every reader.
            return format_number(value)
        visible, seen = self.visibility.value(source, ind)
        return format_number(seen) if visible and seen is not None else None

    def name_of(self, ind, source) -> str:
        if source is not None and self.contribution is not None and source is not self.contribution:
            return f"{source.unit.name}{ind.name}"
        return ind.name

    def ref(self, node) -> _Val:
        """A bare code: this unit's own value, or the one unit's that reports it."""
        if node.code in self.book.indicators and self.book.indicators[node.code].rollup:
            return self.rolled_up(self.book.indicators[node.code])
        try:
            value, source = self.book.resolve(node.code, self.contribution)
        except _Ambiguous:
            ind = self.book.indicators[node.code]
            raise _Invalid(f"“{ind.name}”由多个单位分别填报，规则中请写 sum({node.code}) 表示全区合计") from None
        ind = self.book.indicators[node.code]
        label = self.name_of(ind, source)
        if source is not None and not self.counts(source):
            self.pending = True
            return _Val(None, f"{label}（{PLACEHOLDER}）", hidden=True)
        if source is not None:
            self.rows.append((source, ind))
        if source is not None and source is self.contribution or source is not None and self.contribution is None:
            self.owners.add(source.id)
        if value is None:
            who = "" if source is None or source is self.contribution else f"（待{source.unit.name}填报）"
            self.missing.append(f"“{label}”{who}")
            return _Val(None, f"{label}（未填）")
        shown = self.shown(source, ind, value)
        if shown is None:
            return _Val(value, f"{label}（{PLACEHOLDER}）", hidden=True)
        return _Val(value, f"{label}（{shown}）")

    def sum_of(self, node) -> _Val:
        """``sum(code)``: every reporting unit's value added up."""
        ind = self.book.indicators.get(node.code)
        if ind is None:
            raise _Invalid(f"规则引用了未定义的指标“{node.code}”")
        if ind.rollup:  # already a total, over the regions below
            return self.rolled_up(ind)
        terms, waiting, entered = [], [], []
        for c in self.book.reporters[ind.id]:
            if not self.counts(c):  # an unsubmitted draft of another unit: not reported yet for this reader
                self.pending = True
                continue
            self.rows.append((c, ind))
            v = self.book.value(c, ind)
            if v is None:
                if ind.required:
                    waiting.append(c.unit.name)
                elif self.book.cycle.state == "collecting" and c.state in UNSUBMITTED:
                    self.pending = True
                continue
            terms.append((c.unit.name, v))
            entered.append((c, v))
        total = sum((v for _, v in terms), Decimal(0))
        if waiting:
            self.missing.append(f"{'、'.join(waiting)}的“{ind.name}”")
        if not terms and not waiting and not self.pending:
            self.missing.append(f"各单位的“{ind.name}”")
            return _Val(None, f"各单位{ind.name}合计（尚无填报）")
        seen = self.visibility if self.visibility is not None and self.visibility.restricted else None
        if seen is not None and seen.leads(ind.section_id):
            return self.lead_sum(ind, entered, total)
        if seen is not None and not seen.total(ind)[0]:
            return self.partial_sum(ind, total)
        if self.detail and terms:
            shown = " + ".join(f"{u}{format_number(v)}" for u, v in terms[:MAX_SUM_TERMS])
            if len(terms) > MAX_SUM_TERMS:
                shown += f" + 其余{len(terms) - MAX_SUM_TERMS}个单位{format_number(sum((v for _, v in terms[MAX_SUM_TERMS:]), Decimal(0)))}"
            inner = f"{shown} = {format_number(total)}" if len(terms) > 1 else shown
        else:
            inner = format_number(total)
        return _Val(total, f"各单位{ind.name}合计（{inner}）")

    def rolled_up(self, ind) -> _Val:
        found = self.book.rollup(ind)
        if found is None or found.value is None:
            self.missing.append(f"下级地区的“{ind.name}”")
            return _Val(None, f"{ind.name}（下级地区尚无审核通过的数值）")
        return _Val(found.value, f"{ind.name}（下级地区{found.how_label}：{format_number(found.value)}）")

    def visit(self, node) -> _Val:
        if isinstance(node, E.Num):
            return _Val(node.value, format_number(node.value))
        if isinstance(node, E.Ref):
            return self.ref(node)
        if isinstance(node, E.Sum):
            return self.sum_of(node)
        if isinstance(node, E.Neg):
            inner = self.visit(node.operand)
            value = None if inner.value is None else -inner.value
            return _Val(value, f"-{inner.text}", True, inner.divides, inner.hidden)
        if isinstance(node, E.Group):
            inner = self.visit(node.inner)
            return _Val(inner.value, f"({inner.text})", inner.compound, inner.divides, inner.hidden)
        if isinstance(node, E.BinOp):
            left, right = self.visit(node.left), self.visit(node.right)
            symbol = {"+": "+", "-": "−", "*": "×", "/": "÷"}[node.op]
            text = f"{left.text} {symbol} {right.text}"
            divides = left.divides or right.divides or node.op == "/"
            hidden = left.hidden or right.hidden
            if left.value is None or right.value is None:
                return _Val(None, text, True, divides, hidden)
            try:
                if node.op == "+":
                    value = left.value + right.value
                elif node.op == "-":
                    value = left.value - right.value
                elif node.op == "*":
                    value = left.value * right.value
                else:
                    if right.value == 0:
                        raise _Missing(f"除数“{right.text}”为0，无法计算")
                    value = left.value / right.value
            except (DivisionByZero, InvalidOperation):  # pragma: no cover - guarded above
                raise _Missing(f"除数“{right.text}”为0，无法计算") from None
            return _Val(value, text, True, divides, hidden)
        raise _Invalid("规则包含不支持的写法")  # pragma: no cover - the parser builds nothing else


    def partial_sum(self, ind, total) -> _Val:
        """A total the reader may not see whole: its own unit's part, the rest as a placeholder."""
        own = [v for c in self.book.reporters[ind.id] if self.visibility.sees(c)
               for v in [self.book.value(c, ind)] if v is not None]
        mine = f"本单位{format_number(sum(own, Decimal(0)))}，" if own else ""
        return _Val(total, f"各单位{ind.name}合计（{mine}其他单位{PLACEHOLDER}）", hidden=True)

    def lead_sum(self, ind, entered: list[tuple], total) -> _Val:
        """The section's lead unit holds the total: it sees each unit's part it may see, so it can tell
        whose number disagrees; a part it may not see stays a placeholder and hides the result."""
        parts, hidden = [], False
        for c, value in entered:
            shown = self.shown(c, ind, value)
            hidden = hidden or shown is None
            parts.append(f"{c.unit.name}{PLACEHOLDER if shown is None else shown}")
        inner = " + ".join(parts)
        if not hidden and len(parts) > 1:
            inner += f" = {format_number(total)}"
        return _Val(total, f"各单位{ind.name}合计（{inner}）", hidden=hidden)

    def changed_last(self) -> list[tuple]:
        """(contribution, indicator) of the entered figures, among those read, that changed last."""
        stamped = [(c, ind, self.book.row(c, ind)) for c, ind in self.rows]
        stamped = [(c, ind, row.updated_at) for c, ind, row in stamped if row is not None and row.value is not None]
        if not stamped:
            return []
        latest = max(stamp for _, _, stamp in stamped)
        return list(dict.fromkeys((c, ind) for c, ind, stamp in stamped if stamp == latest))


def _holds(op: str, left: Decimal, right: Decimal, tolerant: bool) -> bool:
    if op in ("=", "!="):
        equal = abs(left - right) < TOLERANCE if tolerant else left == right
        return equal if op == "=" else not equal
    if tolerant:  # a rounded rate may sit a hair above its limit
        left, right = left.quantize(Decimal("0.01")), right.quantize(Decimal("0.01"))
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _shown(val: _Val) -> str:
    if val.compound and val.value is not None and not val.hidden:
        rounded = val.value.quantize(Decimal("0.01")) if val.divides else val.value
        return f"{val.text} = {format_number(rounded)}"
    return val.text


def evaluate_rule(book: FigureBook, rule, contribution=None, detail: bool = True,
                  visibility=None) -> RuleResult:
    """Check one rule as seen from ``contribution`` (None: from the cycle as a whole).

    ``visibility`` (``figures.visibility.Visibility``) hides the numbers its reader may not see; the
    rule is still checked on every figure.
    """
    prefix = f"{rule.message.strip().rstrip('。')}：" if (rule.message or "").strip() else ""
    tree = book.tree(rule)
    if isinstance(tree, E.ExpressionError):
        return RuleResult(rule, "invalid", f"规则“{rule.expression}”有误：{tree.message}", contribution)
    ev = _Evaluator(book, contribution, detail, visibility)
    try:
        left = ev.visit(tree.left)
        right = ev.visit(tree.right)
    except _Invalid as exc:
        return RuleResult(rule, "invalid", f"规则“{rule.expression}”无法校验：{exc}。", contribution)
    except _Missing as exc:
        return RuleResult(rule, "incomplete", f"{prefix}暂不能校验：{exc}。", contribution, ev.owners)
    inputs = {c.id for c, _ in ev.rows}
    explanation = None
    for owner in sorted(ev.owners):
        explanation = explanation or book.explanation(book.contributions.get(owner), f"rule:{rule.id}")
    arithmetic = f"{_shown(left)}{E.OP_WORDS[tree.op]} {_shown(right)}"
    if ev.pending:  # no verdict on, nor mention of, another unit's unsubmitted figures
        return RuleResult(rule, "incomplete", f"{prefix}{NOT_YET_CHECKABLE}：{arithmetic}。",
                          contribution, ev.owners, explanation, inputs=inputs)
    if ev.missing or left.value is None or right.value is None:
        waiting = "、".join(dict.fromkeys(ev.missing))
        return RuleResult(rule, "incomplete", f"{prefix}{waiting}尚未填写，填写后再校验：{arithmetic}。",
                          contribution, ev.owners, explanation, inputs=inputs)
    tolerant = left.divides or right.divides
    if _holds(tree.op, left.value, right.value, tolerant):
        return RuleResult(rule, "ok", f"{prefix}{arithmetic}。", contribution, ev.owners, explanation,
                          left.value, right.value, inputs=inputs)
    tail = ""
    if tree.op == "=" and not (left.hidden or right.hidden):
        gap = abs(left.value - right.value)
        tail = f"，两者相差{format_number(gap.quantize(Decimal('0.01')) if tolerant else gap)}"
    message = f"{prefix}数字对不上：{arithmetic}{tail}。" if tree.op == "=" else \
        f"{prefix}不符合要求：{arithmetic}。"
    latest = ev.changed_last()
    return RuleResult(rule, "failed", message, contribution, ev.owners, explanation, left.value, right.value,
                      inputs=inputs, breakers={c.id for c, _ in latest}, note=_breaker_note(ev, latest))


def _breaker_note(ev: _Evaluator, latest: list[tuple]) -> str:
    """Which unit's figure changed last, when the rule reads figures of several units."""
    if len({c.unit_id for c, _ in ev.rows}) < 2 or not latest:
        return ""
    named = "、".join(dict.fromkeys(f"{c.unit.name}的“{ind.name}”" for c, ind in latest))
    units = "、".join(dict.fromkeys(c.unit.name for c, _ in ev.rows))
    return f"最近修改的是{named}，请该单位核对。涉及的单位：{units}。"


def _bare_codes(tree) -> list[str]:
    return [n.code for n in E._refs(tree) if isinstance(n, E.Ref)]


def evaluate_contribution(book: FigureBook, contribution, detail: bool = False,
                          visibility=None) -> list[RuleResult]:
    """Check every rule that concerns ``contribution``, as seen from it.

    A reader restricted by ``visibility`` is not shown rules made only of other units' figures: those
    are checked by the office when compiling (and by the units that enter them).
    """
    rules = book.rules_for(contribution)
    if visibility is not None and visibility.restricted:
        own = {i.code for i in book.indicators_for(contribution)}
        rules = [r for r in rules if own & _codes(book, r)]
    return [evaluate_rule(book, rule, contribution, detail, visibility) for rule in rules]


def _codes(book: FigureBook, rule) -> set:
    tree = book.tree(rule)
    return set() if isinstance(tree, E.ExpressionError) else set(E.codes_in(tree))


def _contexts(book: FigureBook, rule) -> list:
    tree = book.tree(rule)
    if isinstance(tree, E.ExpressionError):
        return [None]
    contexts = []
    for code in _bare_codes(tree):
        ind = book.indicators.get(code)
        if ind is None:
            return [None]
        reporters = book.reporters[ind.id]
        if len(reporters) > 1:
            for c in reporters:
                if c not in contexts:
                    contexts.append(c)
    if contexts:
        return contexts
    # Every bare code has at most one reporter: the rule reads the same from anywhere.
    for code in _bare_codes(tree):
        for c in book.reporters[book.indicators[code].id]:
            return [c]
    return [None]


def evaluate_cycle(book: FigureBook, detail: bool = True) -> list[RuleResult]:
    """Check every rule of the cycle; a rule over per-unit figures is checked for each unit."""
    results = []
    for rule in book.rules:
        results.extend(evaluate_rule(book, rule, c, detail) for c in _contexts(book, rule))
    return results


def check_cycle(cycle, detail: bool = True) -> list[RuleResult]:
    """Load the cycle's figures and check every rule (for the dashboard and the summary)."""
    return evaluate_cycle(FigureBook(cycle), detail)
