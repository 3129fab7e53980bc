"""A figure book that loads only what a page shows.

``FigureBook`` loads every contribution and value of the cycle: 18,000 contributions and 30,000 values
in a city, a second or more per request, whatever the page shows. ``ScopedFigureBook`` answers the
same questions from far less:

- the indicators and rules (a few hundred rows) are loaded at once;
- each indicator's total, and how many units report it, come from one aggregate query (GROUP BY
  indicator and, for a restricted reader, by the classes of parts ``Visibility`` distinguishes: the
  reader's own unit, left the unit's hands, approved), never from every unit's value;
- contributions are loaded with their role, unit, values and explanations in batches: the ones a
  page shows (``prepare``) and the values changed after approval with the texts citing them (what
  ``changes_after_approval`` lists) as mapped objects; the single reporter of each indicator reported
  by one unit (what a bare citation of another section's figure prints) and the whole section of an
  indicator a rule adds up as plain rows (``ContributionRow``) kept across requests under the figures
  token, which covers every column they hold;
- anything asked for that was not prepared is loaded on demand, and after a few such loads the rest
  of the cycle at once, so a page that prepares nothing still runs a bounded number of queries and
  every answer is the one the full book gives.

Read-only: values are plain rows (``ValueRow``); code that changes values uses ``FigureBook``.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, case, func, literal, or_, select, true
from sqlalchemy.orm import joinedload

from ..extensions import db
from . import expr as E
from .cache import SECTIONS, UNIT_PARTS, cache_key, cached, figures_token
from .evaluate import FigureBook, ValueRow, _Ambiguous, _Invalid
from .visibility import LEFT_THE_UNIT

# Loads on demand (a contribution or a section at a time) before the rest of the cycle is loaded at
# once: enough for a page about one contribution, few enough to keep any page's query count fixed.
ON_DEMAND_LIMIT = 4
LAST = (float("inf"), 0)  # the place of a contribution a caller added without loading it
# Up to this many contributions, their values are read by id (index); beyond, by the batch's condition.
MAX_ID_LIST = 2000


def _minus(whole: Decimal | None, part: Decimal | None) -> Decimal | None:
    if whole is None:
        return None
    return whole - (part or 0)


@dataclass(frozen=True, slots=True)
class _Part:
    """One class of an indicator's parts: how many units, how many entered, and their sums."""

    own: bool  # the restricted reader's own unit
    left: bool  # submitted or approved (out of the unit's hands)
    approved: bool  # a value row with an approved value
    reporters: int
    entered: int
    value_sum: Decimal | None
    approved_sum: Decimal | None


# eq=False: compared by identity, as mapped objects are (lists of reporters are searched with ``in``).
@dataclass(frozen=True, slots=True, eq=False)
class UnitRow:
    id: int
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class ContributionRow:
    """What a rule's sum reads of another unit's contribution, as a plain row kept across requests
    under the figures token (which covers every column here, the unit's name included). No body: a
    draft's text is not under the token, and nothing that reads texts is given these rows."""

    id: int
    cycle_id: int
    section_id: int
    unit_id: int
    assignment_id: int
    state: str
    unit: UnitRow


@dataclass(frozen=True, slots=True)
class ExplanationRow:
    contribution_id: int
    key: str
    text: str


@dataclass(frozen=True, slots=True)
class _SectionRows:
    """Contributions of a section with role, place, values and explanations (``_plain_rows``)."""

    contributions: tuple  # (ContributionRow, role, section position)
    values: tuple  # ValueRow
    explanations: tuple  # ExplanationRow


_NO_ROWS = _SectionRows((), (), ())


class _Reporters:
    """``book.reporters[indicator_id]`` loading the indicator's section on first use."""

    def __init__(self, book: ScopedFigureBook):
        self.book = book

    def __getitem__(self, indicator_id: int) -> list:
        ind = self.book.by_id[indicator_id]
        if ind.rollup:  # taken from the regions below: no unit reports it
            return []
        self.book._load_sections({ind.section_id})
        return [c for c in self.book._in_section(ind.section_id) if self.book._reports_role(c, ind)]

    def get(self, indicator_id: int, default=None):
        return self[indicator_id] if indicator_id in self.book.by_id else default

    def __contains__(self, indicator_id) -> bool:
        return indicator_id in self.book.by_id


class ScopedFigureBook(FigureBook):
    """``FigureBook(cycle, readonly=True)`` for pages, loading only what is asked for."""

    def __init__(self, cycle):
        from ..models.indicator import Indicator, Rule

        self.cycle = cycle
        self.readonly = True
        indicators = list(db.session.scalars(
            select(Indicator).where(Indicator.cycle_id == cycle.id)
            .order_by(Indicator.section_id, Indicator.position, Indicator.id)))
        self.indicators = {i.code: i for i in indicators}
        self.by_id = {i.id: i for i in indicators}
        self._section_indicators: dict[int, list] = {}
        for ind in indicators:
            self._section_indicators.setdefault(ind.section_id, []).append(ind)
        self.rules = list(db.session.scalars(
            select(Rule).where(Rule.cycle_id == cycle.id).order_by(Rule.section_id, Rule.position, Rule.id)))
        self.contributions: dict[int, object] = {}
        self.roles: dict[int, str] = {}
        self._values: dict[tuple[int, int], ValueRow] = {}
        self.explanations: dict[tuple[int, str], object] = {}
        self.reporters = _Reporters(self)
        self._loaded: set[int] = set()  # contributions whose role, values and explanations are here
        # Loaded as plain rows (``_load_rows``), by id: not in ``contributions`` until a caller asks
        # about the same contribution as a mapped object, which then takes the row's place.
        self._rows: dict[int, ContributionRow] = {}
        # The figures token read once for all the kept things one ``prepare`` reads (nothing writes in
        # between); ``...`` outside it: each read takes the current token.
        self._held = ...
        self._by_section: dict[int, list] = {}  # loaded contributions by section, in assignment order
        self._order: dict[int, tuple] = {}  # contribution id -> (section position, assignment id)
        self._sections: set[int] = set()  # sections whose every contribution is loaded
        self._everything = False
        self._singles_loaded = False
        self._changes_loaded = False
        self._on_demand = 0
        self._reader: int | None = None  # a restricted reader's unit (``note_reader``)
        self._parts: dict[int | None, dict[int, list[_Part]]] = {}
        self._unit_roles: dict[int, list] = {}
        self._totals: dict[int, Decimal | None] = {}
        self._trees: dict[str, object] = {}

    # ---------------------------------------------------------------- loading

    def _batch(self, condition) -> None:
        """Load the cycle's contributions matching ``condition`` with role, unit, values, explanations."""
        from ..models import Assignment, Contribution, Section
        from ..models.indicator import FigureExplanation, IndicatorValue

        where = and_(Contribution.cycle_id == self.cycle.id, condition)
        found = db.session.execute(
            select(Contribution, Assignment.role, Section.position)
            .join(Assignment, Contribution.assignment_id == Assignment.id)
            .join(Section, Contribution.section_id == Section.id)
            .where(where).options(joinedload(Contribution.unit))).all()
        fresh, placed = [], False
        for c, role, position in found:
            if c.id in self._rows:  # listed as a plain row (values loaded): the object takes its place
                self._take_place(c)
                placed = True
            elif c.id not in self._loaded:
                fresh.append((c, role, position))
        if not fresh:
            if placed:
                self._reorder()
            return
        touched = set()
        for c, role, position in fresh:
            c = self.contributions.setdefault(c.id, c)
            self.roles[c.id] = role
            self._order[c.id] = (position, c.assignment_id)
            self._by_section.setdefault(c.section_id, []).append(c)
            touched.add(c.section_id)
        for section_id in touched:
            self._by_section[section_id].sort(key=lambda c: c.assignment_id)
        ids = {c.id for c, _, _ in fresh}
        self._reorder()
        values = select(IndicatorValue.contribution_id, IndicatorValue.indicator_id, IndicatorValue.value,
                        IndicatorValue.approved_value, IndicatorValue.updated_at)
        explanations = select(FigureExplanation)
        if len(ids) <= MAX_ID_LIST:  # by the contribution index: a page's few hundred rows
            values = values.where(IndicatorValue.contribution_id.in_(sorted(ids)))
            explanations = explanations.where(FigureExplanation.contribution_id.in_(sorted(ids)))
        else:  # the same condition again rather than thousands of ids as parameters
            values = values.join(Contribution, IndicatorValue.contribution_id == Contribution.id) \
                .join(Assignment, Contribution.assignment_id == Assignment.id).where(where)
            explanations = explanations.join(Contribution, FigureExplanation.contribution_id == Contribution.id) \
                .join(Assignment, Contribution.assignment_id == Assignment.id).where(where)
        for row in db.session.execute(values):
            if row[0] in ids:
                self._values[(row[0], row[1])] = ValueRow(*row)
        for row in db.session.scalars(explanations):
            if row.contribution_id in ids:
                self.explanations[(row.contribution_id, row.key)] = row
        self._loaded |= ids

    def _token(self):
        return figures_token(self.cycle.id) if self._held is ... else self._held

    def _reorder(self) -> None:
        """``contributions`` in the full book's order (section position, assignment), which lists follow."""
        ordered = sorted(self.contributions.items(), key=lambda item: self._order.get(item[0], LAST))
        self.contributions.clear()
        self.contributions.update(ordered)

    def _load_rows(self, section_ids: set) -> None:
        """Load every contribution of the sections as plain rows, kept across requests under the
        figures token (a rule's sum over a city's 300 units, on every editor and review page);
        without a usable token, as mapped objects (``_batch``)."""
        from ..models import Contribution

        token = self._token()
        if token is None:
            self._batch(Contribution.section_id.in_(sorted(section_ids)))
            return
        key = cache_key("scoped-section", self.cycle.id, token)
        found = {sid: SECTIONS.get(key + (sid,)) for sid in section_ids}
        missing = sorted(sid for sid, rows in found.items() if rows is None)
        if missing:
            loaded = self._plain_rows(Contribution.section_id.in_(missing))
            for sid in missing:
                found[sid] = loaded.get(sid, _NO_ROWS)
                SECTIONS.put(key + (sid,), found[sid])
        for rows in found.values():
            self._install(rows)

    def _load_singles(self) -> None:
        """The contributions that alone report an indicator (a lead unit's figure, a one-unit section)
        as plain rows kept under the token; without a usable token, as mapped objects. Which ones they
        are depends only on what the token covers, so their ids are kept too and read by primary key
        (as a condition on sections and roles the planner scanned every contribution of a city's cycle)."""
        from ..models import Contribution

        token = self._token()
        ids = cached("scoped-singles", self.cycle.id, self._single_ids, token=token)
        if not ids:
            return
        if token is None:
            self._batch(Contribution.id.in_(ids))
            return
        for rows in cached("scoped-single-rows", self.cycle.id, token=token,
                           compute=lambda: tuple(self._plain_rows(Contribution.id.in_(ids)).values())):
            self._install(rows)

    def _install(self, rows: _SectionRows) -> None:
        """Add plain rows to the book, but none of a contribution already loaded (a page's own
        contributions stay the mapped objects it shows)."""
        fresh = {row.id for row, _, _ in rows.contributions if row.id not in self._loaded}
        if not fresh:
            return
        touched = set()
        for row, role, position in rows.contributions:
            if row.id in fresh:
                self._rows[row.id] = row
                self.roles[row.id] = role
                self._order[row.id] = (position, row.assignment_id)
                self._by_section.setdefault(row.section_id, []).append(row)
                touched.add(row.section_id)
        for value in rows.values:
            if value.contribution_id in fresh:
                self._values[(value.contribution_id, value.indicator_id)] = value
        for explanation in rows.explanations:
            if explanation.contribution_id in fresh:
                self.explanations[(explanation.contribution_id, explanation.key)] = explanation
        self._loaded |= fresh
        for section_id in touched:
            self._by_section[section_id].sort(key=lambda c: c.assignment_id)

    def _plain_rows(self, condition) -> dict[int, _SectionRows]:
        """Section id → the contributions matching ``condition`` there, with their values and
        explanations, as plain rows (three queries)."""
        from ..models import Assignment, Contribution, Section, Unit
        from ..models.indicator import FigureExplanation, IndicatorValue

        where = (Contribution.cycle_id == self.cycle.id, condition)
        contributions: dict[int, list] = {}
        section_of = {}
        for cid, cycle_id, sid, unit_id, assignment_id, state, unit_name, role, position in db.session.execute(
                select(Contribution.id, Contribution.cycle_id, Contribution.section_id, Contribution.unit_id,
                       Contribution.assignment_id, Contribution.state, Unit.name, Assignment.role, Section.position)
                .join(Assignment, Contribution.assignment_id == Assignment.id)
                .join(Section, Contribution.section_id == Section.id)
                .join(Unit, Contribution.unit_id == Unit.id)
                .where(*where).order_by(Contribution.assignment_id)):
            row = ContributionRow(cid, cycle_id, sid, unit_id, assignment_id, state, UnitRow(unit_id, unit_name))
            contributions.setdefault(sid, []).append((row, role, position))
            section_of[cid] = sid
        values: dict[int, list] = {}
        for row in db.session.execute(
                select(IndicatorValue.contribution_id, IndicatorValue.indicator_id, IndicatorValue.value,
                       IndicatorValue.approved_value, IndicatorValue.updated_at)
                .join(Contribution, IndicatorValue.contribution_id == Contribution.id).where(*where)):
            if row[0] in section_of:
                values.setdefault(section_of[row[0]], []).append(ValueRow(*row))
        explanations: dict[int, list] = {}
        for cid, key, text in db.session.execute(
                select(FigureExplanation.contribution_id, FigureExplanation.key, FigureExplanation.text)
                .join(Contribution, FigureExplanation.contribution_id == Contribution.id).where(*where)):
            if cid in section_of:
                explanations.setdefault(section_of[cid], []).append(ExplanationRow(cid, key, text))
        return {sid: _SectionRows(tuple(found), tuple(values.get(sid, ())), tuple(explanations.get(sid, ())))
                for sid, found in contributions.items()}

    def _load_everything(self) -> None:
        if not self._everything:
            self._batch(true())
            self._everything = True

    def _on_demand_load(self, condition) -> None:
        """Something not prepared was asked for: load it, or the whole cycle after a few such loads."""
        self._on_demand += 1
        if self._on_demand > ON_DEMAND_LIMIT:
            self._load_everything()
        else:
            self._batch(condition)

    def _ensure(self, contribution) -> bool:
        """Load ``contribution`` when it is not yet; False when it is not one of this cycle's."""
        from ..models import Contribution

        if contribution is None or contribution.cycle_id != self.cycle.id:
            return False
        if contribution.id in self._rows and not isinstance(contribution, ContributionRow):
            self._take_place(contribution)
            self._reorder()
        if contribution.id not in self._loaded and not self._everything:
            self.contributions.setdefault(contribution.id, contribution)
            self._on_demand_load(Contribution.id == contribution.id)
        return contribution.id in self._loaded

    def _take_place(self, contribution) -> None:
        """``contribution`` (mapped) replaces its plain row: every list then holds the object callers
        compare with (``source is self.contribution``)."""
        row = self._rows.pop(contribution.id)
        mapped = self.contributions.setdefault(contribution.id, contribution)
        listed = self._by_section.get(row.section_id, [])
        listed[:] = [mapped if c is row else c for c in listed]

    def _load_sections(self, section_ids: set) -> None:
        from ..models import Contribution

        missing = set(section_ids) - self._sections
        if missing and not self._everything:
            self._on_demand_load(Contribution.section_id.in_(sorted(missing)))
        self._sections |= missing

    def _in_section(self, section_id: int) -> list:
        return self._by_section.get(section_id, [])

    def _reports_role(self, contribution, indicator) -> bool:
        return (indicator.reported_by or "all") == "all" or self.roles.get(contribution.id) == "lead"

    def _single_ids(self) -> list[int]:
        from ..models import Assignment, Contribution

        parts = self._all_parts()  # reporters per indicator: the same for every reader
        whole, leads = set(), set()
        for iid, groups in parts.items():
            if sum(g.reporters for g in groups) == 1:
                ind = self.by_id[iid]
                (whole if (ind.reported_by or "all") == "all" else leads).add(ind.section_id)
        conditions = []
        if whole:
            conditions.append(Contribution.section_id.in_(sorted(whole)))
        if leads - whole:
            conditions.append(and_(Contribution.section_id.in_(sorted(leads - whole)), Assignment.role == "lead"))
        if not conditions:
            return []
        return sorted(db.session.scalars(
            select(Contribution.id).join(Assignment, Contribution.assignment_id == Assignment.id)
            .where(Contribution.cycle_id == self.cycle.id, or_(*conditions))))

    def _changed_condition(self):
        """Values that differ from their approved value, and the texts citing their indicators. Which
        values differ is kept under the figures token; which texts cite them is read each time (a
        draft's text is not in the token)."""
        from ..models import Contribution

        changed = cached("scoped-changed", self.cycle.id, self._changed_values, token=self._held)
        if not changed:
            return None
        codes = sorted({self.by_id[iid].code for _, iid in changed if iid in self.by_id})
        return or_(Contribution.id.in_(sorted({cid for cid, _ in changed})),
                   *(Contribution.body.contains(code, autoescape=True) for code in codes))

    def _changed_values(self) -> list[tuple[int, int]]:
        from ..models import Contribution
        from ..models.indicator import IndicatorValue

        return [tuple(row) for row in db.session.execute(
            select(IndicatorValue.contribution_id, IndicatorValue.indicator_id)
            .join(Contribution, IndicatorValue.contribution_id == Contribution.id)
            .where(Contribution.cycle_id == self.cycle.id, IndicatorValue.approved_value.is_not(None),
                   or_(IndicatorValue.value.is_(None), IndicatorValue.value != IndicatorValue.approved_value)))]

    def prepare(self, contributions=(), rules: bool = False) -> None:
        """Load in one batch ``contributions``, the single reporters of indicators, the values changed
        after approval with the texts citing them, and (``rules``) the sections whose figures the
        contributions' rules read."""
        if self._everything:
            return
        self._held = figures_token(self.cycle.id)
        try:
            self._prepare(contributions, rules)
        finally:
            self._held = ...

    def _prepare(self, contributions, rules: bool) -> None:
        from ..models import Contribution

        shown = [c for c in contributions if c is not None and c.cycle_id == self.cycle.id]
        for c in shown:
            self.contributions.setdefault(c.id, c)
        conditions = []
        wanted = sorted({c.id for c in shown} - self._loaded)
        if wanted:
            conditions.append(Contribution.id.in_(wanted))
        if self._reader is not None:
            self._parts_for(self._reader)  # the reader's own parts, which visible totals read
        if not self._changes_loaded:
            changed = self._changed_condition()
            if changed is not None:
                conditions.append(changed)
        if conditions:
            self._batch(or_(*conditions))
        self._changes_loaded = True
        # After the batch above, so the shown contributions and the texts citing changed values stay
        # mapped objects; the single reporters and the rules' sections as plain rows.
        self._ensure_singles()
        if rules and shown:
            sections = self._rule_sections(shown) - self._sections
            if sections:
                self._load_rows(sections)
            self._sections |= sections

    def _rule_sections(self, shown) -> set:
        """Sections of the indicators named by the rules concerning ``shown`` (their roles are loaded)."""
        # ``rules_for`` without the roles (not loaded yet): every code of the section counts as the
        # unit's own, which can only add a rule, never miss one.
        sections = set()
        for c in shown:
            own = {ind.code for ind in self._section_indicators.get(c.section_id, [])}
            for rule in self.rules:
                tree = self.tree(rule)
                if isinstance(tree, E.ExpressionError):
                    continue
                codes = set(E.codes_in(tree))
                if rule.section_id != c.section_id and not codes & own:
                    continue
                sections |= {self.indicators[code].section_id for code in codes if code in self.indicators}
        return sections

    def _ensure_singles(self) -> None:
        if not self._singles_loaded:
            self._singles_loaded = True
            if not self._everything:
                self._load_singles()

    def note_reader(self, unit_id) -> None:
        if unit_id is not None:
            self._reader = unit_id

    # ---------------------------------------------------------------- totals by aggregate

    def _parts_query(self, unit_id=None):
        """Indicator id, left, approved → reporters, entered and sums over the reporting
        contributions (of ``unit_id`` only, when given)."""
        from ..models import Assignment, Contribution
        from ..models.indicator import Indicator, IndicatorValue

        left_col = case((Contribution.state.in_(LEFT_THE_UNIT), literal(1)), else_=literal(0))
        approved_col = case((IndicatorValue.approved_value.is_not(None), literal(1)), else_=literal(0))
        query = (
            select(Indicator.id, left_col, approved_col, func.count(Contribution.id),
                   func.count(IndicatorValue.value), func.sum(IndicatorValue.value),
                   func.sum(IndicatorValue.approved_value))
            .select_from(Indicator)
            .join(Contribution, Contribution.section_id == Indicator.section_id)  # sections are the cycle's
            .join(Assignment, Contribution.assignment_id == Assignment.id)
            .outerjoin(IndicatorValue, and_(IndicatorValue.contribution_id == Contribution.id,
                                            IndicatorValue.indicator_id == Indicator.id))
            .where(Indicator.cycle_id == self.cycle.id, Indicator.rollup.is_(None),
                   or_(func.coalesce(Indicator.reported_by, "all") == "all", Assignment.role == "lead"))
            .group_by(Indicator.id, left_col, approved_col))
        if unit_id is not None:
            query = query.where(Contribution.unit_id == unit_id)
        parts: dict[int, list[_Part]] = {}
        for iid, is_left, is_approved, n, entered, value_sum, approved_sum in db.session.execute(query):
            parts.setdefault(iid, []).append(_Part(
                unit_id is not None, bool(is_left), bool(is_approved), int(n), int(entered),
                None if value_sum is None else Decimal(value_sum),
                None if approved_sum is None else Decimal(approved_sum)))
        return parts

    def _all_parts(self) -> dict[int, list[_Part]]:
        """Every unit's parts, none marked own: the same for every reader, so kept across requests
        under the cycle's figures token (``figures.cache``). Never changed in place."""
        if None not in self._parts:
            self._parts[None] = cached("scoped-parts", self.cycle.id, self._parts_query, token=self._held)
        return self._parts[None]

    def _parts_for(self, unit_id) -> dict[int, list[_Part]]:
        """Indicator id → its parts by class; for a reader's unit, its own parts apart (one small
        query by the unit's contributions) and the other units' parts as the rest of each class."""
        if unit_id in self._parts:
            return self._parts[unit_id]
        everyone = self._all_parts()
        if unit_id is None:
            return everyone
        own = cached(("scoped-parts-of", unit_id), self.cycle.id, lambda: self._parts_query(unit_id),
                     store=UNIT_PARTS, token=self._held)
        parts: dict[int, list[_Part]] = {}
        for iid in set(everyone) | set(own):
            mine = {(g.left, g.approved): g for g in own.get(iid, [])}
            groups = []
            for g in everyone.get(iid, []):
                o = mine.get((g.left, g.approved))
                if o is None:
                    groups.append(g)
                    continue
                entered = g.entered - o.entered
                rest = _Part(False, g.left, g.approved, g.reporters - o.reporters, entered,
                             _minus(g.value_sum, o.value_sum) if entered else None,
                             _minus(g.approved_sum, o.approved_sum))
                if rest.reporters:
                    groups.append(rest)
            parts[iid] = groups + list(mine.values())
        self._parts[unit_id] = parts
        return parts

    def _any_parts(self) -> dict[int, list[_Part]]:
        """Parts by class of any reader: totals and counts of reporters are the same for all."""
        return self._all_parts()

    def reporter_count(self, indicator) -> int:
        return sum(g.reporters for g in self._any_parts().get(indicator.id, []))

    def total(self, indicator) -> Decimal | None:
        if indicator.rollup:
            return self.rollup_value(indicator)
        if indicator.id not in self._totals:
            groups = self._any_parts().get(indicator.id, [])
            entered = sum(g.entered for g in groups)
            self._totals[indicator.id] = sum((g.value_sum for g in groups if g.value_sum is not None),
                                             Decimal(0)) if entered else None
        return self._totals[indicator.id]

    def visible_total(self, seen, indicator) -> tuple[bool, Decimal | None]:
        """As ``FigureBook.visible_total`` (every part visible, else hidden) from the classes of parts."""
        if indicator.rollup:
            return True, self.rollup_value(indicator)
        if not seen.restricted:
            return True, self.total(indicator)
        leads = seen.leads(indicator.section_id)
        counted, total = 0, Decimal(0)
        for g in self._parts_for(seen.unit_id).get(indicator.id, []):
            if g.own or (g.left and leads):
                counted += g.entered
                total += g.value_sum or 0
            elif seen.share and g.approved:
                counted += g.reporters
                total += g.approved_sum or 0
            else:
                return False, None
        return True, (total if counted else None)

    def unit_roles(self, unit_id) -> list[tuple[int, str]]:
        from ..models import Assignment, Contribution

        if unit_id is None:
            return []
        if unit_id not in self._unit_roles:
            self._unit_roles[unit_id] = cached(("scoped-roles-of", unit_id), self.cycle.id, store=UNIT_PARTS,
                                               token=self._held,
                                               compute=lambda: [tuple(row) for row in db.session.execute(
                select(Contribution.section_id, Assignment.role)
                .join(Assignment, Contribution.assignment_id == Assignment.id)
                .where(Contribution.cycle_id == self.cycle.id, Contribution.unit_id == unit_id))])
        return list(self._unit_roles[unit_id])  # the kept list is shared by every request

    # ---------------------------------------------------------------- the lookups of FigureBook

    @property
    def values(self) -> dict:
        """Every value row loaded; values changed after approval are always among them (they are all
        ``services.figures.changes_after_approval`` reads)."""
        if not self._changes_loaded:
            self._changes_loaded = True
            condition = self._changed_condition()
            if condition is not None and not self._everything:
                self._batch(condition)
        self._map_changed_rows()
        return self._values

    def _map_changed_rows(self) -> None:
        """Load mapped, with the texts citing them, the contributions held as plain rows whose value
        differs from the approved one: ``changes_after_approval`` lists mapped contributions only, and
        the changed list may predate a write committed before the rows were read."""
        from ..models import Contribution

        if self._everything or not self._rows:
            return
        changed = [(cid, iid) for (cid, iid), row in self._values.items()
                   if cid in self._rows and row.approved_value is not None
                   and (row.value is None or row.value != row.approved_value)]
        if changed:
            codes = sorted({self.by_id[iid].code for _, iid in changed if iid in self.by_id})
            self._batch(or_(Contribution.id.in_(sorted({cid for cid, _ in changed})),
                            *(Contribution.body.contains(code, autoescape=True) for code in codes)))

    def role(self, contribution) -> str | None:
        if contribution.id not in self.roles:
            self._ensure(contribution)
        role = self.roles.get(contribution.id)
        return role if role is not None else contribution.assignment.role

    def reports(self, contribution, indicator) -> bool:
        if contribution is None or contribution.section_id != indicator.section_id or indicator.rollup:
            return False
        if not self._ensure(contribution) or self.contributions.get(contribution.id) is not contribution:
            return False
        return self._reports_role(contribution, indicator)

    def indicators_for(self, contribution) -> list:
        return [ind for ind in self._section_indicators.get(contribution.section_id, [])
                if self.reports(contribution, ind)]

    def value(self, contribution, indicator) -> Decimal | None:
        row = self.row(contribution, indicator)
        return None if row is None or row.value is None else Decimal(row.value)

    def row(self, contribution, indicator):
        self._ensure(contribution)
        return self._values.get((contribution.id, indicator.id))

    def explanation(self, contribution, key: str) -> str | None:
        if contribution is None:
            return None
        self._ensure(contribution)
        row = self.explanations.get((contribution.id, key))
        return row.text if row is not None else None

    def resolve(self, code: str, contribution):
        ind = self.indicators.get(code)
        if ind is None:
            raise _Invalid(f"规则引用了未定义的指标“{code}”")
        if ind.rollup:
            return self.rollup_value(ind), None
        if self.reports(contribution, ind):
            return self.value(contribution, ind), contribution
        count = self.reporter_count(ind)
        if count == 0:
            return None, None
        if count > 1:
            raise _Ambiguous(code)
        self._ensure_singles()
        found = [c for c in self._in_section(ind.section_id) if self._reports_role(c, ind)]
        if not found:  # pragma: no cover - the singles batch loads it; kept for a cycle changed meanwhile
            found = self.reporters[ind.id]
        if not found:
            return None, None
        return self.value(found[0], ind), found[0]
