"""委托: a liaison, unit head, reviewer or leader names a substitute for a period.

While a delegation is active (started, not ended, not revoked: no job ends it) the substitute sees
and acts on the delegator's work; ``policy.can`` asks ``principals_of`` for whom a person stands in,
and the workflow and the audit trail record each such action as "substitute 代 delegator".
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import policy
from ..errors import DomainError, PermissionDenied
from ..extensions import db
from ..models import Delegation, User, UserRole
from ..timeutil import cn_datetime_text, local_zone, utcnow
from . import audit

MAX_DAYS = 90
REASON_MAX = 200
ROLE_LABELS = {"liaison": "联络员", "unit_head": "单位负责人", "reviewer": "审核人", "leader": "领导"}
_CACHE_ATTR = "_fazhi_principals"


def active_clause(now: datetime | None = None):
    """SQL condition on ``Delegation``: in force at ``now`` (default: this moment)."""
    now = now or utcnow()
    return (Delegation.starts_at <= now) & (Delegation.ends_at > now) & Delegation.revoked_at.is_(None)


def any_delegation_to(user_id):
    """SQL: whether a delegation to ``user_id`` is in force (a column the login's user query carries;
    looser than ``principals_of``, which also asks that the delegator be active and of the region)."""
    return select(Delegation.id).where(Delegation.substitute_id == user_id, active_clause()).exists()


def no_principals_this_request(user) -> None:
    """Record that ``user`` stands in for nobody during this request (no delegation is in force)."""
    if has_request_context():
        cache = getattr(request, _CACHE_ATTR, None)
        if cache is None:
            cache = {}
            setattr(request, _CACHE_ATTR, cache)
        cache[user.id] = []


def principals_of(user) -> list[policy.Principal]:
    """Whom ``user`` now stands in for, as ``policy.Principal`` views (delegable roles only); two
    statements, read once per request (kept on the request object: ``g`` may outlive a request)."""
    cache = getattr(request, _CACHE_ATTR, None) if has_request_context() else None
    if cache is not None and user.id in cache:
        return cache[user.id]
    rows = list(db.session.scalars(
        select(Delegation).join(User, Delegation.delegator_id == User.id)
        .where(Delegation.substitute_id == user.id, active_clause(), User.active.is_(True),
               User.region_id == user.region_id)
        .options(joinedload(Delegation.delegator).joinedload(User.unit))
        .order_by(Delegation.starts_at, Delegation.id)))
    roles: dict[int, set[str]] = {}
    if rows:
        for uid, role in db.session.execute(select(UserRole.user_id, UserRole.role).where(
                UserRole.user_id.in_({d.delegator_id for d in rows}))):
            roles.setdefault(uid, set()).add(role)
    found = [policy.Principal(d.delegator, roles.get(d.delegator_id, set()), user) for d in rows]
    found = [p for p in found if p.roles]
    if has_request_context():
        if cache is None:
            cache = {}
            setattr(request, _CACHE_ATTR, cache)
        cache[user.id] = found
    return found


def substitutes_of(user_ids, now: datetime | None = None) -> dict[int, list[int]]:
    """Delegator id → the ids of their active substitutes (in one statement), for "reminders go to
    both": whoever is told of the delegator's work is told too."""
    user_ids = set(user_ids)
    if not user_ids:
        return {}
    found: dict[int, list[int]] = {}
    for delegator_id, substitute_id in db.session.execute(
            select(Delegation.delegator_id, Delegation.substitute_id)
            .where(Delegation.delegator_id.in_(user_ids), active_clause(now)).order_by(Delegation.id)):
        found.setdefault(delegator_id, []).append(substitute_id)
    return found


def with_substitutes(users) -> list:
    """``users`` followed by the active substitutes of each (active people, each once), in one or
    two statements: the recipients of a message about the delegators' work."""
    users = list(users)
    subs = substitutes_of(u.id for u in users)
    if not subs:
        return users
    wanted = {s for ids in subs.values() for s in ids} - {u.id for u in users}
    people = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_(wanted), User.active.is_(True)))} if wanted else {}
    result, seen = [], set()
    for user in users:
        for person in [user] + [people[s] for s in subs.get(user.id, []) if s in people]:
            if person.id not in seen:
                seen.add(person.id)
                result.append(person)
    return result


# ------------------------------------------------------------------ creating and revoking


@dataclass
class Period:
    starts_at: datetime  # naive UTC, as stored
    ends_at: datetime


def parse_local(text: str | None, label: str) -> datetime:
    """A form's Beijing time (``2025-01-31T09:00`` or ``2025-01-31 09:00``) as naive UTC."""
    value = (text or "").strip().replace(" ", "T")
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise DomainError(f"{label}格式不对，请写成 2025-01-31 09:00 的形式。") from None
    if local.tzinfo is not None:
        raise DomainError(f"{label}格式不对，请写成 2025-01-31 09:00 的形式。")
    return local.replace(tzinfo=local_zone()).astimezone(timezone.utc).replace(tzinfo=None)


def _check_period(period: Period, now: datetime) -> None:
    if period.ends_at <= period.starts_at:
        raise DomainError("结束时间必须晚于开始时间。")
    if period.ends_at <= now:
        raise DomainError("结束时间已经过去，请选择以后的时间。")
    if period.ends_at - period.starts_at > timedelta(days=MAX_DAYS):
        raise DomainError(f"委托期限最长{MAX_DAYS}天，请缩短期限。")
    if period.starts_at > now + timedelta(days=365):
        raise DomainError("开始时间不能晚于一年以后。")


def _check_people(delegator: User, substitute: User | None) -> None:
    if not (delegator.roles & policy.DELEGABLE_ROLES):
        raise DomainError(f"{delegator.name}没有可以委托的工作（只有联络员、单位负责人、审核人和领导可以委托）。")
    if not delegator.active:
        raise DomainError(f"{delegator.name}的账号已停用，不能设置委托。")
    if substitute is None or substitute.region_id != delegator.region_id:
        raise DomainError("请选择本地区的一位受托人。")
    if substitute.id == delegator.id:
        raise DomainError("不能委托给自己。")
    if not substitute.active:
        raise DomainError(f"{substitute.name}的账号已停用，不能作为受托人。")


def _check_overlap(delegator: User, period: Period) -> None:
    """One substitute at a time: no two delegations of one delegator in force at the same moment."""
    clash = db.session.scalar(
        select(Delegation).where(
            Delegation.delegator_id == delegator.id, Delegation.revoked_at.is_(None),
            Delegation.starts_at < period.ends_at, Delegation.ends_at > period.starts_at)
        .options(joinedload(Delegation.substitute)).limit(1))
    if clash is not None:
        raise DomainError(
            f"{delegator.name}在这段时间已委托给{clash.substitute.name}"
            f"（{cn_datetime_text(clash.starts_at)} 至 {cn_datetime_text(clash.ends_at)}），"
            "同一时间只能有一位受托人。请先撤销那项委托或另选时间。")


def lock_delegator(delegator: User) -> None:
    """Serialise the delegations of one person (two forms posted at once must not both pass the
    overlap check): a row lock on PostgreSQL; SQLite writes one transaction at a time anyway."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(User.id).where(User.id == delegator.id).with_for_update())


def create(actor: User, delegator: User, substitute: User | None, period: Period,
           reason: str | None = None) -> Delegation:
    """Name ``substitute`` for ``delegator`` (by the delegator, or an admin for someone absent);
    audited; both told in the app. :raise DomainError: with the reason in Chinese."""
    policy.require(actor, "delegation.create", delegator, "您只能为自己设置委托；管理员可以为本地区的人员设置。")
    if actor.id == delegator.id and not (actor.roles & policy.DELEGABLE_ROLES):
        raise PermissionDenied("只有联络员、单位负责人、审核人和领导可以委托自己的工作。")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > REASON_MAX:
        raise DomainError(f"事由最多{REASON_MAX}个字，现在是{len(reason)}个字。")
    now = utcnow()
    _check_people(delegator, substitute)
    _check_period(period, now)
    lock_delegator(delegator)
    _check_overlap(delegator, period)
    row = Delegation(delegator_id=delegator.id, substitute_id=substitute.id, starts_at=period.starts_at,
                     ends_at=period.ends_at, reason=reason, created_by_id=actor.id, created_at=now)
    db.session.add(row)
    db.session.flush()
    when = f"{cn_datetime_text(row.starts_at)} 至 {cn_datetime_text(row.ends_at)}"
    audit.record(actor, "delegation.create", target=f"{delegator.username} → {substitute.username}",
                 delegation=row.id, starts_at=row.starts_at.isoformat(), ends_at=row.ends_at.isoformat(),
                 **({"for_absent": True} if actor.id != delegator.id else {}))
    by = "" if actor.id == delegator.id else f"（由管理员{actor.name}设置）"
    _tell(delegator, "委托已设置", f"您的工作在{when}委托给{substitute.name}代为处理{by}。")
    _tell(substitute, f"{delegator.name}委托您代为处理工作",
          f"{when}，您可以代{delegator.name}处理其工作{by}。")
    return row


def revoke(actor: User, delegation: Delegation) -> None:
    """End ``delegation`` now (or drop one not yet started); audited; both told."""
    policy.require(actor, "delegation.revoke", delegation, "只有委托人本人或管理员可以撤销这项委托。")
    now = utcnow()
    if delegation.revoked_at is not None:
        raise DomainError("这项委托已经撤销了。")
    if delegation.ends_at <= now:
        raise DomainError("这项委托已经到期结束，不用撤销。")
    delegation.revoked_at = now
    delegation.revoked_by_id = actor.id
    audit.record(actor, "delegation.revoke",
                 target=f"{delegation.delegator.username} → {delegation.substitute.username}",
                 delegation=delegation.id)
    text = f"{delegation.delegator.name}委托{delegation.substitute.name}代为处理工作的委托已由{actor.name}撤销。"
    _tell(delegation.delegator, "委托已撤销", text)
    _tell(delegation.substitute, "委托已撤销", text)


def _tell(user: User, title: str, body: str) -> None:
    from ..notify import inapp

    inapp.notify(user, "delegation", title, body=body, link="/delegations/")


# ------------------------------------------------------------------ lists for the page


def given_by(user: User) -> list[Delegation]:
    """The delegations ``user`` made or that were made for them, current and recent first."""
    return _list(Delegation.delegator_id == user.id)


def given_to(user: User) -> list[Delegation]:
    return _list(Delegation.substitute_id == user.id)


def of_region(region_id: int) -> list[Delegation]:
    """Every delegation of the region's people that is in force or still to come (the admin's list)."""
    now = utcnow()
    return _list(Delegation.delegator_id.in_(select(User.id).where(User.region_id == region_id)),
                 Delegation.ends_at > now, Delegation.revoked_at.is_(None))


def _list(*conds) -> list[Delegation]:
    return list(db.session.scalars(
        select(Delegation).where(*conds)
        .options(joinedload(Delegation.delegator).joinedload(User.unit),
                 joinedload(Delegation.substitute).joinedload(User.unit),
                 joinedload(Delegation.created_by), joinedload(Delegation.revoked_by))
        .order_by(Delegation.ends_at.desc(), Delegation.id.desc()).limit(200)))


def status_of(delegation: Delegation, now: datetime | None = None) -> str:
    now = now or utcnow()
    if delegation.revoked_at is not None:
        return "已撤销"
    if delegation.ends_at <= now:
        return "已到期"
    if delegation.starts_at > now:
        return "未开始"
    return "生效中"


def candidates(region_id: int, exclude_id: int | None = None) -> list[User]:
    """The active people of the region who may be named as a substitute."""
    query = select(User).where(User.region_id == region_id, User.active.is_(True)).options(
        joinedload(User.unit)).order_by(User.unit_id.is_(None), User.unit_id, User.name, User.id)
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    return list(db.session.scalars(query))


def delegators_in_region(region_id: int) -> list[User]:
    """The active people of the region with a delegable role (an admin sets a delegation for them)."""
    return list(db.session.scalars(
        select(User).where(User.region_id == region_id, User.active.is_(True),
                           User.role_rows.any(UserRole.role.in_(policy.DELEGABLE_ROLES)))
        .options(joinedload(User.unit)).order_by(User.name, User.id)))


def is_active_now(delegation: Delegation) -> bool:
    return status_of(delegation) == "生效中"


__all__ = ["MAX_DAYS", "Period", "active_clause", "create", "principals_of", "revoke", "substitutes_of",
           "with_substitutes"]
