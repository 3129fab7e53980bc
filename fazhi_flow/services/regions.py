"""Regions (行政区划), the tenants of an installation: the tree, and its management by a system administrator.

Read by everybody (other modules import these):

- ``regions_below(region)``: the ids of the regions strictly below ``region`` (all levels), one query by
  ``Region.path`` prefix; ``include_self=True`` adds the region itself.
- ``region_tree(root=None)``: the regions in tree order (parents before children, siblings by sort order
  and code) with their depth, one query; under ``root`` (itself included) or the whole installation.
- ``region_counts(ids)``: units, users and cycles per region, three grouped queries.

Changed only by a system administrator (policy "region.manage"; ``actor`` None is the command line's
operator): ``create_region``, ``update_region`` (name and parent; moving rewrites the path of the region
and all below it in one statement), ``move_region`` (the parent alone), ``deactivate_region`` /
``activate_region`` and ``create_first_admin``. Every change is audited.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, literal, select, update

from .. import policy
from ..errors import DomainError, PermissionDenied
from ..extensions import db
from ..limits import column_length
from ..models import ReportCycle, Unit, User
from ..models.org import LEVEL_RANK, REGION_LEVELS, Region
from .audit import record

# GB/T 2260 six-digit codes are suggested; any stable code of 2–20 letters, digits, "_" and "-" is taken.
REGION_CODE_RE = re.compile(r"^[0-9A-Za-z_\-]{2,20}$")


# ------------------------------------------------------------------ reading the tree


def _region(region_or_id) -> Region:
    if isinstance(region_or_id, Region):
        return region_or_id
    region = db.session.get(Region, region_or_id)
    if region is None:
        raise DomainError("地区不存在。")
    return region


def regions_below(region, include_self: bool = False) -> list[int]:
    """Ids of the regions strictly below ``region`` (a Region or its id), every level, in one query
    (the path prefix: "/1/4/" is above "/1/4/17/")."""
    region = _region(region)
    stmt = select(Region.id).where(Region.path.startswith(region.path, autoescape=True))
    if not include_self:
        stmt = stmt.where(Region.id != region.id)
    return list(db.session.scalars(stmt.order_by(Region.id)))


@dataclass
class TreeNode:
    region: Region
    depth: int  # 0 for the root(s) listed


def region_tree(root=None, active_only: bool = False) -> list[TreeNode]:
    """The regions in tree order with their depth, in one query: the whole installation, or ``root``
    (a Region or its id) and everything below it."""
    stmt = select(Region)
    root_region = _region(root) if root is not None else None
    if root_region is not None:
        stmt = stmt.where(Region.path.startswith(root_region.path, autoescape=True))
    if active_only:
        stmt = stmt.where(Region.active.is_(True))
    regions = list(db.session.scalars(stmt))
    ids = {r.id for r in regions}
    children: dict[int | None, list[Region]] = {}
    for r in regions:
        # A region whose parent is not listed (the root, or below an inactive one) starts a branch.
        children.setdefault(r.parent_id if r.parent_id in ids else None, []).append(r)
    for group in children.values():
        group.sort(key=lambda r: (r.sort_order, r.code))
    out: list[TreeNode] = []
    stack = [(r, 0) for r in reversed(children.get(None, []))]
    while stack:
        region, depth = stack.pop()
        out.append(TreeNode(region, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(region.id, [])))
    return out


@dataclass
class RegionCounts:
    units: int = 0
    users: int = 0
    cycles: int = 0


def region_counts(ids=None) -> dict[int, RegionCounts]:
    """Active units, active users and cycles of each region (``ids``, or all): three grouped queries."""
    counts: dict[int, RegionCounts] = {}
    for model, attr, active in ((Unit, "units", True), (User, "users", True), (ReportCycle, "cycles", False)):
        stmt = select(model.region_id, func.count(model.id)).group_by(model.region_id)
        if active:
            stmt = stmt.where(model.active.is_(True))
        if ids is not None:
            stmt = stmt.where(model.region_id.in_(list(ids)))
        for region_id, n in db.session.execute(stmt):
            setattr(counts.setdefault(region_id, RegionCounts()), attr, n)
    return counts


def find_region(code: str) -> Region | None:
    """The region with ``code`` (any case)."""
    code = (code or "").strip()
    if not code:
        return None
    return db.session.scalar(select(Region).where(func.lower(Region.code) == code.lower()))


# ------------------------------------------------------------------ management (系统管理员)


def _require_manager(actor) -> None:
    if actor is not None and not policy.can(actor, "region.manage"):
        raise PermissionDenied("只有系统管理员可以管理地区。")


def _parent_problem(level: str, parent: Region | None) -> str | None:
    if parent is None:
        return None
    if not parent.active:
        return f"上级地区“{parent.name}”已停用"
    if LEVEL_RANK[parent.level] >= LEVEL_RANK[level]:
        return (f"上级地区“{parent.name}”是{parent.level_label}级，{REGION_LEVELS[level]}级地区的上级"
                f"必须是更高一级的地区")
    return None


def _name_problems(name: str) -> list[str]:
    limit = column_length(Region.name)
    if not name:
        return ["地区名称不能为空"]
    if len(name) > limit:
        return [f"地区名称不能超过{limit}个字"]
    return []


def _raise(problems: list[str]) -> None:
    if problems:
        raise DomainError("；".join(problems) + "。")


def create_region(actor, code: str, name: str, level: str, parent: Region | None = None) -> Region:
    """A new region under ``parent`` (None: a top region). ``actor`` None: the command line's operator."""
    _require_manager(actor)
    code, name = (code or "").strip(), (name or "").strip()
    problems = []
    if not code:
        problems.append("地区代码不能为空")
    elif not REGION_CODE_RE.match(code):
        problems.append(f"地区代码“{code[:40]}”不合规：2至20个字母、数字、下划线或短横线（建议用GB/T 2260六位行政区划代码）")
    elif find_region(code) is not None:
        problems.append(f"已有地区代码“{code}”")
    problems += _name_problems(name)
    if level not in REGION_LEVELS:
        problems.append(f"未知的地区级别“{level}”，可选：{'、'.join(REGION_LEVELS.values())}")
    else:
        problem = _parent_problem(level, parent)
        if problem:
            problems.append(problem)
    _raise(problems)
    siblings = select(func.max(Region.sort_order)).where(
        Region.parent_id == parent.id if parent is not None else Region.parent_id.is_(None))
    region = Region(code=code, name=name, level=level, parent=parent,
                    sort_order=(db.session.scalar(siblings) or 0) + 1)
    db.session.add(region)
    db.session.flush()
    record(actor, "region.create", f"region:{region.id}", code=code, name=name, level=level,
           parent=parent.id if parent else None)
    return region


def update_region(region: Region, actor, name: str, parent: Region | None) -> Region:
    """Rename a region or move it under another parent. A move rewrites the path of the region and of
    every region below it in one statement; a parent inside the moved branch (a loop) is refused."""
    _require_manager(actor)
    name = (name or "").strip()
    problems = _name_problems(name)
    moving = (parent.id if parent else None) != region.parent_id
    if moving and parent is not None and (parent.id == region.id or parent.is_below(region)):
        problems.append(f"不能把“{region.name}”移到“{parent.name}”之下：“{parent.name}”是它自己或它的下级地区，"
                        "上级关系会形成循环")
    elif moving:
        problem = _parent_problem(region.level, parent)
        if problem:
            problems.append(problem)
    _raise(problems)
    before = {"name": region.name, "parent": region.parent_id}
    region.name = name
    if moving:
        _move(region, parent)
    db.session.flush()
    after = {"name": region.name, "parent": region.parent_id}
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changed:
        record(actor, "region.update", f"region:{region.id}", changed=changed)
    return region


def move_region(region: Region, actor, parent: Region | None) -> Region:
    """Move ``region`` (and everything below it) under ``parent``, keeping its name."""
    return update_region(region, actor, region.name, parent)


def _move(region: Region, parent: Region | None) -> None:
    old = region.path
    new = f"{parent.path if parent else '/'}{region.id}/"
    region.parent = parent
    db.session.flush()
    # One statement for the whole branch: the old prefix replaced by the new one.
    db.session.execute(
        update(Region).where(Region.path.startswith(old, autoescape=True))
        .values(path=literal(new) + func.substr(Region.path, len(old) + 1))
        .execution_options(synchronize_session=False))
    # Loaded regions of the branch read their new paths on next access.
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Region) and obj.path.startswith(old):
            db.session.expire(obj, ["path"])


def deactivate_region(region: Region, actor) -> list[int]:
    """Stop a region: it is no longer offered as a parent and its accounts are deactivated (their
    sessions end at once). Refused while an active region is below it, and for the actor's own region.
    Returns the ids of the accounts stopped (activation starts exactly those again)."""
    _require_manager(actor)
    if not region.active:
        raise DomainError(f"地区“{region.name}”已经是停用状态。")
    below = db.session.scalars(select(Region.name).where(
        Region.path.startswith(region.path, autoescape=True), Region.id != region.id,
        Region.active.is_(True)).order_by(Region.sort_order, Region.code).limit(5)).all()
    if below:
        raise DomainError(f"地区“{region.name}”下还有启用的地区（{'、'.join(below)}），请先停用它们。")
    if actor is not None and actor.region_id == region.id:
        raise DomainError("不能停用自己所在的地区。")
    users = list(db.session.scalars(select(User).where(User.region_id == region.id, User.active.is_(True))))
    for user in users:
        user.active = False
        user.rotate_session_token()
    region.active = False
    db.session.flush()
    ids = [u.id for u in users]
    record(actor, "region.deactivate", f"region:{region.id}", users=ids)
    return ids


def activate_region(region: Region, actor) -> list[int]:
    """Start a stopped region again, and the accounts its deactivation stopped (read from that audit
    row: accounts stopped one by one before stay stopped). Returns their ids."""
    from ..models import AuditEvent

    _require_manager(actor)
    if region.active:
        raise DomainError(f"地区“{region.name}”已经是启用状态。")
    if region.parent is not None and not region.parent.active:
        raise DomainError(f"上级地区“{region.parent.name}”已停用，请先启用上级地区。")
    detail = db.session.scalar(select(AuditEvent.detail).where(
        AuditEvent.action == "region.deactivate", AuditEvent.target == f"region:{region.id}")
        .order_by(AuditEvent.id.desc()).limit(1)) or {}
    stopped = [int(i) for i in detail.get("users") or []]
    users = list(db.session.scalars(select(User).where(
        User.id.in_(stopped), User.region_id == region.id, User.active.is_(False)))) if stopped else []
    for user in users:
        if user.unit is None or user.unit.active:
            user.active = True
            user.rotate_session_token()
    region.active = True
    db.session.flush()
    ids = [u.id for u in users if u.active]
    record(actor, "region.activate", f"region:{region.id}", users=ids)
    return ids


def create_first_admin(actor, region: Region, username: str, name: str, email: str | None = None,
                       phone: str | None = None) -> tuple[User, str]:
    """An admin (管理员) of ``region`` named by a system administrator, with a one-time password
    (returned, shown once). The region's admin then manages its units and people."""
    from . import users as user_svc

    _require_manager(actor)
    if not region.active:
        raise DomainError(f"地区“{region.name}”已停用，不能为其添加管理员。")
    user, password = user_svc.create_user(actor, username, name, ["admin"], None, email, phone, region=region)
    record(actor, "region.first_admin", f"region:{region.id}", user=user.id, username=user.username)
    return user, password


def printed_name(region: Region) -> str:
    """The name a region's reports print by default: its own name, or with its parent's in front when
    another region has the same name (河北 has three 桥西区), so that the printed names stay apart."""
    shared = db.session.scalar(select(Region.id).where(Region.name == region.name, Region.id != region.id).limit(1))
    if shared is not None and region.parent is not None:
        return f"{region.parent.name}{region.name}"
    return region.name
