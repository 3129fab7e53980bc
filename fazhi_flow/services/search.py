"""One search box: sections, units, people, material (texts and review comments) and published reports.

What a person may read is decided in SQL by the clauses of ``fazhi_flow.policy`` (the same rules as
``can``), so no row the searcher may not read is ever loaded. Chinese has no spaces between words,
so the match is a substring one (``LIKE '%…%'`` with ``%``, ``_`` and the escape character escaped),
case-insensitive for Latin letters (``lower()`` on both sides, as each database lowers them).

Each group is one statement, whatever the data: at most ``LIMIT`` rows and, by a window count, how
many matched in all (the page says how many more there are).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, func, literal, or_, select

from .. import policy
from ..errors import DomainError
from ..extensions import db
from ..models import Contribution, Publication, ReportCycle, Section, TransitionLog, Unit, User
from ..workflow.states import CONTRIBUTION_STATE_LABELS

MAX_LENGTH = 100
LIMIT = 20
# Characters of context on each side of the hit in a snippet.
CONTEXT = 30
ESCAPE = "\\"

GROUPS = (
    ("sections", "章节"),
    ("units", "单位"),
    ("people", "人员"),
    ("material", "材料"),
    ("publications", "已发布报告"),
)


@dataclass
class Snippet:
    """Text around the first hit: ``before`` + ``hit`` + ``after`` (plain text; the template escapes)."""

    before: str
    hit: str
    after: str
    cut_before: bool = False
    cut_after: bool = False


@dataclass
class Hit:
    title: str
    snippet: Snippet | None
    # (endpoint, url values), None when the searcher has no page to open for it.
    link: tuple[str, dict] | None
    note: str = ""


@dataclass
class Group:
    key: str
    label: str
    hits: list[Hit] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        return max(self.total - len(self.hits), 0)


@dataclass
class Results:
    query: str
    groups: list[Group]

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups)


def clean_query(raw: str | None) -> str:
    """The query trimmed; '' when none. Refused (DomainError, status 400) when longer than
    ``MAX_LENGTH`` or holding control characters (a NUL cannot even be sent to PostgreSQL)."""
    text = (raw or "").strip()
    if len(text) > MAX_LENGTH:
        raise DomainError(f"搜索词最多{MAX_LENGTH}个字，现在是{len(text)}个字，请缩短后再搜索。")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise DomainError("搜索词中有不可见的控制字符，请删去后再搜索。")
    return text


def shown_query(raw: str | None) -> str:
    """What a refused query is shown as in the box again: trimmed, cut to the limit, no control characters."""
    text = "".join(ch for ch in (raw or "").strip() if unicodedata.category(ch) not in ("Cc", "Cs"))
    return text[:MAX_LENGTH]


def like_pattern(query: str) -> str:
    r"""``%query%`` with ``\``, ``%`` and ``_`` escaped, so they match themselves."""
    escaped = query.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def _matches(column, pattern: str):
    if pattern.lower() == pattern.upper():
        # Nothing in the query has a case (Chinese, digits): lowering every text would only cost time.
        return column.like(literal(pattern), escape=ESCAPE)
    return func.lower(column).like(func.lower(literal(pattern)), escape=ESCAPE)


def snippet(text: str | None, query: str, context: int = CONTEXT) -> Snippet | None:
    """The first hit of ``query`` in ``text`` (case-insensitive) with ``context`` characters around it,
    on one line; None when the text does not contain it (the database matched another field)."""
    # On one line: runs of spaces and line breaks (in the text and the query alike) read as one space.
    text = " ".join((text or "").split())
    found = re.search(re.escape(" ".join(query.split())), text, re.IGNORECASE)
    if found is None:
        return None
    start, end = found.span()
    lo, hi = max(start - context, 0), min(end + context, len(text))
    return Snippet(text[lo:start], text[start:end], text[end:hi], lo > 0, hi < len(text))


def search(user, raw_query: str | None) -> Results | None:
    """The results for ``raw_query`` as ``user`` may read them; None for an empty query."""
    query = clean_query(raw_query)
    if not query:
        return None
    pattern = like_pattern(query)
    groups = [Group(key, label) for key, label in GROUPS]
    by_key = {g.key: g for g in groups}
    _sections(user, query, pattern, by_key["sections"])
    _units(user, query, pattern, by_key["units"])
    _people(user, query, pattern, by_key["people"])
    _material(user, query, pattern, by_key["material"])
    _publications(user, query, pattern, by_key["publications"])
    return Results(query, groups)


def _rows(stmt):
    """Rows of ``stmt`` (the first ``LIMIT``) and the number of all matches (the window count)."""
    rows = db.session.execute(stmt.add_columns(func.count().over().label("total")).limit(LIMIT)).all()
    return rows, (rows[0].total if rows else 0)


def _sections(user, query, pattern, group: Group) -> None:
    stmt = (select(Section.id, Section.title, Section.cycle_id, ReportCycle.title.label("cycle_title"),
                   ReportCycle.year)
            .join(ReportCycle, ReportCycle.id == Section.cycle_id)
            .where(ReportCycle.region_id == user.region_id, _matches(Section.title, pattern))
            .order_by(ReportCycle.year.desc(), Section.cycle_id, Section.position, Section.id))
    rows, group.total = _rows(stmt)
    admin = policy.can(user, "admin.manage")
    progress = policy.can(user, "dashboard.view")
    for row in rows:
        link = (("admin.section_edit", {"section_id": row.id}) if admin
                else ("dashboard.index", {"cycle": row.cycle_id}) if progress else None)
        group.hits.append(Hit(row.title, snippet(row.title, query), link, row.cycle_title))


def _units(user, query, pattern, group: Group) -> None:
    stmt = (select(Unit.id, Unit.name, Unit.code, Unit.active)
            .where(Unit.region_id == user.region_id, or_(_matches(Unit.name, pattern), _matches(Unit.code, pattern)))
            .order_by(Unit.sort_order, Unit.id))
    rows, group.total = _rows(stmt)
    admin = policy.can(user, "admin.manage")
    for row in rows:
        note = f"代码 {row.code}" + ("" if row.active else "（已停用）")
        group.hits.append(Hit(row.name, snippet(row.name, query) or snippet(row.code, query),
                              ("admin.unit_edit", {"unit_id": row.id}) if admin else None, note))


def _people(user, query, pattern, group: Group) -> None:
    everyone = policy.can(user, "search.people_all")
    # Usernames are matched (and shown) only for those who manage the accounts.
    matched = or_(_matches(User.name, pattern), _matches(User.username, pattern)) if everyone \
        else _matches(User.name, pattern)
    stmt = (select(User.id, User.name, User.username, User.active, Unit.name.label("unit_name"))
            .outerjoin(Unit, Unit.id == User.unit_id)
            .where(policy.people_search_clause(user), matched)
            .order_by(User.active.desc(), User.name, User.id))
    rows, group.total = _rows(stmt)
    for row in rows:
        parts = [row.unit_name or "", f"用户名 {row.username}" if everyone else "",
                 "" if row.active else "已停用"]
        shown = snippet(row.name, query) or (snippet(row.username, query) if everyone else None)
        link = ("admin.user_edit", {"user_id": row.id}) if everyone else None
        group.hits.append(Hit(row.name, shown, link, "，".join(p for p in parts if p)))


def _material(user, query, pattern, group: Group) -> None:
    comment_hit = and_(TransitionLog.contribution_id == Contribution.id, TransitionLog.comment.is_not(None),
                       _matches(TransitionLog.comment, pattern))
    first_comment = (select(TransitionLog.comment).where(comment_hit).order_by(TransitionLog.id).limit(1)
                     .correlate(Contribution).scalar_subquery())
    # The matching rows are counted and ordered narrow (ids and sort keys); texts, names and the
    # first matching comment are read for the page's rows only.
    first = (select(Contribution.id, ReportCycle.year, Section.position, Section.id.label("section_id"),
                    Unit.sort_order, func.count().over().label("total"))
             .join(Unit, Unit.id == Contribution.unit_id)
             .join(Section, Section.id == Contribution.section_id)
             .join(ReportCycle, ReportCycle.id == Contribution.cycle_id)
             .where(policy.contribution_view_clause(user),
                    or_(_matches(Contribution.body, pattern), exists().where(comment_hit)))
             .order_by(ReportCycle.year.desc(), Section.position, Section.id, Unit.sort_order, Contribution.id)
             .limit(LIMIT).subquery("hit"))
    stmt = (select(Contribution.id, Contribution.unit_id, Contribution.body, Contribution.state,
                   Unit.name.label("unit_name"), Section.title.label("section_title"), first.c.year,
                   first_comment.label("comment"), first.c.total)
            .select_from(first)
            .join(Contribution, Contribution.id == first.c.id)
            .join(Unit, Unit.id == Contribution.unit_id)
            .join(Section, Section.id == Contribution.section_id)
            .order_by(first.c.year.desc(), first.c.position, first.c.section_id, first.c.sort_order, first.c.id))
    rows = db.session.execute(stmt).all()
    group.total = rows[0].total if rows else 0
    reads_all = policy.can(user, "contribution.read_all")
    for row in rows:
        own = user.unit_id is not None and row.unit_id == user.unit_id
        # The unit's own people open the editor (read-only once submitted); the office the review page.
        link = ("tasks.edit" if own and not reads_all else "review.show", {"contribution_id": row.id})
        shown, note = snippet(row.body, query), ""
        if shown is None and row.comment is not None:
            shown, note = snippet(row.comment, query), "审核意见"
        title = f"{row.year}年 {row.section_title or '（开篇段落）'} · {row.unit_name}"
        state = CONTRIBUTION_STATE_LABELS.get(row.state, row.state)
        group.hits.append(Hit(title, shown, link, "，".join(p for p in (state, note) if p)))


def _publications(user, query, pattern, group: Group) -> None:
    stmt = (select(Publication.id, Publication.title, Publication.year, Publication.region, Publication.version,
                   Publication.text)
            .join(ReportCycle, ReportCycle.id == Publication.cycle_id)
            .where(policy.publication_search_clause(user),
                   or_(_matches(Publication.title, pattern), _matches(Publication.text, pattern)))
            .order_by(Publication.year.desc(), Publication.region, Publication.version.desc(), Publication.id))
    rows, group.total = _rows(stmt)
    for row in rows:
        note = row.region + (f"，更正第{row.version}版" if row.version > 1 else "")
        shown = snippet(row.text, query) or snippet(row.title, query)
        group.hits.append(Hit(row.title, shown, ("public.show", {"publication_id": row.id}), note))

