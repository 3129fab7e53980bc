"""Give sections to units (牵头 lead / 配合 support), name reviewers, set due dates.

While the cycle is collecting, a new assignment gets its contribution at once and the unit's liaisons
are told in their inbox; removing an assignment is refused once the unit has written something.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from .. import policy
from ..errors import DomainError, NotFound
from ..extensions import db
from ..models import Assignment, Contribution, Section, Unit, User, UserRole
from ..models.cycle import ASSIGNMENT_ROLES
from ..notify.inapp import notify_user
from ..notify.messages import site_path, tasks_link
from ..timeutil import cn_date_text
from .audit import record

EDITABLE_CYCLE_STATES = ("setup", "collecting")


@dataclass
class UnitChoice:
    """What the admin wants for one unit on one section: a role ('' for none) and an own due date."""

    role: str = ""
    due: date | None = None


def _check_editable(section: Section) -> None:
    cycle = section.cycle
    if cycle.state not in EDITABLE_CYCLE_STATES:
        raise DomainError(f"年度报告当前为“{cycle.state_label}”，任务分配只能在筹备中或征集中修改。")


def _check_due(due: date | None, section: Section) -> None:
    if due is None:
        return
    year = section.cycle.year
    if not (year - 1 <= due.year <= year + 2):
        raise DomainError(f"截止日期{cn_date_text(due)}与{year}年度报告不相符，请检查年份。")


def has_material(assignment: Assignment) -> bool:
    """True once the unit has written or submitted anything for this assignment."""
    c = assignment.contribution
    return c is not None and (c.state != "draft" or bool((c.body or "").strip()) or bool(c.revisions))


def _tell_liaisons(assignment: Assignment, actor) -> None:
    liaisons = db.session.scalars(
        select(User).where(User.unit_id == assignment.unit_id, User.active.is_(True),
                           User.role_rows.any(UserRole.role == "liaison"))
    )
    section = assignment.section
    for user in liaisons:
        notify_user(user, "cycle", f"新的填报任务：{section.path_label}",
                    f"{section.cycle.title}新增了由本单位{assignment.role_label}的章节“{section.path_label}”，"
                    "请及时填写并提交审核。", link=site_path(tasks_link()))


def set_section_assignments(section: Section, actor, choices: dict[int, UnitChoice],
                            section_due: date | None = None,
                            reviewer_ids: list[int] | None = None) -> dict:
    """Make the section's assignments, due date and reviewers exactly as given.

    ``choices`` maps unit id to the wanted role and due date; units not in it (or with role '')
    lose their assignment. Returns counts of what changed.

    :raise DomainError: a bad unit, role, reviewer or date, or removing an assignment with material.
    """
    _check_editable(section)
    wanted, units = _checked_choices(section, choices, section_due)
    existing = {a.unit_id: a for a in section.assignments}
    counts = {"added": 0, "changed": 0, "removed": 0}
    for uid, assignment in existing.items():
        if uid not in wanted:
            if has_material(assignment):
                raise DomainError(f"{assignment.unit.name}已就该章节填写或报送了材料，不能取消其任务分配。")
    for uid, choice in wanted.items():
        assignment = existing.get(uid)
        if assignment is None:
            _add_assignment(section, units[uid], choice, actor)
            counts["added"] += 1
        elif (assignment.role, assignment.due) != (choice.role, choice.due):
            record(actor, "assignment.update", f"assignment:{assignment.id}", section=section.id, unit=uid,
                   role=[assignment.role, choice.role], due=[_iso(assignment.due), _iso(choice.due)])
            assignment.role, assignment.due = choice.role, choice.due
            counts["changed"] += 1
    for uid, assignment in existing.items():
        if uid not in wanted:
            record(actor, "assignment.remove", f"assignment:{assignment.id}", section=section.id, unit=uid)
            section.assignments.remove(assignment)  # delete-orphan removes the row and its contribution
            counts["removed"] += 1
    if section.due != section_due:
        record(actor, "section.due", f"section:{section.id}", due=[_iso(section.due), _iso(section_due)])
        section.due = section_due
        counts["changed"] += 1
    if reviewer_ids is not None:
        counts["changed"] += set_reviewers(section, actor, reviewer_ids)
    db.session.flush()
    return counts


def _checked_choices(section: Section, choices: dict[int, UnitChoice],
                     section_due: date | None) -> tuple[dict[int, UnitChoice], dict[int, Unit]]:
    """The chosen units with a role, and those units by id; DomainError on a bad role, date or unit."""
    _check_due(section_due, section)
    wanted = {uid: c for uid, c in choices.items() if c.role}
    for choice in wanted.values():
        if choice.role not in ASSIGNMENT_ROLES:
            raise DomainError(f"未知的分工“{choice.role}”，只能是牵头或配合。")
        _check_due(choice.due, section)
    # Only the cycle's region's units: another region's unit answers as a missing one.
    units = {u.id: u for u in db.session.scalars(select(Unit).where(
        Unit.id.in_(list(wanted)), Unit.region_id == section.cycle.region_id))} if wanted else {}
    for uid in wanted:
        if units.get(uid) is None:
            raise NotFound("所选单位不存在。")
    return wanted, units


def _add_assignment(section: Section, unit: Unit, choice: UnitChoice, actor) -> None:
    if not unit.active:
        raise DomainError(f"{unit.name}已停用，不能分配任务。")
    cycle = section.cycle
    assignment = Assignment(section=section, unit_id=unit.id, role=choice.role, due=choice.due)
    db.session.add(assignment)
    db.session.flush()
    if cycle.state == "collecting":
        assignment.contribution = Contribution(
            cycle_id=cycle.id, section_id=section.id, unit_id=unit.id, body="", state="draft")
        _tell_liaisons(assignment, actor)
    record(actor, "assignment.add", f"assignment:{assignment.id}", section=section.id,
           unit=unit.id, role=choice.role, due=_iso(choice.due))


def set_reviewers(section: Section, actor, reviewer_ids: list[int]) -> int:
    """Name the reviewers of a section (none: its parent's reviewers, or any reviewer, apply)."""
    ids = sorted(set(reviewer_ids))
    # Only the cycle's region's people: another region's reviewer answers as a missing one.
    users = list(db.session.scalars(select(User).where(
        User.id.in_(ids), User.region_id == section.cycle.region_id).order_by(User.id))) if ids else []
    if len(users) != len(ids):
        raise NotFound("所选审核人不存在。")
    for user in users:
        # Checked first: policy answers no for a disabled account, whatever its roles.
        if not user.active:
            raise DomainError(f"{user.name}的账号已停用，不能指定为章节审核人。")
        if not policy.can(user, "review.queue"):
            raise DomainError(f"{user.name}不是审核人，不能指定为章节审核人。")
    if [u.id for u in section.reviewers] == [u.id for u in users]:
        return 0
    record(actor, "section.reviewers", f"section:{section.id}",
           reviewers=[[u.id for u in section.reviewers], [u.id for u in users]])
    section.reviewers = users
    db.session.flush()
    return 1


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
