"""我的任务: every contribution of the viewer's unit, grouped by cycle, in outline order."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle
from . import due_of, load_viewer, prepare_figures, preload_sections


def section_order(cycle: ReportCycle) -> dict[int, int]:
    """Section id → position in the outline (depth first), for sorting a cycle's material."""
    order: dict[int, int] = {}

    def walk(nodes):
        for node in nodes:
            order[node.id] = len(order)
            walk(node.children)

    walk(cycle.top_sections())
    return order


def unit_contributions(unit_id, states=None) -> list[Contribution]:
    """The unit's (or, given a list, the units') contributions in cycles past setup, with what a list
    of them shows loaded."""
    units = Contribution.unit_id.in_(unit_id) if isinstance(unit_id, (list, tuple, set)) \
        else Contribution.unit_id == unit_id
    query = (
        select(Contribution).join(ReportCycle, Contribution.cycle_id == ReportCycle.id)
        .join(Assignment, Contribution.assignment_id == Assignment.id)
        .where(units, ReportCycle.state != "setup")
        .options(contains_eager(Contribution.assignment), contains_eager(Contribution.cycle),
                 selectinload(Contribution.unit))
    )
    if states:
        query = query.where(Contribution.state.in_(states))
    rows = list(db.session.scalars(query))
    preload_sections((c.cycle_id for c in rows), reviewers=False)  # a unit's list names no reviewer
    return rows


@dataclass
class TaskRow:
    id: int
    section_label: str
    role: str
    role_label: str
    state: str
    due: object  # workdays.DueStatus
    comment: object  # the latest decision's TransitionLog (actor loaded) or None
    preview: str
    editable: bool


@dataclass
class TaskGroup:
    title: str
    state_label: str
    rows: list[TaskRow] = field(default_factory=list)


@dataclass
class DelegatedTasks:
    """代张三（单位）处理: the material of a unit whose liaison or unit head delegated to the viewer."""
    title: str
    groups: list[TaskGroup]


def _delegated_units(user) -> list[tuple[str, int]]:
    """(heading, unit id) of the units the viewer stands in for (委托), other than their own."""
    from .. import policy

    found, seen = [], {user.unit_id}
    for p in policy.acting_for(user):
        if p.has_role("liaison", "unit_head") and p.unit_id is not None and p.unit_id not in seen:
            seen.add(p.unit_id)
            found.append((f"代{p.name}（{p.unit.name}）处理", p.unit_id))
    return found


def _groups(user, rows, comments, renderer) -> list[TaskGroup]:
    from ..services.contributions import can_edit

    cycles = sorted({c.cycle for c in rows}, key=lambda cy: (-cy.year, cy.id))
    by_cycle: dict[int, list[Contribution]] = {cy.id: [] for cy in cycles}
    for c in rows:
        by_cycle[c.cycle_id].append(c)
    groups = []
    for cycle in cycles:
        order = section_order(cycle)
        labels = cycle.path_labels()
        items = sorted(by_cycle[cycle.id], key=lambda c: (order.get(c.section_id, 0), c.id))
        groups.append(TaskGroup(cycle.title, cycle.state_label, [
            TaskRow(c.id, labels[c.section_id], c.assignment.role, c.assignment.role_label, c.state,
                    due_of(c), comments.get(c.id), renderer.preview(c),
                    bool(user.is_authenticated and can_edit(user, c)))
            for c in items]))
    return groups


@dataclass
class TasksPage:
    unit_name: str
    groups: list[TaskGroup]
    todo: int
    returned: int
    delegated: list[DelegatedTasks] = field(default_factory=list)

    @classmethod
    def build(cls, user) -> TasksPage:
        from ..web import bound_text
        from ..web.loading import latest_comments

        load_viewer(user)
        delegated = _delegated_units(user)
        # The viewer's own unit and the units they stand in for, in the same few statements.
        everything = unit_contributions([user.unit_id, *(u for _, u in delegated)])
        rows = [c for c in everything if c.unit_id == user.unit_id]
        comments = latest_comments(c.id for c in everything)
        renderer = bound_text.current()
        prepare_figures(everything)
        return cls(
            unit_name=user.unit.name if user.unit is not None else "",
            groups=_groups(user, rows, comments, renderer),
            delegated=[DelegatedTasks(title, _groups(user, [c for c in everything if c.unit_id == unit_id],
                                                     comments, renderer))
                       for title, unit_id in delegated],
            todo=sum(1 for c in rows if c.state in ("draft", "returned") and c.cycle.state == "collecting"),
            returned=sum(1 for c in rows if c.state == "returned"),
        )
