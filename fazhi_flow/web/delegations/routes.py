"""The 委托 page: 我委托的 (set, revoke), 委托给我的 (with links to the delegator's work) and, for a
region's admins, the delegations of everyone in the region (set for someone absent, revoke).

Every route runs as one unit of work (``@handler``); a refused form comes back with what was typed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from ... import policy
from ...errors import DomainError
from ...models import Delegation, User
from ...services import delegations as svc
from ...timeutil import to_local, utcnow
from ..fields import optional_int
from ..handler import handler, on_refusal
from ..own_region import get_own_or_404, row_or_none
from . import bp


@bp.app_template_filter("acted_by")
def acted_by(log) -> str:
    """Who did what a log or audit row records: "李四 代 张三" for a substitute's action (委托)."""
    actor = log.actor.name if log.actor is not None else ""
    if getattr(log, "on_behalf_of_id", None) and log.on_behalf_of is not None:
        return f"{actor} 代 {log.on_behalf_of.name}"
    return actor


@dataclass
class Typed:
    """What the form held (kept on a refusal: nothing typed is lost)."""

    delegator: str = ""
    substitute: str = ""
    starts_at: str = ""
    ends_at: str = ""
    reason: str = ""
    errors: list[str] = field(default_factory=list)


def _default_typed() -> Typed:
    now = to_local(utcnow()).replace(second=0, microsecond=0)
    return Typed(starts_at=f"{now:%Y-%m-%dT%H:%M}", ends_at="")


def _links(delegation: Delegation) -> list[tuple[str, str]]:
    """Where the substitute finds the delegator's work."""
    roles = delegation.delegator.roles
    links = []
    if roles & {"liaison", "unit_head"}:
        links.append(("我的任务（含代办单位的材料）", url_for("tasks.index")))
    if "unit_head" in roles:
        links.append(("待单位审核", url_for("tasks.unit_queue")))
    if "reviewer" in roles:
        links.append(("待审核", url_for("review.queue")))
    if "leader" in roles and "compile.index" in _endpoints():
        links.append(("汇总签发", url_for("compile.index")))
    return links


def _endpoints() -> set[str]:
    from flask import current_app

    return set(current_app.view_functions)


def _page(typed: Typed | None = None, status: int = 200):
    user = current_user
    is_admin = policy.can(user, "admin.manage")
    given = svc.given_by(user)
    received = svc.given_to(user)
    now = utcnow()
    return render_template(
        "delegations/index.html", typed=typed or _default_typed(), given=given, received=received,
        region_rows=svc.of_region(user.region_id) if is_admin else [],
        is_admin=is_admin, may_delegate=bool(user.roles & policy.DELEGABLE_ROLES),
        candidates=svc.candidates(user.region_id), delegators=svc.delegators_in_region(user.region_id)
        if is_admin else [], status_of=lambda d: svc.status_of(d, now), links=_links,
        max_days=svc.MAX_DAYS, reason_max=svc.REASON_MAX, role_labels=svc.ROLE_LABELS,
        can_revoke=lambda d: policy.can(user, "delegation.revoke", d) and d.revoked_at is None and d.ends_at > now,
    ), status


@bp.route("/")
@handler("delegation.view")
def index():
    return _page()


def _person(raw: str | None) -> User | None:
    """A person of the viewer's region by the id posted, or None (another region's is as missing)."""
    person = row_or_none(User, optional_int(raw))
    return person if person is not None and person.region_id == current_user.region_id else None


@bp.route("/new", methods=["POST"])
@handler("delegation.view")
def create():
    form = request.form
    typed = Typed(delegator=form.get("delegator", ""), substitute=form.get("substitute", ""),
                  starts_at=form.get("starts_at", ""), ends_at=form.get("ends_at", ""),
                  reason=form.get("reason", ""))
    with on_refusal(lambda error: _refused(typed, error), flash=False):
        delegator = current_user
        if typed.delegator and optional_int(typed.delegator) != current_user.id:
            delegator = _person(typed.delegator)
            if delegator is None:
                raise DomainError("请选择本地区的一位委托人。")
        period = svc.Period(svc.parse_local(typed.starts_at, "开始时间"), svc.parse_local(typed.ends_at, "结束时间"))
        row = svc.create(current_user, delegator, _person(typed.substitute), period, typed.reason)
    flash(Markup("已设置委托：{} 委托 {} 代为处理工作。").format(escape(row.delegator.name),
                                                              escape(row.substitute.name)), "success")
    return redirect(url_for(".index"), code=303)


def _refused(typed: Typed, error: DomainError):
    typed.errors = [error.message]
    return _page(typed, status=error.status)


@bp.route("/<int:delegation_id>/revoke", methods=["POST"])
@handler("delegation.view")
def revoke(delegation_id: int):
    delegation = get_own_or_404(Delegation, delegation_id)
    # Only the people a delegation concerns (and the region's admins) learn that it exists.
    if current_user.id not in (delegation.delegator_id, delegation.substitute_id, delegation.created_by_id) \
            and not policy.can(current_user, "admin.manage"):
        from flask import abort

        abort(404)
    svc.revoke(current_user, delegation)
    flash("委托已撤销。", "success")
    return redirect(url_for(".index"), code=303)
