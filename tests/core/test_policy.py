"""policy.can over every kind of person × action × contribution state × cycle state.

The expectations below are written out here from the rules as users know them (who edits, who
reviews, who signs, in which states), not computed by calling the application's functions, so a
change to a rule in ``fazhi_flow.policy`` shows up as a list of the cases that changed.
"""
from __future__ import annotations

import itertools

import pytest
from flask_login import AnonymousUserMixin

from fazhi_flow import policy
from fazhi_flow.errors import PermissionDenied
from fazhi_flow.workflow import states as S

CONTRIBUTION_STATES = ("draft", "unit_review", "submitted", "returned", "approved")
CYCLE_STATES = ("setup", "collecting", "compiling", "signoff", "signed", "published", "correcting")

# Every kind of person the rules tell apart.
ACTORS = (
    "liaison_own", "liaison_other", "liaison_no_unit", "unit_head_own", "unit_head_other",
    "reviewer_named", "reviewer_unnamed", "reviewer_own_unit", "admin", "leader", "anonymous",
)
OWN_UNIT = {"liaison_own", "unit_head_own", "reviewer_own_unit"}
REVIEWERS = {"reviewer_named", "reviewer_unnamed", "reviewer_own_unit"}
LOGGED_IN = set(ACTORS) - {"anonymous"}

# Sections: one naming reviewer_named, its child naming nobody (inherits), one naming nobody at all.
SECTIONS = ("named", "inherits", "open")


def section_reviewers(section: str) -> set[str]:
    """Who reviews material of the section: the named reviewer (also for a child section that names
    none), any reviewer when nobody is named up the tree, never a reviewer of the material's own unit."""
    return {"reviewer_named"} if section in ("named", "inherits") else {"reviewer_named", "reviewer_unnamed"}


# Contribution events: the states they start from and who fires them (cycle collecting only).
CONTRIBUTION_EVENTS = {
    "submit": ({"draft", "returned"}, lambda sec: {"liaison_own"}),
    "recall": ({"unit_review", "submitted"}, lambda sec: {"liaison_own"}),
    "unit_approve": ({"unit_review"}, lambda sec: {"unit_head_own"}),
    "unit_return": ({"unit_review"}, lambda sec: {"unit_head_own"}),
    "approve": ({"submitted"}, section_reviewers),
    "return": ({"submitted"}, section_reviewers),
    "reopen": ({"approved"}, lambda sec: {"admin"}),
}
# Cycle events: the states they start from and who fires them.
CYCLE_EVENTS = {
    "open": ({"setup"}, {"admin"}),
    "compile": ({"collecting"}, {"admin"}),
    "reopen_collection": ({"compiling"}, {"admin"}),
    "request_signoff": ({"compiling"}, {"admin"}),
    "sign": ({"signoff", "correcting"}, {"leader"}),
    "return": ({"signoff", "correcting"}, {"leader"}),
    "publish": ({"signed"}, {"admin"}),
    "request_correction": ({"published"}, {"admin"}),
}


def expected_contribution(action: str, actor: str, state: str, cycle_state: str, section: str) -> bool:
    if actor == "anonymous":
        return False
    editable = actor == "liaison_own" and state in ("draft", "returned") and cycle_state == "collecting"
    if action in ("contribution.view", "attachment.download", "figures.view"):
        return actor in {"admin", "leader"} | OWN_UNIT | section_reviewers(section)
    if action in ("contribution.edit", "contribution.attach", "figures.edit"):
        return editable
    if action == "contribution.write":
        return actor == "liaison_own"
    if action == "contribution.review":
        return actor in section_reviewers(section)
    event = action.removeprefix("contribution.")
    sources, actors = CONTRIBUTION_EVENTS[event]
    return cycle_state == "collecting" and state in sources and actor in actors(section)


def expected_cycle(action: str, actor: str, cycle_state: str) -> bool:
    if actor == "anonymous":
        return False
    if action == "cycle.compile":
        return actor == "admin"
    if action == "cycle.edit_draft":
        return actor == "admin" and cycle_state in ("compiling", "published")
    if action == "cycle.read_draft":
        return actor in ("admin", "leader")
    if action == "cycle.sign":
        return actor == "leader" and cycle_state in ("signoff", "correcting")
    sources, actors = CYCLE_EVENTS[action.removeprefix("cycle.")]
    return cycle_state in sources and actor in actors


# Questions without an object: which kinds of person may open which area.
EXPECTED_AREAS = {
    "authenticated": LOGGED_IN,
    "admin.manage": {"admin"},
    # 我的任务 lists the unit's material: a liaison without a unit has none (the page refuses it too).
    "tasks.view": {"liaison_own", "liaison_other", "unit_head_own", "unit_head_other"},
    "unit_queue.view": {"unit_head_own", "unit_head_other"},
    "review.queue": REVIEWERS,
    "dashboard.view": {"liaison_own", "liaison_other", "unit_head_own", "unit_head_other", "admin", "leader"}
    | REVIEWERS,
    "dashboard.all_units": {"admin", "leader"} | REVIEWERS,
    "figures.cycle": {"admin", "leader"} | REVIEWERS,
    "compile.view": {"admin", "leader"},
    "extensions.mine": {"liaison_own", "liaison_other"},
    # The 我的任务 count of drafts to write; every unit's figures; every unit's material (dashboard links).
    "tasks.write": {"liaison_own", "liaison_other"},
    "figures.all_units": {"admin", "leader"} | REVIEWERS,
    "contribution.read_all": {"admin", "leader"},
}

CONTRIBUTION_ACTIONS = (
    "contribution.view", "attachment.download", "figures.view", "contribution.edit", "contribution.attach",
    "figures.edit", "contribution.write", "contribution.review",
    *(f"contribution.{event}" for event in CONTRIBUTION_EVENTS),
)
CYCLE_ACTIONS = ("cycle.compile", "cycle.edit_draft", "cycle.read_draft", "cycle.sign",
                 *(f"cycle.{event}" for event in CYCLE_EVENTS))


@pytest.fixture()
def people(factory, db):
    """The cycle, its sections' contributions of one unit, and one person of every kind."""
    own, other = factory.unit("区司法局"), factory.unit("区市场监管局")
    office = factory.unit("区委依法治区办", kind="party")
    named = factory.user("reviewer", unit=office)
    cycle = factory.cycle(state="collecting")
    top = factory.section(cycle, "严格规范执法", reviewers=[named])
    sections = {"named": top, "inherits": factory.section(cycle, "行政处罚", parent=top),
                "open": factory.section(cycle, "普法宣传")}
    material = {key: factory.contribution(factory.assignment(section, own)) for key, section in sections.items()}
    bare_assignment = factory.assignment(factory.section(cycle, "其他工作"), own)
    actors = {
        "liaison_own": factory.user("liaison", unit=own),
        "liaison_other": factory.user("liaison", unit=other),
        "liaison_no_unit": factory.user("liaison"),
        "unit_head_own": factory.user("unit_head", unit=own),
        "unit_head_other": factory.user("unit_head", unit=other),
        "reviewer_named": named,
        "reviewer_unnamed": factory.user("reviewer", unit=office),
        "reviewer_own_unit": factory.user("reviewer", unit=own),
        "admin": factory.user("admin", unit=office),
        "leader": factory.user("leader", unit=office),
        "anonymous": AnonymousUserMixin(),
    }
    db.session.commit()
    return cycle, material, bare_assignment, actors


def _mismatches(cases):
    return [f"{label}: policy says {got}, expected {want}" for label, got, want in cases if got != want]


def test_the_table_covers_every_workflow_event():
    assert set(CONTRIBUTION_EVENTS) == set(S.CONTRIBUTION_EVENT_ACTORS)
    assert set(CYCLE_EVENTS) == set(S.CYCLE_EVENT_ACTORS)


def test_contribution_actions(people, db):
    cycle, material, _, actors = people
    cases = []
    with db.session.no_autoflush:  # states are tried in memory only
        for state, cycle_state in itertools.product(CONTRIBUTION_STATES, CYCLE_STATES):
            cycle.state = cycle_state
            for section, contribution in material.items():
                contribution.state = state
                attachment = _Attachment(contribution)
                for action, actor in itertools.product(CONTRIBUTION_ACTIONS, ACTORS):
                    obj = attachment if action == "attachment.download" else contribution
                    got = policy.can(actors[actor], action, obj)
                    want = expected_contribution(action, actor, state, cycle_state, section)
                    cases.append((f"{action} {actor} {section} {state}/{cycle_state}", got, want))
    assert len(cases) == len(CONTRIBUTION_STATES) * len(CYCLE_STATES) * 3 * len(CONTRIBUTION_ACTIONS) * 11
    assert not _mismatches(cases)


def test_cycle_actions(people, db):
    cycle, _, _, actors = people
    cases = []
    with db.session.no_autoflush:
        for cycle_state in CYCLE_STATES:
            cycle.state = cycle_state
            for action, actor in itertools.product(CYCLE_ACTIONS, ACTORS):
                got = policy.can(actors[actor], action, cycle)
                cases.append((f"{action} {actor} {cycle_state}", got, expected_cycle(action, actor, cycle_state)))
    assert not _mismatches(cases)


def test_areas(people):
    _, _, _, actors = people
    cases = [(f"{action} {actor}", policy.can(actors[actor], action), actor in allowed)
             for action, allowed in EXPECTED_AREAS.items() for actor in ACTORS]
    assert not _mismatches(cases)


def test_extension_requests(people, db):
    """The unit's liaison asks while collecting, before the material reaches the office."""
    cycle, material, bare, actors = people
    assignment = material["named"].assignment
    cases = []
    with db.session.no_autoflush:
        for state, cycle_state in itertools.product(CONTRIBUTION_STATES, CYCLE_STATES):
            cycle.state, material["named"].state = cycle_state, state
            for actor in ACTORS:
                ok = actor == "liaison_own" and cycle_state == "collecting"
                cases.append((f"request {actor} {state}/{cycle_state}",
                               policy.can(actors[actor], "assignment.request_extension", assignment),
                               ok and state in ("draft", "returned")))
                # An assignment whose material is not yet created (no contribution) may be extended too.
                cases.append((f"request {actor} (no material)/{cycle_state}",
                              policy.can(actors[actor], "assignment.request_extension", bare), ok))
                cases.append((f"ask {actor}", policy.can(actors[actor], "assignment.ask_extension", assignment),
                               actor == "liaison_own"))
    assert not _mismatches(cases)


def test_only_the_requester_withdraws(people):
    _, _, _, actors = people
    request = _Request(actors["liaison_own"].id)
    allowed = {actor for actor in ACTORS if policy.can(actors[actor], "extension.withdraw", request)}
    assert allowed == {"liaison_own"}


def test_service_and_template_names_give_the_same_answers(people, db):
    """The services' older names (can_*) are the policy's answers, case by case."""
    from fazhi_flow.services import compile as compile_svc
    from fazhi_flow.services import contributions, dashboard, figures, reminders

    cycle, material, _, actors = people
    contribution = material["open"]
    pairs = [
        (contributions.can_edit, "contribution.edit", contribution),
        (figures.can_view_figures, "figures.view", contribution),
        (figures.can_edit_figures, "figures.edit", contribution),
        (reminders.can_request_extension, "assignment.request_extension", contribution.assignment),
        (compile_svc.can_compile, "cycle.compile", cycle),
        (compile_svc.can_edit_draft, "cycle.edit_draft", cycle),
        (compile_svc.can_read_draft, "cycle.read_draft", cycle),
        (compile_svc.can_sign, "cycle.sign", cycle),
    ]
    cases = []
    with db.session.no_autoflush:
        for state, cycle_state in itertools.product(CONTRIBUTION_STATES, CYCLE_STATES):
            cycle.state, contribution.state = cycle_state, state
            for (fn, action, obj), actor in itertools.product(pairs, sorted(LOGGED_IN)):
                user = actors[actor]
                cases.append((f"{fn.__name__} {actor} {state}/{cycle_state}", fn(user, obj),
                               policy.can(user, action, obj)))
            for actor in LOGGED_IN:
                user = actors[actor]
                cases.append((f"dashboard {actor}", dashboard.can_view_dashboard(user),
                              policy.can(user, "dashboard.view")))
                cases.append((f"all units {actor}", dashboard.sees_all_units(user),
                              policy.can(user, "dashboard.all_units")))
                cases.append((f"cycle figures {actor}", figures.can_view_cycle_figures(user),
                              policy.can(user, "figures.cycle")))
    assert not _mismatches(cases)


def test_anonymous_may_do_nothing_and_unknown_actions_are_errors(people):
    _, material, _, actors = people
    anonymous = actors["anonymous"]
    assert not policy.can(anonymous, "authenticated")
    assert not policy.can(None, "contribution.view", material["open"])
    with pytest.raises(KeyError):
        policy.can(actors["admin"], "contribution.fly", material["open"])
    with pytest.raises(KeyError):
        policy.can(actors["admin"], "nothing")
    assert policy.known_action("contribution.submit") and policy.known_action("cycle.publish")
    assert not policy.known_action("contribution.publish") and not policy.known_action("cycle.submit")


def test_require_raises_with_the_message(people):
    cycle, _, _, actors = people
    with pytest.raises(PermissionDenied) as refused:
        policy.require(actors["leader"], "cycle.compile", cycle, "只有管理员可以汇总编辑年度报告。")
    assert refused.value.message == "只有管理员可以汇总编辑年度报告。" and refused.value.status == 403
    with pytest.raises(PermissionDenied) as refused:
        policy.require(actors["leader"], "admin.manage")
    assert refused.value.message == "您没有权限进行这项操作。"
    policy.require(actors["admin"], "cycle.compile", cycle)  # allowed: no error


class _Attachment:
    """What the download rule reads of an attachment: the material it belongs to."""

    def __init__(self, contribution):
        self.contribution = contribution


class _Request:
    def __init__(self, requested_by_id):
        self.requested_by_id = requested_by_id
