"""Who may do what: the one place that decides.

Routes (``@allow``), services, the CLI, templates (the ``can`` global) and any future API ask
``can(user, action, obj)`` or ``require(...)``; a region or a delegation later changes this module only.

Every decision about an object is first a decision about its region (``region_of``): a person acts only
on their own region's material. The one exception is the oversight role (督导), which reads
(``OVERSIGHT_READS``) the cycles, dashboards and publications of the regions below its own.

Actions are dotted names. Those without an object ask about a role (``compile.view``: may this person
open the compile area at all); those with one ask about that object (``contribution.edit``). A
contribution's workflow events are asked as ``contribution.<event>`` (``contribution.submit``), a
cycle's as ``cycle.<event>``. An unknown action is a programming error, not a "no".
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import PermissionDenied
from .workflow import states as S

RULES: dict[str, Callable] = {}

# Roles that see every unit's progress and figures side by side.
SEE_ALL_ROLES = ("admin", "leader", "reviewer")
# Cycle states in which the merged draft may be edited (a published one: for a correction), and in
# which a leader may sign.
DRAFT_EDITABLE_STATES = ("compiling", "published")
SIGNING_STATES = ("signoff", "correcting")
# Material in these states may still get a deadline extension.
EXTENDABLE_STATES = ("draft", "returned")


def logged_in(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False))


def rule(*actions: str):
    """Register the function deciding ``actions``: ``fn(user, obj) -> bool`` (user is logged in)."""

    def register(fn):
        for action in actions:
            if action in RULES:
                raise RuntimeError(f"two rules for {action!r}")
            RULES[action] = fn
        return fn

    return register


def can(user, action: str, obj=None) -> bool:
    """True when ``user`` may do ``action`` (to ``obj``). Anonymous users may do nothing here."""
    return acting_as(user, action, obj) is not None


def acting_as(user, action: str, obj=None):
    """Whose authority ``user`` does ``action`` (to ``obj``) with: ``user`` when they may themselves,
    else (委托) a delegator of theirs — seen with their delegable roles only — who may; None when
    nobody's. Services record a delegator returned here as "user 代 delegator"."""
    decide = RULES.get(action)
    if decide is None:
        prefix, _, event = action.partition(".")
        if prefix == "contribution" and event in S.CONTRIBUTION_EVENT_ACTORS:
            decide = _contribution_event
        elif prefix == "cycle" and event in S.CYCLE_EVENT_ACTORS:
            decide = _cycle_event
        else:
            raise KeyError(f"no policy rule for {action!r}")
    if not logged_in(user):
        return None
    if _decide(user, action, obj, decide):
        return user
    if action.startswith(NOT_DELEGATED_PREFIXES):
        return None
    return next((p.user for p in acting_for(user) if _decide(p, action, obj, decide)), None)


def _decide(user, action: str, obj, decide) -> bool:
    if obj is not None:
        region_id = region_of(obj)
        if region_id is not None and region_id != user.region_id:
            return action in OVERSIGHT_READS and oversees(user, region_id)
    if decide in (_contribution_event, _cycle_event):
        return decide(user, obj, action.partition(".")[2])
    return bool(decide(user, obj))


# ------------------------------------------------------------------ delegation (委托)

# The roles whose work may be delegated; an admin's, a system administrator's or an overseer's never.
DELEGABLE_ROLES = frozenset({"liaison", "unit_head", "reviewer", "leader"})
# Actions a substitute never takes for the delegator: delegating again (no chains) or managing them.
NOT_DELEGATED_PREFIXES = ("delegation.",)


class Principal:
    """The delegator as a substitute acts for them: their id, unit and region, but only their
    delegable roles, so that a delegator's admin role never passes to the substitute."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, delegator, roles, substitute):
        self.user = delegator
        self.substitute = substitute
        self.roles = set(roles) & DELEGABLE_ROLES

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def __getattr__(self, name):
        return getattr(self.user, name)


def acting_for(user) -> list[Principal]:
    """The people ``user`` now stands in for (active delegations to them, same region, active
    delegators), read once per request. A substitute's own substitutes are not asked: no chains."""
    if isinstance(user, Principal) or not logged_in(user):
        return []
    from .services.delegations import principals_of

    return principals_of(user)


def principal_for(user, contribution, event: str):
    """Whose authority ``user`` fires ``event`` with: ``user`` itself when the actor rule allows them,
    else (委托) a person who delegated their work to ``user`` and whom the rule allows; None when
    nobody's. The workflow records a principal other than the actor as "actor 代 principal"; a
    countersign approval (会签) counts as the principal's."""
    if contribution_actor_allowed(user, contribution, event):
        return user
    for principal in acting_for(user):
        if contribution_actor_allowed(principal, contribution, event):
            return principal.user
    return None


def _substitute_conflict(user, contribution) -> bool:
    """A substitute decides for a reviewer or unit head neither on their own unit's material (as a
    reviewer) nor on material they submitted themselves: the second pair of eyes stays a second."""
    if not isinstance(user, Principal):
        return False
    substitute = user.substitute
    if user.has_role("reviewer") and substitute.unit_id == contribution.unit_id:
        return True
    # A queue's stand-in row carries no id: the submitter is then checked when the decision is made.
    return getattr(contribution, "id", None) is not None and submitted_by(contribution) == substitute.id


def own_submission_refusal(user, contribution, event: str) -> str | None:
    """Why ``user`` may not decide, as reviewer or unit head, on material they submitted themselves
    (perhaps as a liaison's substitute, 委托, and deciding now in their own name): the second pair of
    eyes stays a second. A unit's own liaison who is also its unit head decides on their unit's
    material as before. Asked by the workflow when a decision is made (one statement), not by list
    pages: a page may still offer the button, and the click gets this answer."""
    kind = S.CONTRIBUTION_EVENT_ACTORS[event]
    if kind not in ("unit_head", "section_reviewer") or getattr(contribution, "id", None) is None:
        return None
    actor = user.substitute if isinstance(user, Principal) else user
    if not isinstance(user, Principal) and kind == "unit_head" and is_unit_liaison(actor, contribution.unit_id):
        return None
    if not actor.has_role("reviewer", "unit_head") and not isinstance(user, Principal):
        return None
    if submitted_by(contribution) != actor.id:
        return None
    return "这份材料是您提交的（代联络员提交的也算），不能由您审核或同意报送，请由其他人处理。"


def cycle_principal_for(user, cycle, event: str):
    """As ``principal_for`` for a cycle event (a leader's 签发 by their substitute)."""
    if cycle_actor_allowed(user, cycle, event):
        return user
    for principal in acting_for(user):
        if cycle_actor_allowed(principal, cycle, event):
            return principal.user
    return None


@rule("delegation.create")
def _create_delegation(user, delegator) -> bool:
    """A person with a delegable role names their own substitute; a region's admin names one for
    someone absent (the region gate in ``can`` keeps other regions' people out)."""
    if delegator is None:
        return bool(user.roles & DELEGABLE_ROLES) or user.has_role("admin")
    return user.has_role("admin") or delegator.id == user.id


@rule("delegation.revoke")
def _revoke_delegation(user, delegation) -> bool:
    """The delegator, whoever set it up, and the region's admins end a delegation early."""
    return user.has_role("admin") or user.id in (delegation.delegator_id, delegation.created_by_id)


@rule("delegation.view")
def _view_delegations(user, _obj) -> bool:
    """The 委托 page: anyone with a delegable role, anyone who may be a substitute, and admins."""
    return True


# What an oversight user may do to the objects of a region below its own: read, never write.
OVERSIGHT_READS = frozenset({"cycle.view", "cycle.oversee", "publication.view", "region.view"})


def region_of(obj) -> int | None:
    """The id of the region ``obj`` belongs to (a region is its own); None for objects of no region."""
    from .models import Region, ReportCycle, Unit, User

    if isinstance(obj, Region):
        return obj.id
    if isinstance(obj, (ReportCycle, Unit, User)):
        return obj.region_id
    for attr in ("cycle", "contribution", "assignment", "section", "unit", "delegator"):
        owner = getattr(obj, attr, None)
        if owner is not None:
            return region_of(owner)
    return None


def oversees(user, region) -> bool:
    """An oversight user (督导) over ``region`` (a Region or its id): strictly below the user's own."""
    from .extensions import db
    from .models import Region

    if not user.has_role("oversight"):
        return False
    if not isinstance(region, Region):
        region = db.session.get(Region, region)
    return region is not None and region.is_below(user.region)


def require(user, action: str, obj=None, message: str | None = None) -> None:
    """Raise PermissionDenied (shown as 403 with ``message``) unless ``can(user, action, obj)``."""
    if not can(user, action, obj):
        raise PermissionDenied(message or "您没有权限进行这项操作。")


def known_action(action: str) -> bool:
    prefix, _, event = action.partition(".")
    return action in RULES or (prefix == "contribution" and event in S.CONTRIBUTION_EVENT_ACTORS) or (
        prefix == "cycle" and event in S.CYCLE_EVENT_ACTORS)


# ------------------------------------------------------------------ areas (role-level)


@rule("authenticated")
def _authenticated(user, _obj) -> bool:
    return True


@rule("admin.manage")
def _admin(user, _obj) -> bool:
    return user.has_role("admin")


@rule("tasks.view")
def _tasks(user, _obj) -> bool:
    """我的任务: a unit's liaisons and unit heads (the page lists their unit's material)."""
    return user.has_role("liaison", "unit_head") and user.unit_id is not None


@rule("unit_queue.view")
def _unit_queue(user, _obj) -> bool:
    return user.has_role("unit_head") and user.unit_id is not None


@rule("tasks.write")
def _tasks_write(user, _obj) -> bool:
    """Writes a unit's material (the 我的任务 count of drafts to write): a liaison of a unit."""
    return user.has_role("liaison") and user.unit_id is not None


@rule("contribution.unit_review")
def _unit_review(user, contribution) -> bool:
    """The unit head's review page of their own unit's material (待单位审核)."""
    return user.has_role("unit_head") and user.unit_id == contribution.unit_id


@rule("review.queue")
def _review_queue(user, _obj) -> bool:
    return user.has_role("reviewer")


@rule("dashboard.view")
def _dashboard(user, _obj) -> bool:
    return user.has_role(*SEE_ALL_ROLES) or (user.has_role("liaison", "unit_head") and user.unit_id is not None)


@rule("dashboard.all_units", "figures.cycle", "figures.all_units")
def _all_units(user, _obj) -> bool:
    """The office (admins, reviewers) and leaders see every unit side by side."""
    return user.has_role(*SEE_ALL_ROLES)


@rule("compile.view", "cycle.read_draft", "contribution.read_all")
def _compile_view(user, _obj) -> bool:
    """Admins and leaders: the compile area, every draft, and every unit's material."""
    return user.has_role("admin", "leader")


@rule("extensions.mine")
def _my_extensions(user, _obj) -> bool:
    return user.has_role("liaison") and user.unit_id is not None


@rule("region.manage")
def _manage_regions(user, _obj) -> bool:
    """系统管理员: creates regions, sets their parents, names their first admins."""
    return user.has_role("sysadmin")


@rule("oversight.view")
def _oversight_view(user, _obj) -> bool:
    """督导: the oversight page listing the regions below."""
    return user.has_role("oversight")


@rule("region.view")
def _view_region(user, region) -> bool:
    """A region's own people, and its overseers (the region gate in ``can`` decides those)."""
    return True


@rule("cycle.view")
def _view_cycle(user, cycle) -> bool:
    """A cycle's progress (dashboard): its own region's people who see progress at all; overseers."""
    return _dashboard(user, None) or user.has_role("oversight")


@rule("cycle.oversee")
def _oversee_cycle(user, cycle) -> bool:
    """Oversight reads of a cycle (a region below, let in by the region gate in ``can``)."""
    return user.has_role("oversight")


@rule("publication.view")
def _view_publication(user, publication) -> bool:
    return True


# ------------------------------------------------------------------ contributions


def is_contribution_reviewer(user, contribution) -> bool:
    """May review this contribution: a reviewer named for the section (or any, when none is named),
    never one of its own unit. (待审核 keeps its rows under the figures tokens and
    ``pages.review._reviewer_key``: whatever this comes to read must be in one or the other.)"""
    if not user.has_role("reviewer") or user.unit_id == contribution.unit_id \
            or region_of(contribution) != user.region_id or _substitute_conflict(user, contribution):
        return False
    named = contribution.section.effective_reviewers()
    return not named or any(r.id == user.id for r in named)


# Facts read once for a page of contributions (``unit_decisions_read``); None outside such a block.
_READ: ContextVar[dict | None] = ContextVar("policy_unit_decisions_read", default=None)


@contextmanager
def unit_decisions_read(contributions):
    """Inside the block, whether the units of ``contributions`` have an active unit head and who
    submitted each of them are answered from two statements read here, not one per contribution
    (a list page asking ``can`` row by row). Only for reading: nothing in the block may change them."""
    from sqlalchemy import func, select

    from .extensions import db
    from .models import Revision

    contributions = list(contributions)
    unit_ids = {c.unit_id for c in contributions}
    ids = {c.id for c in contributions}
    headed = units_with_unit_head(unit_ids)
    latest = (select(Revision.contribution_id, func.max(Revision.number).label("number"))
              .where(Revision.contribution_id.in_(ids)).group_by(Revision.contribution_id).subquery())
    submitters = dict(db.session.execute(
        select(Revision.contribution_id, Revision.author_id).join(
            latest, (latest.c.contribution_id == Revision.contribution_id) & (latest.c.number == Revision.number))
    ).all()) if ids else {}
    token = _READ.set({"units": unit_ids, "headed": headed, "ids": ids, "submitters": submitters})
    try:
        yield
    finally:
        _READ.reset(token)


def units_with_unit_head(unit_ids) -> set[int]:
    """Of ``unit_ids``, those with an active unit head (单位负责人), in one statement."""
    from sqlalchemy import select

    from .extensions import db
    from .models import User, UserRole

    unit_ids = set(unit_ids)
    if not unit_ids:
        return set()
    return set(db.session.scalars(select(User.unit_id).where(
        User.unit_id.in_(unit_ids), User.active.is_(True), User.role_rows.any(UserRole.role == "unit_head"))))


def unit_has_unit_head(unit_id: int) -> bool:
    """Whether the unit has an active unit head (单位负责人)."""
    from sqlalchemy import exists, select

    from .extensions import db
    from .models import User, UserRole

    read = _READ.get()
    if read is not None and unit_id in read["units"]:
        return unit_id in read["headed"]
    return bool(db.session.scalar(select(exists().where(
        User.unit_id == unit_id, User.active.is_(True), User.role_rows.any(UserRole.role == "unit_head")))))


def submitted_by(contribution) -> int | None:
    """Who submitted the material as it now stands (the author of its latest revision)."""
    from sqlalchemy import select

    from .extensions import db
    from .models import Revision

    read = _READ.get()
    if read is not None and contribution.id in read["ids"]:
        return read["submitters"].get(contribution.id)
    return db.session.scalar(select(Revision.author_id).where(Revision.contribution_id == contribution.id)
                             .order_by(Revision.number.desc()).limit(1))


def _own_material(user, contribution) -> str | None:
    """Why ``user`` may not stand in for the unit head of this material: nobody decides on their own
    submission, nor on their own unit's material as its liaison (a second pair of eyes)."""
    if user.has_role("liaison") and user.unit_id == contribution.unit_id:
        return (f"您是{contribution.unit.name}的联络员，不能代单位负责人审核本单位的材料，"
                "请由其他管理员处理。")
    if submitted_by(contribution) == user.id:
        return "这份材料是您提交的，不能代单位负责人审核自己提交的材料，请由其他管理员处理。"
    return None


def acts_for_unit_head(user, contribution) -> bool:
    """An admin stands in for the unit head of a unit that has none active, so that material waiting
    in 待单位审核 is never stuck; the workflow logs the decision as made on the unit head's behalf.
    Never for material the admin submitted or writes as the unit's liaison (``_own_material``)."""
    return user.has_role("admin") and not (user.has_role("unit_head") and user.unit_id == contribution.unit_id) \
        and not unit_has_unit_head(contribution.unit_id) and _own_material(user, contribution) is None


def stand_in_refusal(user, contribution) -> str | None:
    """The refusal to show an admin who would stand in for a missing unit head but decides on their own
    material (see ``_own_material``); None when that is not why they may not."""
    if not user.has_role("admin") or unit_has_unit_head(contribution.unit_id):
        return None
    return _own_material(user, contribution)


def contribution_actor_allowed(user, contribution, event: str) -> bool:
    """The actor rule of a contribution event, whatever the states (the machine checks those).
    The workflow asks this directly, not through ``can``: the region is checked here too."""
    if region_of(contribution) != user.region_id:
        return False
    kind = S.CONTRIBUTION_EVENT_ACTORS[event]
    if kind == "unit_head" and _substitute_conflict(user, contribution):
        return False
    if kind in ("liaison", "unit_head"):
        if user.has_role(kind) and user.unit_id == contribution.unit_id:
            return True
        return kind == "unit_head" and acts_for_unit_head(user, contribution)
    if kind == "section_reviewer":
        return is_contribution_reviewer(user, contribution)
    return user.has_role(kind)


# ------------------------------------------------------------------ countersign (会签)


def countersign_required(contribution) -> list:
    """The reviewers who all have to approve the material (会签): in a section set to 'all', its
    effective named reviewers that are active and not of the contribution's own unit, read as they
    are now (one removed or deactivated while the material waits no longer holds it up; one added
    must approve too). Empty in 'any' mode or when nobody is named: one approval then decides."""
    section = contribution.section
    if section.review_mode != "all":
        return []
    return [u for u in section.effective_reviewers() if u.active and u.unit_id != contribution.unit_id]


def current_revision_number(contribution) -> int:
    """The number of the revision under review (each 提交审核 makes one); 0 before any."""
    from sqlalchemy import func, select

    from .extensions import db
    from .models import Revision

    # Revisions a page loaded already answer without a statement (a queue asks this row by row).
    loaded = contribution.__dict__.get("revisions")
    if loaded is not None:
        return max((r.number for r in loaded), default=0)
    return db.session.scalar(select(func.coalesce(func.max(Revision.number), 0))
                             .where(Revision.contribution_id == contribution.id))


def countersign_approvals(contribution) -> list:
    """The approvals (ContributionApproval) given to the revision under review, oldest first;
    approvals of an earlier revision (before a return or a recall) do not count."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from .extensions import db
    from .models import ContributionApproval as A

    return list(db.session.scalars(
        select(A).where(A.contribution_id == contribution.id,
                        A.revision_number == current_revision_number(contribution))
        .options(selectinload(A.reviewer), selectinload(A.actor)).order_by(A.created_at, A.id)))


def pending_approvers(contribution, approved_ids=None) -> list:
    """The required reviewers (``countersign_required``) who have not approved the revision under
    review; ``approved_ids`` when the caller has read the approvals already."""
    required = countersign_required(contribution)
    if not required:
        return []
    if approved_ids is None:
        approved_ids = {a.reviewer_id for a in countersign_approvals(contribution)}
    return [u for u in required if u.id not in approved_ids]


def countersign_principal(user, contribution, given=None):
    """Whose approval ``user``'s click gives in a countersign: their own while it is still wanted,
    else that of a reviewer who delegated to them (委托) whose approval is still wanted; otherwise as
    ``principal_for``. ``given``: the reviewer ids that approved, when the caller read them."""
    if given is None:
        given = {a.reviewer_id for a in countersign_approvals(contribution)}
    for person in (user, *acting_for(user)):
        if person.id not in given and contribution_actor_allowed(person, contribution, "approve"):
            return person.user if isinstance(person, Principal) else person
    return principal_for(user, contribution, "approve")


def countersign_refusal(user, contribution) -> str | None:
    """Why ``user`` may not approve the material again: whose approval they give (themselves, or who
    delegated to them) has approved this revision already and others are still pending. None
    otherwise; also when nobody is pending any more (a required reviewer was removed meanwhile):
    then an approval by one who gave theirs settles it, so that the material never hangs."""
    if principal_for(user, contribution, "approve") is None or not countersign_required(contribution):
        return None
    given = {a.reviewer_id for a in countersign_approvals(contribution)}
    principal = countersign_principal(user, contribution, given)
    if principal.id in given and pending_approvers(contribution, given):
        whose = "您" if principal.id == user.id else principal.name
        return (f"{whose}已会签同意这一版材料，正在等待其他审核人，不能重复同意；"
                "如果发现问题，可以退回修改。")
    if principal.id not in given and user.id in _approving_people(contribution):
        # 会签 means several people: one who approved this revision (in their own name or as a
        # substitute) does not give a second required approval in someone else's name.
        return (f"会签须由不同的人分别同意：您已同意过这一版材料，不能再代{principal.name}同意。"
                "请由其他人代理，或请管理员调整本章节的审核人。")
    return None


def _approving_people(contribution) -> set[int]:
    """The people who clicked an approval of the revision under review (会签), whoever's it counts as."""
    return {a.actor_id or a.reviewer_id for a in countersign_approvals(contribution)}


def cycle_actor_allowed(user, cycle, event: str) -> bool:
    if region_of(cycle) != user.region_id:
        return False
    return user.has_role(S.CYCLE_EVENT_ACTORS[event])


def _contribution_event(user, contribution, event: str) -> bool:
    """The event is possible now (cycle collecting, state a source of it) and ``user`` may fire it."""
    if contribution.cycle.state != "collecting":
        return False
    sources = {src for row in S.CONTRIBUTION_TRANSITIONS if row["trigger"] == event for src in row["source"]}
    if not (contribution.state in sources and contribution_actor_allowed(user, contribution, event)):
        return False
    return event != "approve" or countersign_refusal(user, contribution) is None


def _cycle_event(user, cycle, event: str) -> bool:
    sources = {src for row in S.CYCLE_TRANSITIONS if row["trigger"] == event for src in row["source"]}
    return cycle.state in sources and cycle_actor_allowed(user, cycle, event)


@rule("contribution.view", "attachment.download_of")
def _view_contribution(user, contribution) -> bool:
    """The unit's own people, the section's reviewers, admins and leaders."""
    if user.has_role("admin", "leader"):
        return True
    if user.unit_id is not None and user.unit_id == contribution.unit_id:
        return True
    return is_contribution_reviewer(user, contribution)


@rule("contribution.edit", "contribution.attach", "figures.edit")
def _edit_contribution(user, contribution) -> bool:
    return (user.has_role("liaison") and user.unit_id == contribution.unit_id
            and contribution.state in ("draft", "returned") and contribution.cycle.state == "collecting")


@rule("contribution.review")
def _review(user, contribution) -> bool:
    return is_contribution_reviewer(user, contribution)


@rule("attachment.download")
def _download(user, attachment) -> bool:
    return _view_contribution(user, attachment.contribution)


@rule("figures.view")
def _view_figures(user, contribution) -> bool:
    """The unit's own people, admins, leaders and the section's reviewers read a unit's values."""
    return _view_contribution(user, contribution)


@rule("contribution.write")
def _write_contribution(user, contribution) -> bool:
    """The unit's liaison, whatever the states: the services refuse a wrong state with their own
    message (材料当前为…), so this only says whose material it is to write."""
    return user.has_role("liaison") and user.unit_id == contribution.unit_id


# ------------------------------------------------------------------ cycles


@rule("cycle.compile")
def _compile(user, _cycle) -> bool:
    return user.has_role("admin")


@rule("cycle.edit_draft")
def _edit_draft(user, cycle) -> bool:
    return user.has_role("admin") and cycle.state in DRAFT_EDITABLE_STATES


@rule("cycle.sign")
def _sign(user, cycle) -> bool:
    return user.has_role("leader") and cycle.state in SIGNING_STATES


@rule("assignment.request_extension")
def _request_extension(user, assignment) -> bool:
    contribution = assignment.contribution
    return (user.has_role("liaison") and user.unit_id == assignment.unit_id
            and assignment.section.cycle.state == "collecting"
            and (contribution is None or contribution.state in EXTENDABLE_STATES))


@rule("assignment.ask_extension")
def _ask_extension(user, assignment) -> bool:
    """The unit's liaison, whatever the states (the service names a wrong state in its message)."""
    return user.has_role("liaison") and user.unit_id == assignment.unit_id


@rule("extension.withdraw")
def _withdraw_extension(user, request) -> bool:
    """Only the person who asked withdraws a request."""
    return request.requested_by_id == user.id


# ------------------------------------------------------------------ accounts and their roles


@rule("user.manage")
def _manage_user(user, target) -> bool:
    """A region's admin manages its accounts (the region gate in ``can`` keeps other regions out); a
    system administrator's account only another system administrator (a reset would hand it over)."""
    if target is not None and target.has_role("sysadmin"):
        return user.has_role("sysadmin")
    return user.has_role("admin")


@rule("user.grant_sysadmin")
def _grant_sysadmin(user, _obj) -> bool:
    """Granting or taking away 系统管理员: a system administrator only."""
    return user.has_role("sysadmin")


# ------------------------------------------------------------------ sign-in methods


def password_login_allowed(user) -> bool:
    """Whether the local password may log ``user`` in (the login form's own check; LDAP is another
    matter): not for an account an administrator has sent to single sign-on (统一身份认证) only."""
    return not user.password_login_disabled


@rule("password.change")
def _change_password(user, _obj) -> bool:
    """The password-change page: a person with a local password to use. A password is one's own:
    a substitute (委托) never gets the page through the person they stand in for."""
    return not isinstance(user, Principal) and password_login_allowed(user)


# ------------------------------------------------------------------ recipients (notify)


def is_unit_liaison(user, unit_id: int) -> bool:
    """A liaison of ``unit_id``: writes its material, so never stands in for its unit head (the
    admins told of material waiting in 待单位审核 leave such a person out)."""
    return user.has_role("liaison") and user.unit_id == unit_id


@rule("api_token.manage")
def _manage_api_token(user, owner) -> bool:
    """Personal access tokens (个人访问令牌): each person makes and revokes their own, nobody another's."""
    return owner is not None and owner.id == user.id


@rule("audit.view")
def _view_audit(user, _obj) -> bool:
    """The audit page: a region's admins (their region's trail) and system administrators (region
    management); which rows each sees is the page's scope."""
    return user.has_role("admin", "sysadmin")


# ------------------------------------------------------------------ search scopes (SQL)
# The rules above, written as WHERE clauses so that the search (fazhi_flow/services/search.py) filters
# in the database instead of loading rows to ask ``can`` one by one. tests/web/test_search.py checks
# them against ``can`` row by row; a change to a rule above changes its clause here too.


@rule("search.people_all")
def _search_people_all(user, _obj) -> bool:
    """The search lists every person of the region (names and usernames): the region's admins, who
    manage those accounts; everyone else finds only the people of their own unit."""
    return user.has_role("admin")


def contribution_view_clause(user):
    """SQL condition on ``Contribution``: the rows ``can(user, "contribution.view", c)`` allows."""
    from sqlalchemy import and_, false, or_, select

    from .models import Contribution, ReportCycle

    if not logged_in(user):
        return false()
    in_region = Contribution.cycle_id.in_(select(ReportCycle.id).where(ReportCycle.region_id == user.region_id))
    # The person themselves, then (委托) those they stand in for, seen with their delegable roles, as
    # ``can`` falls back to them.
    ways = []
    for person in (user, *acting_for(user)):
        if person.has_role("admin", "leader"):
            return in_region
        if person.unit_id is not None:
            ways.append(Contribution.unit_id == person.unit_id)
        if person.has_role("reviewer"):
            # The rule's "not their own unit" needs no term here: they see that unit's material as its
            # member (a substitute reviewing for another sees their own unit's material as its member).
            ways.append(Contribution.section_id.in_(_sections_reviewable_by(person)))
    return and_(in_region, or_(*ways)) if ways else false()


def _sections_reviewable_by(user):
    """SELECT of the ids of the user's region's sections whose effective reviewers (``effective_reviewers``:
    the nearest section up the tree naming any) include ``user``, or name nobody."""
    from sqlalchemy import exists, or_, select

    from .models import ReportCycle, Section, section_reviewer

    sec = Section.__table__
    sr = section_reviewer
    # Walk up from every section of the region, stopping at the first node that names reviewers.
    region_cycles = select(ReportCycle.id).where(ReportCycle.region_id == user.region_id)
    chain = (select(sec.c.id.label("section_id"), sec.c.id.label("node_id"), sec.c.parent_id.label("up_id"))
             .where(sec.c.cycle_id.in_(region_cycles))
             .cte("reviewer_chain", recursive=True))
    up = sec.alias("up_section")
    chain = chain.union_all(
        select(chain.c.section_id, up.c.id, up.c.parent_id)
        .where(up.c.id == chain.c.up_id, ~exists().where(sr.c.section_id == chain.c.node_id)))
    named, mine = chain.alias("named_node"), chain.alias("my_node")
    return select(sec.c.id).where(sec.c.cycle_id.in_(region_cycles), or_(
        ~exists().where(named.c.section_id == sec.c.id,
                        exists().where(sr.c.section_id == named.c.node_id)),
        exists().where(mine.c.section_id == sec.c.id,
                       exists().where(sr.c.section_id == mine.c.node_id, sr.c.user_id == user.id))))


def people_search_clause(user):
    """SQL condition on ``User``: whom the search may show — the region's people for its admins
    (``search.people_all``), else the people of the user's own unit; nobody without a unit."""
    from sqlalchemy import and_, false

    from .models import User

    if not logged_in(user):
        return false()
    if can(user, "search.people_all"):
        return User.region_id == user.region_id
    if user.unit_id is None:
        return false()
    return and_(User.region_id == user.region_id, User.unit_id == user.unit_id)


def publication_search_clause(user):
    """SQL condition on ``ReportCycle`` (of a publication): the user's own region, and for an
    oversight user (督导) the regions below it (as ``publication.view`` through the region gate)."""
    from sqlalchemy import false, or_, select

    from .models import Region, ReportCycle

    if not logged_in(user):
        return false()
    own = ReportCycle.region_id == user.region_id
    path = user.region.path if user.region is not None else ""
    if not (user.has_role("oversight") and path):
        return own
    below = select(Region.id).where(Region.path.startswith(path, autoescape=True), Region.id != user.region_id)
    return or_(own, ReportCycle.region_id.in_(below))
