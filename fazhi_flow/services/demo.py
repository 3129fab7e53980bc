"""The demo: the demo cycle, its accounts and material in every state, driven through the workflow."""
from __future__ import annotations

from datetime import timedelta
from importlib import resources

import yaml
from sqlalchemy import select

from ..extensions import db
from ..models import Assignment, Contribution, Region, ReportCycle, Section, Unit, User
from ..timeutil import local_today
from . import contributions as svc
from .cycles import open_cycle
from .importer import import_cycle

DEMO_PASSWORD = "demo-pass-2024"


def _data(name: str) -> str:
    return resources.files("fazhi_flow").joinpath("data", name).read_text(encoding="utf-8")


def demo_accounts() -> list[tuple[str, str]]:
    cycle_doc = yaml.safe_load(_data("demo_cycle.yaml"))
    units = {u["code"]: u["name"] for u in cycle_doc["units"]}
    users = {u.username: u for u in db.session.scalars(select(User))}
    rows = []
    for info in cycle_doc["users"]:
        user = users.get(info["username"])
        if user is not None:
            unit = f"，{units[info['unit']]}" if info.get("unit") else ""
            rows.append((user.username, f"{user.role_labels}{unit}（{user.name}）"))
    return rows


def load_demo(today=None):
    """Load the demo once; return (cycle, created, accounts). Commits."""
    doc = yaml.safe_load(_data("demo_cycle.yaml"))["cycle"]
    cycle = _existing_demo_cycle(doc)
    if cycle is not None:
        return cycle, False, demo_accounts()

    result = import_cycle(_data("demo_cycle.yaml"))
    cycle = result.cycle
    _keep_published_passwords()
    _shift_due_dates(cycle, today or local_today())
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    open_cycle(cycle, admin)
    db.session.flush()
    for item in yaml.safe_load(_data("demo_content.yaml"))["contributions"]:
        _play(cycle, item)
    db.session.commit()
    return cycle, True, demo_accounts()


def _existing_demo_cycle(doc: dict) -> ReportCycle | None:
    """The demo's cycle if loaded: in its region (赫山区, 430903), or, in a database upgraded from before
    regions, the cycle printed with the region's full name."""
    region = doc["region"]
    by_region = select(ReportCycle).join(Region, Region.id == ReportCycle.region_id).where(
        Region.code == region["code"], ReportCycle.year == doc["year"])
    by_name = select(ReportCycle).where(ReportCycle.region == region["full_name"], ReportCycle.year == doc["year"])
    return db.session.scalar(by_region) or db.session.scalar(by_name)


def _keep_published_passwords() -> None:
    """The demo's accounts share one published password on purpose: unlike passwords of a real
    cycle file, it need not be changed at the first login."""
    names = [u["username"] for u in yaml.safe_load(_data("demo_cycle.yaml"))["users"] if u.get("password")]
    for user in db.session.scalars(select(User).where(User.username.in_(names))):
        user.must_change_password = False


def _shift_due_dates(cycle: ReportCycle, today) -> None:
    """Put the deadlines around today so the demo shows days left, due soon and overdue."""
    cycle.due = today + timedelta(days=14)
    sections = {s.code: s for s in cycle.sections}
    sections["measures.business"].due = today + timedelta(days=3)
    sections["duties.responsibility"].due = today - timedelta(days=2)


def _play(cycle: ReportCycle, item: dict) -> Contribution:
    contribution = db.session.scalar(
        select(Contribution).join(Assignment).join(Section).join(Unit, Unit.id == Assignment.unit_id)
        .where(Section.cycle_id == cycle.id, Section.code == item["section"], Unit.code == item["unit"]))
    if contribution is None:
        raise LookupError(f"demo content names no assignment {item['section']} × {item['unit']}")
    liaison = db.session.scalar(select(User).join(User.role_rows).where(
        User.unit_id == contribution.unit_id, User.role_rows.any(role="liaison")))
    svc.save_draft(contribution, liaison, item["body"])
    if item.get("values"):
        from .figures import save_figures

        save_figures(contribution, liaison, {code: str(v) for code, v in item["values"].items()})
    target = item.get("state", "draft")
    if target == "draft":
        return contribution
    svc.submit_contribution(contribution, liaison)
    if target in ("approved", "returned"):
        reviewer = contribution.section.effective_reviewers()[0]
        if target == "approved":
            svc.approve_contribution(contribution, reviewer)
        else:
            svc.return_contribution(contribution, reviewer, comment=item.get("comment") or "请补充材料。")
    return contribution
