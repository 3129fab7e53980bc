"""Clone a report cycle to a new year (复制为新年度): outline, assignments, reviewers, indicators, rules and
the reminder policy come along; texts, values and states do not. The new cycle starts in setup.

The source's year and the year after move by the difference in years in section titles and guidance,
and every date moves too; ``clone_preview`` lists each such change for the admin to confirm first."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from .. import policy
from ..errors import DomainError, NotFound
from ..extensions import db
from ..models import Assignment, ReportCycle, Section
from ..models.indicator import Indicator, Rule
from .audit import record


def shift_year(value: date | None, years: int) -> date | None:
    """The same day ``years`` later (29 February becomes 28 February)."""
    if value is None:
        return None
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28)


# Years that name something fixed stay as written: document numbers (湘政发〔2024〕3号, [2024], 【2024】)
# and both ends of a span (2021—2025年, 2024年至2026年), which a new year does not move.
_BRACKETED = re.compile(r"[〔\[【][^〔〕\[\]【】]*[〕\]】]")
_JOIN = r"\s*(?:年度?)?\s*(?:[—–\-~～]+|至|到)\s*"
_RANGE_BEFORE = re.compile(rf"(?<!\d)\d{{4}}{_JOIN}$")
_RANGE_AFTER = re.compile(rf"{_JOIN}\d{{4}}(?!\d)")


def _fixed_year(text: str, start: int, end: int, bracketed: list[tuple[int, int]]) -> bool:
    """Whether the year at ``text[start:end]`` is in a bracketed document number or ends a span."""
    if any(left < start and end < right for left, right in bracketed):
        return True
    return bool(_RANGE_BEFORE.search(text, max(0, start - 30), start) or _RANGE_AFTER.match(text, end))


def shift_text_years(text: str | None, source_year: int, years: int) -> str | None:
    """Move the years ``source_year`` and ``source_year + 1`` written in ``text`` by ``years``.

    Only those two years shift ("2023年推进…", "2024年工作安排" when cloning 2023 to 2024); older years
    are kept as written (historical references), and so are years in document numbers and spans
    (see ``_fixed_year``). The preview lists every change for the admin.
    """
    if not text or not years:
        return text
    bracketed = [m.span() for m in _BRACKETED.finditer(text)]
    pattern = re.compile(rf"(?<!\d)({source_year}|{source_year + 1})(?!\d)")
    return pattern.sub(lambda m: m.group(1) if _fixed_year(text, m.start(), m.end(), bracketed)
                       else str(int(m.group(1)) + years), text)


@dataclass(frozen=True)
class CloneChange:
    """One value the clone writes differently from the source: where, what, old and new."""
    where: str
    what: str
    old: object
    new: object

    @property
    def is_date(self) -> bool:
        return isinstance(self.old, date)


def _text_changes(where: str, what: str, text: str | None, source_year: int, years: int) -> list[CloneChange]:
    """The changed lines of ``text`` (long guidance shows only the lines whose years move)."""
    changes = []
    for line in (text or "").splitlines():
        shifted = shift_text_years(line, source_year, years)
        if shifted != line:
            changes.append(CloneChange(where, what, line.strip(), shifted.strip()))
    return changes


def _date_change(where: str, what: str, value: date | None, years: int) -> list[CloneChange]:
    return [CloneChange(where, what, value, shift_year(value, years))] if value and years else []


def clone_preview(source: ReportCycle, year: int, title: str | None = None) -> list[CloneChange]:
    """Every title, guidance line and date that ``clone_cycle(source, year=year)`` writes changed, in
    outline order, so the admin can check them before anything is saved."""
    from .outline import load_outline

    years = year - source.year
    changes = [CloneChange("报告", "标题", source.title, new_title(source, year, title))]
    changes += _date_change("报告", "截止日期", source.due, years)
    changes += _date_change("报告", "成文日期", source.issue_date, years)
    for node in load_outline(source):
        s, where = node.section, node.path_label
        changes += _text_changes(where, "标题", s.title, source.year, years)
        changes += _text_changes(where, "填报说明", s.guidance, source.year, years)
        changes += _date_change(where, "截止日期", s.due, years)
        for a in s.assignments:
            changes += _date_change(where, f"{a.unit.name}的截止日期", a.due, years)
    return [c for c in changes if c.old != c.new]


def new_title(source: ReportCycle, year: int, title: str | None) -> str:
    if (title or "").strip():
        return title.strip()
    shifted = shift_text_years(source.title, source.year, year - source.year)
    return shifted if shifted != source.title else f"{year}年{source.title}"


def _reminder_policy_model():
    # The reminder feature is optional: clone its policy only when its model exists.
    try:
        from ..models.reminder import ReminderPolicy
    except ImportError:  # pragma: no cover - depends on the installed features
        return None
    return ReminderPolicy


def _copy_columns(row, skip=("id", "cycle_id")) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs if c.key not in skip}


def check_target(source: ReportCycle, actor, year: int | None) -> int:
    """The year to clone to (default: the next), after checking the actor and that the year is free.

    :raise PermissionDenied: the actor is not an admin.
    :raise DomainError: the target year is not after the source's or already has a cycle.
    """
    policy.require(actor, "admin.manage", None, "只有管理员可以复制年度报告。")
    if policy.region_of(source) != actor.region_id:
        # Another region's cycle is never a source (and its existence is not told).
        raise NotFound("要复制的年度报告不存在。")
    year = source.year + 1 if year is None else year
    if not isinstance(year, int) or year <= source.year or year > source.year + 10:
        raise DomainError(f"新年度应晚于{source.year}年，且不超过{source.year + 10}年。")
    # One report per region and year (two regions may each have their 2025 report); the printed
    # name too, as the table's constraint is on it.
    exists = db.session.scalar(select(ReportCycle.id).where(
        (ReportCycle.region_id == source.region_id) | (ReportCycle.region == source.region),
        ReportCycle.year == year).limit(1))
    if exists:
        raise DomainError(f"{source.region}{year}年度的年度报告已存在，不能重复复制。")
    return year


def clone_cycle(source: ReportCycle, actor, year: int | None = None, title: str | None = None) -> ReportCycle:
    """Create next year's cycle from ``source``; dates move by the difference in years.

    :raise PermissionDenied: the actor is not an admin.
    :raise DomainError: the target year is not after the source's or already has a cycle.
    """
    year = check_target(source, actor, year)
    years = year - source.year
    cycle = ReportCycle(
        year=year, region=source.region, region_id=source.region_id, title=new_title(source, year, title),
        due=shift_year(source.due, years),
        unit_head_review=source.unit_head_review, issuers=source.issuers,
        issue_date=shift_year(source.issue_date, years), state="setup", cloned_from_id=source.id,
        share_approved_figures=source.share_approved_figures,
    )
    db.session.add(cycle)
    db.session.flush()

    section_map: dict[int, Section] = {}

    def copy_section(old: Section, parent: Section | None):
        new = Section(cycle=cycle, parent=parent, code=old.code, position=old.position,
                      title=shift_text_years(old.title, source.year, years),
                      guidance=shift_text_years(old.guidance, source.year, years),
                      word_limit=old.word_limit, run_in=old.run_in,
                      due=shift_year(old.due, years))
        new.reviewers = list(old.reviewers)
        db.session.add(new)
        section_map[old.id] = new
        for a in old.assignments:
            new.assignments.append(Assignment(unit_id=a.unit_id, role=a.role, due=shift_year(a.due, years)))
        for child in old.children:
            copy_section(child, new)

    # A new section joins cycle.sections before it is added; don't flush half-built rows meanwhile.
    with db.session.no_autoflush:
        for top in source.top_sections():
            copy_section(top, None)
    db.session.flush()

    counts = {"sections": len(section_map), "assignments": sum(len(s.assignments) for s in section_map.values())}
    counts.update(_copy_figure_definitions(source, cycle, section_map))
    if _copy_reminder_policy(source, cycle, actor):
        counts["reminder_policy"] = 1
    record(actor, "cycle.clone", f"cycle:{cycle.id}", source=source.id, year=year, **counts)
    db.session.flush()
    return cycle


def _copy_figure_definitions(source: ReportCycle, cycle: ReportCycle, section_map: dict[int, Section]) -> dict:
    """Copy the source's indicators and rules onto the new sections; return their counts."""
    indicators = list(db.session.scalars(select(Indicator).where(Indicator.cycle_id == source.id)
                                         .order_by(Indicator.id)))
    for ind in indicators:
        data = _copy_columns(ind, skip=("id", "cycle_id", "section_id"))
        db.session.add(Indicator(cycle_id=cycle.id, section_id=section_map[ind.section_id].id, **data))
    rules = list(db.session.scalars(select(Rule).where(Rule.cycle_id == source.id).order_by(Rule.id)))
    for rule in rules:
        data = _copy_columns(rule, skip=("id", "cycle_id", "section_id"))
        section_id = section_map[rule.section_id].id if rule.section_id is not None else None
        db.session.add(Rule(cycle_id=cycle.id, section_id=section_id, **data))
    return {"indicators": len(indicators), "rules": len(rules)}


def _copy_reminder_policy(source: ReportCycle, cycle: ReportCycle, actor) -> bool:
    """Copy the source's stored reminder policy, if any (True when copied)."""
    Policy = _reminder_policy_model()
    if Policy is None:
        return False
    policy = db.session.scalar(select(Policy).where(Policy.cycle_id == source.id))
    if policy is None:
        return False
    data = _copy_columns(policy, skip=("id", "cycle_id", "updated_at", "updated_by_id"))
    db.session.add(Policy(cycle_id=cycle.id, updated_by_id=actor.id, **data))
    return True
