"""Nobody stuck (无人可办): material that nobody could submit, agree to or approve.

A unit's material on a section moves only when someone may fire the next event (workflow.states):
- 提交审核: an active liaison of the unit;
- 同意报送 (when the cycle asks for unit-head review): an active unit head of the unit;
- 通过 / 退回修改: an *eligible reviewer* — an active user with the reviewer role who does not belong to
  the unit, and who is named for the section or its nearest ancestor naming any (any reviewer of the
  cycle's region when no section up the path names one: another region's never counts); see ``workflow.machine.is_contribution_reviewer``. Admins cannot approve.
Each gap is reported once, with the section and the reason, for the import, the admin pages and 开始征集.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Assignment, ReportCycle, Section, Unit, User, UserRole


@dataclass(frozen=True)
class StuckWarning:
    kind: str  # "reviewer", "liaison" or "unit_head"
    unit: str
    sections: tuple[str, ...]
    reason: str

    @property
    def message(self) -> str:
        where = "、".join(f"“{s}”" for s in self.sections)
        return f"章节{where}（{self.unit}）：{self.reason}"


def _active_with_role(role: str, cycle: ReportCycle) -> list[User]:
    """Active users with ``role`` in the cycle's region: a reviewer of another region never moves
    this region's material, so it must not hide a gap."""
    return list(db.session.scalars(
        select(User).where(User.active.is_(True), User.region_id == cycle.region_id,
                           User.role_rows.any(UserRole.role == role))
        .options(selectinload(User.role_rows)).order_by(User.id)))


def _reviewer_reason(named: list[User], unit: Unit, reviewers: list[User]) -> str | None:
    """Why nobody may approve ``unit``'s material, or None when somebody may."""
    ids = {r.id for r in reviewers}
    if not named:
        if any(r.unit_id != unit.id for r in reviewers):
            return None
        if not reviewers:
            return "系统中没有启用的审核人，材料提交后无人能审核通过。请添加审核人。"
        return (f"没有指定审核人，而现有审核人都属于{unit.name}，不能审核本单位的材料，材料提交后无人能审核通过。"
                "请为该章节指定其他单位的审核人。")
    usable = [r for r in named if r.id in ids]
    if any(r.unit_id != unit.id for r in usable):
        return None
    names = "、".join(r.name for r in named)
    if not usable:
        return f"指定的审核人（{names}）都已停用或不再是审核人，材料提交后无人能审核通过。请另行指定审核人。"
    return (f"指定的审核人（{names}）都属于{unit.name}，不能审核本单位的材料，材料提交后无人能审核通过。"
            "请为该章节指定其他单位的审核人。")


def _assignments(cycle: ReportCycle) -> list[Assignment]:
    return list(db.session.scalars(
        select(Assignment).join(Section).where(Section.cycle_id == cycle.id)
        .options(selectinload(Assignment.unit)).order_by(Assignment.id)))


def stuck_warnings(cycle: ReportCycle) -> list[StuckWarning]:
    """Every gap of ``cycle``, in outline order: reviewers first, then liaisons and unit heads."""
    from .outline import load_outline

    labels = {n.section.id: n.path_label for n in load_outline(cycle)}
    # The named reviewers of every section in one query (effective_reviewers walks up the tree).
    list(db.session.scalars(select(Section).where(Section.cycle_id == cycle.id)
                            .options(selectinload(Section.reviewers))))
    order = {sid: i for i, sid in enumerate(labels)}
    assignments = sorted(_assignments(cycle), key=lambda a: (order.get(a.section_id, 0), a.id))
    reviewers = _active_with_role("reviewer", cycle)
    found: list[StuckWarning] = []
    for a in assignments:
        reason = _reviewer_reason(list(a.section.effective_reviewers()), a.unit, reviewers)
        if reason:
            found.append(StuckWarning("reviewer", a.unit.name, (labels[a.section_id],), reason))
    found += _unit_gaps(cycle, assignments, labels)
    return found


def _unit_gaps(cycle: ReportCycle, assignments: list[Assignment], labels: dict) -> list[StuckWarning]:
    by_unit: dict[int, list[Assignment]] = {}
    for a in assignments:
        by_unit.setdefault(a.unit_id, []).append(a)
    checks = [("liaison", "没有启用的联络员账号，这些材料无人填报和提交。请在“用户”中为该单位添加联络员。")]
    if cycle.unit_head_review:
        checks.append(("unit_head", "本报告的材料须经单位负责人同意后报送，但该单位没有启用的单位负责人账号，"
                                    "提交的材料将无人同意报送。请添加单位负责人，或在报告设置中取消单位审核。"))
    found = []
    for role, reason in checks:
        staffed = {u.unit_id for u in _active_with_role(role, cycle)}
        for unit_id, items in by_unit.items():
            if unit_id not in staffed:
                sections = tuple(dict.fromkeys(labels[a.section_id] for a in items))
                found.append(StuckWarning(role, items[0].unit.name, sections, reason))
    return found


def stuck_messages(cycle: ReportCycle) -> list[str]:
    return [w.message for w in stuck_warnings(cycle)]
