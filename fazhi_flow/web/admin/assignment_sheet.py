"""The assignment sheet of one section (任务分配): every unit's role and deadline, the section's own
deadline and its reviewers, as stored or, after a POST, as the admin typed them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask import abort
from sqlalchemy import select

from ...extensions import db
from ...models import Assignment, Section, Unit, User, UserRole
from ...services import assignments as assignment_svc
from ..fields import int_list

ROLES = ("", "lead", "support")


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"日期“{text}”格式不正确，应为 年-月-日，例如 2025-01-10") from None


@dataclass
class AssignmentSheet:
    existing: dict[int, Assignment]
    units: list[Unit]
    reviewers: list[User]
    # What the page shows: the stored values, or on a failed POST what was typed.
    typed: dict[int, dict[str, str]]
    chosen_reviewers: set[int]
    section_due: str
    wanted: dict[int, assignment_svc.UnitChoice] = field(default_factory=dict)
    due: date | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, section: Section) -> AssignmentSheet:
        existing = {a.unit_id: a for a in section.assignments}
        region_id = section.cycle.region_id  # units and reviewers are offered from the cycle's region only
        units = list(db.session.scalars(
            select(Unit).where(Unit.region_id == region_id, Unit.active.is_(True) | Unit.id.in_(list(existing)))
            .order_by(Unit.sort_order, Unit.id)))
        reviewers = list(db.session.scalars(
            select(User).where(User.region_id == region_id, User.active.is_(True),
                               User.role_rows.any(UserRole.role == "reviewer"))
            .order_by(User.name, User.id)))
        typed = {u.id: {"role": existing[u.id].role if u.id in existing else "",
                        "due": existing[u.id].due.isoformat() if u.id in existing and existing[u.id].due else ""}
                 for u in units}
        return cls(existing=existing, units=units, reviewers=reviewers, typed=typed,
                   chosen_reviewers={u.id for u in section.reviewers},
                   section_due=section.due.isoformat() if section.due else "")

    def read(self, form) -> None:
        """Take what was posted; problems a person can fix go to ``errors``, a forged list is a 400, and
        a role for a unit the sheet does not offer (another region's) is a 404."""
        offered = {str(unit.id) for unit in self.units}
        if any(key.startswith("role-") and key[5:] not in offered and value
               for key, value in form.items(multi=True)):
            abort(404)
        for unit in self.units:
            self._read_unit(unit, form.get(f"role-{unit.id}", ""), form.get(f"due-{unit.id}", "").strip())
        self.section_due = form.get("section_due", "").strip()
        if self.section_due:
            try:
                self.due = parse_date(self.section_due)
            except ValueError as exc:
                self.errors.append(f"本章节截止日期：{exc}")
        try:
            self.chosen_reviewers = set(int_list(form.getlist("reviewers")))
        except ValueError:
            abort(400)

    def _read_unit(self, unit: Unit, role: str, due_text: str) -> None:
        self.typed[unit.id] = {"role": role, "due": due_text}
        due = None
        if due_text:
            try:
                due = parse_date(due_text)
            except ValueError as exc:
                self.errors.append(f"{unit.name}：{exc}")
        if role not in ROLES:
            self.errors.append(f"{unit.name}：分工只能是牵头或配合")
        self.wanted[unit.id] = assignment_svc.UnitChoice(role, due)
