"""Operations on a report cycle: open collection, compile, sign-off, publish."""
from __future__ import annotations

from sqlalchemy import select

from ..errors import DomainError
from ..extensions import db
from ..models import Assignment, Contribution, ReportCycle, Section
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


def open_cycle(cycle: ReportCycle, actor):
    """Open collection (征集): every assigned unit gets its contribution to fill in."""
    if cycle.state == "setup" and not cycle_assignments(cycle):
        raise DomainError("该年度报告还没有任何任务分配，请先分配章节再开始征集。")
    log = fire(cycle, "open", actor)
    ensure_contributions(cycle)
    record(actor, "cycle.open", f"cycle:{cycle.id}")
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
        record(actor, f"cycle.{event}", f"cycle:{cycle.id}", comment=log.comment)
        db.session.flush()
        return log

    operation.__name__ = f"{event}_cycle"
    operation.__doc__ = f"Fire ``{event}`` on a report cycle as ``actor``."
    return operation


reopen_collection = _simple("reopen_collection")
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
