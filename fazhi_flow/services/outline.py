"""Edit a cycle's outline: add, change, move, indent, outdent and delete sections.

Positions among siblings are kept dense (0, 1, 2 …) after every operation, so numbering derived from
position never has gaps. The tree is changed through ``parent_id`` and ``position`` columns and the
loaded collections are then expired: moving a section between parents' ``children`` collections would
make the delete-orphan cascade treat it as an orphan.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import DomainError
from ..extensions import db
from ..limits import column_length
from ..models import Contribution, Region, ReportCycle, Revision, Section
from ..models.cycle import heading_number
from ..timeutil import cn_date_text
from .audit import record

EDITABLE_CYCLE_STATES = ("setup", "collecting")
MAX_DEPTH = 4  # numbering has four levels: 一、 （一） 1. （1）
MAX_TITLE = 300
MAX_GUIDANCE = 5000
MAX_WORD_LIMIT = 100_000
CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,59}$")


@dataclass
class OutlineNode:
    """A section with its derived numbering, for pages that show the whole outline at once."""

    section: Section
    depth: int
    number: str
    path_label: str
    is_leaf: bool
    short_number: str = ""  # the numbers along the path, e.g. '一（二）'; '开篇' without a heading
    first: bool = False  # first / last among its siblings
    last: bool = False

    @property
    def numbered_title(self) -> str:
        return f"{self.number}{self.section.title}" if self.section.title else "（开篇段落）"


def load_outline(cycle: ReportCycle) -> list[OutlineNode]:
    """Load every section of ``cycle`` in one query and return them in reading order, numbered.

    The ``children`` collections and ``cycle.sections`` are filled from the same rows, so templates
    that touch ``section.number`` or ``section.children`` afterwards cause no further queries.
    """
    rows = list(db.session.scalars(
        select(Section).where(Section.cycle_id == cycle.id).order_by(Section.position, Section.id)
    ))
    children: dict[int | None, list[Section]] = {}
    for s in rows:
        children.setdefault(s.parent_id, []).append(s)
    by_id = {s.id: s for s in rows}
    for s in rows:
        set_committed_value(s, "children", children.get(s.id, []))
        set_committed_value(s, "parent", by_id.get(s.parent_id) if s.parent_id else None)
        set_committed_value(s, "cycle", cycle)
    set_committed_value(cycle, "sections", rows)

    nodes: list[OutlineNode] = []

    def visit(parent_id, depth, prefix, short_prefix):
        headed = 0
        kids = children.get(parent_id, [])
        for index, s in enumerate(kids):
            number = ""
            if s.title:
                headed += 1
                number = heading_number(depth, headed)
            label = f"{number}{s.title}" if s.title else "（开篇段落）"
            path = f"{prefix} › {label}" if prefix else label
            short = short_prefix + (number.rstrip("、") if s.title else "开篇")
            nodes.append(OutlineNode(s, depth, number, path, not children.get(s.id), short,
                                     index == 0, index == len(kids) - 1))
            visit(s.id, depth + 1, path, short)

    visit(None, 1, "", "")
    return nodes


def _check_editable(cycle: ReportCycle) -> None:
    if cycle.state not in EDITABLE_CYCLE_STATES:
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，提纲只能在筹备中或征集中修改。")


def _siblings(cycle_id: int, parent_id: int | None, exclude: int | None = None) -> list[Section]:
    query = select(Section).where(Section.cycle_id == cycle_id)
    query = query.where(Section.parent_id.is_(None) if parent_id is None else Section.parent_id == parent_id)
    if exclude is not None:
        query = query.where(Section.id != exclude)
    return list(db.session.scalars(query.order_by(Section.position, Section.id)))


def _renumber(siblings: list[Section]) -> None:
    for index, s in enumerate(siblings):
        if s.position != index:
            s.position = index


def _refresh(cycle: ReportCycle, *sections: Section | None) -> None:
    """Flush, then drop stale in-memory collections so the next read sees the new tree."""
    db.session.flush()
    db.session.expire(cycle, ["sections"])
    for s in sections:
        if s is not None:
            db.session.expire(s, ["children", "parent"])


def _subtree_height(section: Section) -> int:
    kids = _siblings(section.cycle_id, section.id)
    return 1 + max((_subtree_height(k) for k in kids), default=0)


def _depth(section: Section | None) -> int:
    depth = 0
    while section is not None:
        depth += 1
        section = db.session.get(Section, section.parent_id) if section.parent_id else None
    return depth


def _clean_fields(title, guidance, word_limit, code=None) -> dict:
    title = (title or "").strip()
    if len(title) > MAX_TITLE:
        raise DomainError(f"章节标题过长（{len(title)}字），最多{MAX_TITLE}字。")
    if "\n" in title or "\r" in title:
        raise DomainError("章节标题不能换行。")
    guidance = (guidance or "").replace("\r\n", "\n").strip()
    if len(guidance) > MAX_GUIDANCE:
        raise DomainError(f"填报说明过长（{len(guidance)}字），最多{MAX_GUIDANCE}字。")
    if word_limit is not None and not (0 < int(word_limit) <= MAX_WORD_LIMIT):
        raise DomainError(f"字数上限应为1至{MAX_WORD_LIMIT}之间的整数，不限可留空。")
    return {"title": title or None, "guidance": guidance or None,
            "word_limit": int(word_limit) if word_limit is not None else None}


def _new_code(cycle: ReportCycle) -> str:
    while True:
        code = f"sec-{secrets.token_hex(3)}"
        if not db.session.scalar(select(Section.id).where(Section.cycle_id == cycle.id, Section.code == code)):
            return code


def add_section(cycle: ReportCycle, actor, title: str | None, parent: Section | None = None,
                guidance: str | None = None, word_limit: int | None = None, run_in: bool = False,
                due: date | None = None, code: str | None = None) -> Section:
    """Add a section as the last child of ``parent`` (or at the end of the top level)."""
    _check_editable(cycle)
    fields = _clean_fields(title, guidance, word_limit)
    if parent is not None:
        if parent.cycle_id != cycle.id:
            raise DomainError("上级章节不属于该年度报告。")
        if _depth(parent) >= MAX_DEPTH:
            raise DomainError(f"提纲最多{MAX_DEPTH}级，不能再添加下级章节。")
    code = (code or "").strip()
    if code:
        if not CODE_RE.match(code):
            raise DomainError("章节代码只能包含字母、数字、下划线和短横线，且以字母开头，最多60个字符。")
        if db.session.scalar(select(Section.id).where(Section.cycle_id == cycle.id, Section.code == code)):
            raise DomainError(f"章节代码“{code}”已被使用。")
    else:
        code = _new_code(cycle)
    parent_id = parent.id if parent is not None else None
    position = len(_siblings(cycle.id, parent_id))
    section = Section(cycle_id=cycle.id, parent_id=parent_id, code=code, position=position,
                      run_in=bool(run_in), due=due, **fields)
    db.session.add(section)
    _refresh(cycle, parent)
    record(actor, "section.add", f"section:{section.id}", cycle=cycle.id, title=section.title,
           parent=parent_id)
    return section


def update_section(section: Section, actor, title: str | None, guidance: str | None,
                   word_limit: int | None, run_in: bool = False, due: date | None = None,
                   review_mode: str | None = None) -> Section:
    """Change a section's title (rename), guidance, word limit, run-in heading, due date and (when
    given) review mode (审核方式)."""
    _check_editable(section.cycle)
    fields = _clean_fields(title, guidance, word_limit)
    fields.update(run_in=bool(run_in), due=due)
    if review_mode is not None:
        check_review_mode(section, review_mode)
        fields["review_mode"] = review_mode
    changed = {k: v for k, v in fields.items() if getattr(section, k) != v}
    if not changed:
        return section
    before = {k: getattr(section, k) for k in changed}
    for key, value in changed.items():
        setattr(section, key, value)
    db.session.flush()
    record(actor, "section.update", f"section:{section.id}",
           changed={k: [_plain(before[k]), _plain(v)] for k, v in changed.items()})
    return section


def check_review_mode(section: Section, review_mode: str) -> None:
    """会签 ('all') needs reviewers named for the section or a section above it: with nobody named
    every reviewer may approve, and "all of them" would mean nothing the office meant."""
    from ..workflow.states import REVIEW_MODE_LABELS

    if review_mode not in REVIEW_MODE_LABELS:
        raise DomainError("审核方式只能是“任一审核人通过”或“全部审核人会签”。")
    if review_mode == "all" and not section.effective_reviewers():
        raise DomainError(f"“{section.title or '开篇段落'}”及其上级章节都没有指定审核人，不能设为“全部审核人会签”。"
                          "请先在“任务分配”页面为章节指定审核人。")


def _plain(value):
    return value.isoformat() if isinstance(value, date) else value


def move_section(section: Section, actor, direction: str) -> Section:
    """Swap a section with its previous ('up') or next ('down') sibling."""
    _check_editable(section.cycle)
    if direction not in ("up", "down"):
        raise DomainError("未知的移动方向。")
    siblings = _siblings(section.cycle_id, section.parent_id)
    index = siblings.index(section)
    target = index - 1 if direction == "up" else index + 1
    if target < 0 or target >= len(siblings):
        raise DomainError("该章节已在最前面。" if direction == "up" else "该章节已在最后面。")
    siblings[index], siblings[target] = siblings[target], siblings[index]
    _renumber(siblings)
    _refresh(section.cycle, section.parent)
    record(actor, "section.move", f"section:{section.id}", direction=direction)
    return section


def indent_section(section: Section, actor) -> Section:
    """Make a section the last child of its previous sibling (降一级)."""
    cycle = section.cycle
    _check_editable(cycle)
    siblings = _siblings(section.cycle_id, section.parent_id)
    index = siblings.index(section)
    if index == 0:
        raise DomainError("排在第一位的章节不能降级：它前面没有可作为上级的同级章节。")
    new_parent = siblings[index - 1]
    if _depth(new_parent) + _subtree_height(section) > MAX_DEPTH:
        raise DomainError(f"降级后提纲将超过{MAX_DEPTH}级，不能降级。")
    old_parent_id = section.parent_id
    position = len(_siblings(section.cycle_id, new_parent.id))
    section.parent_id = new_parent.id
    section.position = position
    _renumber([s for s in siblings if s is not section])
    _refresh(cycle, section, new_parent,
             db.session.get(Section, old_parent_id) if old_parent_id else None)
    record(actor, "section.indent", f"section:{section.id}", parent=new_parent.id)
    return section


def outdent_section(section: Section, actor) -> Section:
    """Make a section the next sibling of its parent (升一级); later siblings stay with the parent."""
    cycle = section.cycle
    _check_editable(cycle)
    if section.parent_id is None:
        raise DomainError("一级章节不能再升级。")
    parent = db.session.get(Section, section.parent_id)
    old_siblings = _siblings(section.cycle_id, parent.id, exclude=section.id)
    new_siblings = _siblings(section.cycle_id, parent.parent_id)
    new_siblings.insert(new_siblings.index(parent) + 1, section)
    section.parent_id = parent.parent_id
    _renumber(old_siblings)
    _renumber(new_siblings)
    grand = db.session.get(Section, parent.parent_id) if parent.parent_id else None
    _refresh(cycle, section, parent, grand)
    record(actor, "section.outdent", f"section:{section.id}", parent=section.parent_id)
    return section


def _subtree_ids(section: Section) -> list[int]:
    ids, frontier = [section.id], [section.id]
    while frontier:
        frontier = list(db.session.scalars(select(Section.id).where(Section.parent_id.in_(frontier))))
        ids.extend(frontier)
    return ids


def delete_section(section: Section, actor) -> None:
    """Delete a section with its sub-sections and assignments.

    :raise DomainError: some unit has already written or submitted material under it.
    """
    cycle = section.cycle
    _check_editable(cycle)
    ids = _subtree_ids(section)
    with_material = db.session.scalar(
        select(func.count(Contribution.id)).where(
            Contribution.section_id.in_(ids),
            (Contribution.state != "draft") | (func.coalesce(Contribution.body, "") != "")
            | Contribution.id.in_(select(Revision.contribution_id)),
        )
    )
    if with_material:
        raise DomainError(f"该章节（含下级章节）已有{with_material}份单位材料，不能删除。"
                          "如确实不再需要，请先与相关单位沟通。")
    parent = db.session.get(Section, section.parent_id) if section.parent_id else None
    title, section_id = section.title, section.id
    db.session.delete(section)
    db.session.flush()
    _renumber(_siblings(cycle.id, parent.id if parent else None))
    _refresh(cycle, parent)
    record(actor, "section.delete", f"section:{section_id}", cycle=cycle.id, title=title,
           removed_sections=len(ids))


# ------------------------------------------------------------------ whole cycles

STANDARD_OUTLINE = "standard_outline.yaml"


def standard_outline_text() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parent.parent / "data" / STANDARD_OUTLINE).read_text(encoding="utf-8")


def create_cycle_from_template(actor, title: str, year: int, region: str, due: date | None = None,
                               unit_head_review: bool = False, issuers: str = "",
                               issue_date: date | None = None) -> ReportCycle:
    """Create a cycle whose outline is the shipped standard outline (no assignments yet).

    :raise DomainError: a cycle for this region and year exists already, or a setting is bad.
    """
    import yaml

    from .importer import import_cycle

    region, title = (region or "").strip(), (title or "").strip()
    # The admin's own region owns the new cycle (one a year); ``region`` is only its printed name,
    # unique per year as the table's constraint is.
    owner = getattr(actor, "region", None)
    same_year = ReportCycle.region == region
    if owner is not None:
        same_year = same_year | (ReportCycle.region_id == owner.id)
    if db.session.scalar(select(ReportCycle.id).where(same_year, ReportCycle.year == year).limit(1)):
        raise DomainError(f"{region or owner.name}{year}年度的报告已经存在，不能重复创建。")
    if owner is not None and region:
        # A printed name that is another region's name or code (or printed in its reports) would send
        # the outline to that region.
        other = db.session.scalar(select(Region.name).where(
            Region.id != owner.id, (Region.name == region) | (func.lower(Region.code) == region.lower())
            | Region.id.in_(select(ReportCycle.region_id).where(ReportCycle.region == region))).limit(1))
        if other is not None:
            from .regions import printed_name

            raise DomainError(f"地区名称“{region}”已被其他地区（{other}）使用。新报告属于本地区"
                              f"（{owner.name}），请填写本地区在报告中的名称，例如“{printed_name(owner)}”。")
    document = yaml.safe_load(standard_outline_text())
    document["cycle"] = {
        "title": title, "year": year, "region": region, "due": due, "unit_head_review": bool(unit_head_review),
        "issuers": [line.strip() for line in (issuers or "").splitlines() if line.strip()],
        "issue_date": issue_date,
    }
    document["cycle"] = {k: v for k, v in document["cycle"].items() if v not in (None, [])}
    result = import_cycle(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), actor, region=owner)
    record(actor, "cycle.create", f"cycle:{result.cycle.id}", source="template")
    return result.cycle


_UNCHANGED = object()


def update_cycle_settings(cycle: ReportCycle, actor, title: str, due: date | None, unit_head_review: bool,
                          issuers: str, issue_date: date | None, publish_deadline=_UNCHANGED) -> ReportCycle:
    """Change a cycle's title, due date, unit-head review, closing block and (when given) publication
    deadline (None: 1 April of the following year, ``cycle.publish_deadline_effective``)."""
    if cycle.state in ("published", "correcting"):
        raise DomainError("报告已发布，不能再修改设置。")
    title = (title or "").strip()
    if not title or len(title) > column_length(ReportCycle.title):
        raise DomainError(f"报告标题不能为空，最多{column_length(ReportCycle.title)}字。")
    if bool(unit_head_review) != cycle.unit_head_review and cycle.state != "setup":
        raise DomainError("征集开始后不能再更改“须经单位负责人同意”的设置。")
    issuers = "\n".join(line.strip() for line in (issuers or "").splitlines() if line.strip())
    values = {"title": title, "due": due, "unit_head_review": bool(unit_head_review), "issuers": issuers,
              "issue_date": issue_date}
    if publish_deadline is not _UNCHANGED:
        if publish_deadline is not None and not (cycle.year <= publish_deadline.year <= cycle.year + 2):
            raise DomainError(f"发布截止日期{cn_date_text(publish_deadline)}与{cycle.year}年度报告不相符，"
                              "请检查年份；留空则为次年4月1日。")
        values["publish_deadline"] = publish_deadline
    changed = {k: [_plain(getattr(cycle, k)), _plain(v)] for k, v in values.items() if getattr(cycle, k) != v}
    for key in changed:
        setattr(cycle, key, values[key])
    if changed:
        db.session.flush()
        record(actor, "cycle.update", f"cycle:{cycle.id}", changed=changed)
    return cycle
