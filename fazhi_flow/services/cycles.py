"""Operations on a report cycle: open collection, compile, sign-off, publish."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import exists, func, select

from ..errors import DomainError
from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle, Section, Unit, User, UserRole
from ..timeutil import cn_date_text, local_today
from ..workflow.machine import fire
from .audit import record

# Called as fn(cycle, actor) inside the publish transaction (e.g. to freeze the published snapshot).
PUBLISH_HOOKS: list = []
# Called as check(cycle, actor) before 提请签发, whoever fires it (web, CLI); raises DomainError to refuse.
SIGNOFF_CHECKS: list = []
# Called as check(cycle, actor, event) before each step toward the signed report (提请签发, 签发, 发布);
# raises DomainError to refuse (e.g. a figure rule that fails on the approved values).
SIGNATURE_CHECKS: list = []
SIGNATURE_EVENTS = ("request_signoff", "sign", "publish")


def cycle_assignments(cycle: ReportCycle) -> list[Assignment]:
    return list(db.session.scalars(
        select(Assignment).join(Section).where(Section.cycle_id == cycle.id).order_by(Assignment.id)
    ))


def ensure_contributions(cycle: ReportCycle) -> int:
    """Create the empty contribution of every assignment that has none yet; return how many."""
    created = 0
    for assignment in cycle_assignments(cycle):
        if assignment.contribution is None:
            assignment.contribution = Contribution(
                cycle_id=cycle.id, section_id=assignment.section_id, unit_id=assignment.unit_id,
                body="", state="draft",
            )
            created += 1
    db.session.flush()
    return created


def units_without_unit_head(cycle: ReportCycle) -> list[str]:
    """Names of the assigned units that have no active unit head (单位负责人), in unit order."""
    assigned = select(Assignment.unit_id).join(Section).where(Section.cycle_id == cycle.id)
    head = exists(select(User.id).where(User.unit_id == Unit.id, User.region_id == cycle.region_id,
                                        User.active.is_(True),
                                        User.role_rows.any(UserRole.role == "unit_head")))
    return list(db.session.scalars(select(Unit.name).where(Unit.id.in_(assigned), ~head)
                                   .order_by(Unit.sort_order, Unit.id)))


def _refuse_without_unit_heads(cycle: ReportCycle) -> None:
    """With unit-head review on, material of a unit without a unit head would wait in 待单位审核
    for nobody: opening is refused until the unit has one (or the review is switched off)."""
    if not cycle.unit_head_review:
        return
    names = units_without_unit_head(cycle)
    if names:
        raise DomainError(f"本报告的材料须经单位负责人同意后报送，但{'、'.join(names)}没有启用的单位负责人账号，"
                          "提交的材料将无人同意报送，不能开始征集。请先在“用户”中添加单位负责人，"
                          "或在报告设置中取消单位负责人审核。")


@dataclass(frozen=True)
class PastDue:
    """A task (section and unit) whose effective due date lies before today."""

    section_id: int
    unit: str
    due: date


def past_dues(cycle: ReportCycle, today: date | None = None) -> list[PastDue]:
    """The tasks of ``cycle`` whose effective due date (its own, else the section's or an ancestor's,
    else the cycle's) is before ``today`` (Beijing time), ordered by date; one statement."""
    from ..reminders.dispatch import section_due

    today = today or local_today()
    sd = section_due([cycle.id])
    a = Assignment.__table__
    due = func.coalesce(a.c.due, sd.c.due)
    rows = db.session.execute(
        select(a.c.section_id, Unit.name, due.label("due"))
        .select_from(a.join(sd, sd.c.section_id == a.c.section_id).join(Unit, Unit.id == a.c.unit_id))
        .where(due < today).order_by(due, a.c.section_id, Unit.sort_order, a.c.id)).all()
    return [PastDue(r.section_id, r.name, r.due) for r in rows]


def move_past_dues(cycle: ReportCycle, to: date, today: date | None = None) -> list[str]:
    """Set every due date of ``cycle`` before ``today`` (the cycle's, sections', tasks') to ``to``;
    return one line per date moved (for the audit)."""
    today = today or local_today()
    if to < today:
        raise DomainError(f"顺延后的截止日期（{cn_date_text(to)}）不能早于今天（{cn_date_text(today)}）。")
    moved = []
    if cycle.due is not None and cycle.due < today:
        moved.append(f"报告截止日期：{cn_date_text(cycle.due)}")
        cycle.due = to
    for section in db.session.scalars(select(Section).where(Section.cycle_id == cycle.id, Section.due < today)
                                      .order_by(Section.id)):
        moved.append(f"章节“{section.title}”：{cn_date_text(section.due)}")
        section.due = to
    for assignment in db.session.scalars(
            select(Assignment).join(Section).where(Section.cycle_id == cycle.id, Assignment.due < today)
            .order_by(Assignment.id)):
        moved.append(f"“{assignment.section.title}”（{assignment.unit.name}）：{cn_date_text(assignment.due)}")
        assignment.due = to
    db.session.flush()
    return moved


def _start_collecting(cycle: ReportCycle, actor, event: str, move_due_to: date | None,
                      comment: str | None = None):
    """Fire ``open`` or ``reopen_collection``: past due dates moved first when asked (so that the
    notices of the event already give the new dates), and the moment noted in ``opened_at``, from
    which the reminder policy counts a late open's overdue stages and escalation."""
    moved = move_past_dues(cycle, move_due_to) if move_due_to is not None else []
    # The moved date travels with the event, so its notices can say the dates were moved.
    context = {"moved_to": cn_date_text(move_due_to)} if move_due_to is not None else {}
    log = fire(cycle, event, actor, comment=comment, **context)
    cycle.opened_at = log.created_at
    detail = {"comment": log.comment} if log.comment else {}
    if move_due_to is not None:
        detail.update(due=cn_date_text(move_due_to), moved=moved)
    return log, detail


def open_cycle(cycle: ReportCycle, actor, move_due_to: date | None = None):
    """Open collection (征集): every assigned unit gets its contribution to fill in.

    ``move_due_to``: first set every due date already past to this date (in the same transaction).
    """
    if cycle.state == "setup" and not cycle_assignments(cycle):
        raise DomainError("该年度报告还没有任何任务分配，请先分配章节再开始征集。")
    if cycle.state == "setup":
        _refuse_without_unit_heads(cycle)
    log, detail = _start_collecting(cycle, actor, "open", move_due_to)
    ensure_contributions(cycle)
    record(actor, "cycle.open", f"cycle:{cycle.id}", **detail)
    db.session.flush()
    return log


def reopen_collection(cycle: ReportCycle, actor, comment: str | None = None, move_due_to: date | None = None):
    """Collection again (重新征集) after compiling; past due dates moved first when asked."""
    log, detail = _start_collecting(cycle, actor, "reopen_collection", move_due_to, comment=comment)
    record(actor, "cycle.reopen_collection", f"cycle:{cycle.id}", **detail)
    db.session.flush()
    return log


def missing_contributions(cycle: ReportCycle) -> list[Contribution]:
    return list(db.session.scalars(
        select(Contribution).where(Contribution.cycle_id == cycle.id, Contribution.state != "approved")
        .order_by(Contribution.id)
    ))


def compile_cycle(cycle: ReportCycle, actor, force_reason: str | None = None):
    """Move to compiling. Needs every contribution approved, unless forced with a reason."""
    missing = missing_contributions(cycle) if cycle.state == "collecting" else []
    context = {}
    if missing:
        if not (force_reason or "").strip():
            names = "、".join(sorted({c.unit.name for c in missing}))
            raise DomainError(f"还有{len(missing)}份材料未通过审核（{names}），不能进入汇总编辑。"
                              "如确需强制汇总，请填写理由。")
        context["missing"] = [
            {"contribution": c.id, "unit": c.unit.name, "section": c.section.path_label, "state": c.state}
            for c in missing
        ]
    log = fire(cycle, "compile", actor, comment=force_reason if missing else None, **context)
    if missing:
        cycle.forced_compile_reason = force_reason.strip()
        cycle.forced_missing = context["missing"]
    record(actor, "cycle.compile", f"cycle:{cycle.id}", forced=bool(missing))
    db.session.flush()
    return log


def _simple(event: str):
    def operation(cycle: ReportCycle, actor, comment: str | None = None):
        if event == "request_signoff":
            for check in SIGNOFF_CHECKS:
                check(cycle, actor)
        if event in SIGNATURE_EVENTS:
            for check in SIGNATURE_CHECKS:
                check(cycle, actor, event)
        log = fire(cycle, event, actor, comment=comment)
        if event == "publish":
            for hook in PUBLISH_HOOKS:
                hook(cycle, actor)
        record(actor, f"cycle.{event}", f"cycle:{cycle.id}", comment=log.comment,
               on_behalf_of=log.on_behalf_of_id)
        db.session.flush()
        return log

    operation.__name__ = f"{event}_cycle"
    operation.__doc__ = f"Fire ``{event}`` on a report cycle as ``actor``."
    return operation


request_signoff = _simple("request_signoff")
sign_cycle = _simple("sign")
return_signoff = _simple("return")
publish_cycle = _simple("publish")

OPERATIONS = {
    "open": lambda cycle, actor, comment=None: open_cycle(cycle, actor),
    "compile": lambda cycle, actor, comment=None: compile_cycle(cycle, actor, force_reason=comment),
    "reopen_collection": reopen_collection,
    "request_signoff": request_signoff,
    "sign": sign_cycle,
    "return": return_signoff,
    "publish": publish_cycle,
}


def apply_cycle_event(cycle: ReportCycle, event: str, actor, comment: str | None = None):
    try:
        operation = OPERATIONS[event]
    except KeyError:
        raise DomainError(f"未知的操作“{event}”。") from None
    return operation(cycle, actor, comment=comment)
