"""Every route declares who may open it (``@handler("<action>")`` or ``@public``).

The check reads the real url_map of the application, so a route added without a declaration fails
here by name, before anybody can open it unchecked.
"""
from __future__ import annotations

from flask import Flask

from fazhi_flow import policy
from fazhi_flow.extensions import db as _db
from fazhi_flow.web.handler import POLICY_ATTR, PUBLIC, handler, public


def _served_by_flask(endpoint: str) -> bool:
    """Flask's own static file endpoints (the app's and each blueprint's) need no declaration."""
    return endpoint == "static" or endpoint.endswith(".static")


def declarations(app: Flask) -> dict[str, str | None]:
    """endpoint -> the declared action (None when the view declares none), for every routed endpoint."""
    found = {}
    for rule in app.url_map.iter_rules():
        if _served_by_flask(rule.endpoint):
            continue
        view = app.view_functions[rule.endpoint]
        found[rule.endpoint] = getattr(view, POLICY_ATTR, None)
    return found


def _describe(app: Flask, endpoints) -> str:
    rules = {}
    for rule in app.url_map.iter_rules():
        rules.setdefault(rule.endpoint, []).append(rule.rule)
    return "\n".join(f"  {e}  {' '.join(sorted(rules[e]))}" for e in sorted(endpoints))


def test_every_route_declares_its_permission(app):
    found = declarations(app)
    assert len(found) > 50, "the application registered fewer routes than expected"
    missing = [endpoint for endpoint, action in found.items() if action is None]
    assert not missing, (f"{len(missing)} route(s) declare no permission (@handler(...) or @public):\n"
                         + _describe(app, missing))


def test_every_declared_action_is_a_policy_rule(app):
    unknown = {e: a for e, a in declarations(app).items()
               if a is not None and a != PUBLIC and not policy.known_action(a)}
    assert not unknown, f"routes declare actions policy does not know: {unknown}"


def test_the_check_names_an_undeclared_route():
    """The enumeration itself: a bare view is reported, declared ones and static files are not."""
    probe = Flask(__name__, static_folder=None)
    probe.add_url_rule("/static/<path:filename>", endpoint="static", view_func=lambda filename: "")
    probe.add_url_rule("/open", "open", public(lambda: "ok"))
    probe.add_url_rule("/admin", "admin", handler("admin.manage")(lambda: "ok"))
    probe.add_url_rule("/bare", "bare", lambda: "ok")

    found = declarations(probe)

    assert found == {"open": PUBLIC, "admin": "admin.manage", "bare": None}


def test_a_declaration_survives_decorators_above_it():
    """Views wrapped again above @handler (functools.wraps) still show their declaration."""
    import functools

    def outer(view):
        @functools.wraps(view)
        def run(*args, **kwargs):
            return view(*args, **kwargs)
        return run

    probe = Flask(__name__, static_folder=None)
    probe.add_url_rule("/wrapped", "wrapped", outer(handler("compile.view")(lambda: "ok")))

    assert declarations(probe) == {"wrapped": "compile.view"}


# Area pages whose gate is the area's own action (not "authenticated" with a check inside), with the
# Chinese text a logged-in user without it reads on the 403 page.
AREA_GATES = {
    "tasks.index": ("tasks.view", "“我的任务”只对各单位的联络员和单位负责人开放。"),
    "tasks.unit_queue": ("unit_queue.view", "“待单位审核”只对单位负责人开放。"),
    "tasks.unit_approve": ("unit_queue.view", "“待单位审核”只对单位负责人开放。"),
    "tasks.unit_return": ("unit_queue.view", "“待单位审核”只对单位负责人开放。"),
    "review.queue": ("review.queue", "“待审核”只对依法治区办的审核人开放。"),
    "review.approve": ("review.queue", "“待审核”只对依法治区办的审核人开放。"),
    "review.bulk": ("review.queue", "“待审核”只对依法治区办的审核人开放。"),
    "figures.definitions": ("admin.manage", "只有管理员可以定义统计指标和校验规则。"),
    "figures.summary": ("figures.cycle", "指标汇总只对依法治区办和签发领导开放。"),
    "figures.summary_xlsx": ("figures.cycle", "指标汇总只对依法治区办和签发领导开放。"),
    "compile.index": ("compile.view", "汇总签发只对管理员和签发领导开放。"),
}


def test_area_pages_declare_their_real_action(app):
    found = declarations(app)
    wrong = {e: (found.get(e), action) for e, (action, _) in AREA_GATES.items() if found.get(e) != action}
    assert not wrong, f"declared vs expected: {wrong}"


def test_area_gate_refuses_with_the_areas_own_text(app, world, as_user):
    """The other unit's liaison reaches none of these areas except 我的任务; each 403 says which area
    it is and who it is for, and nothing is written."""
    client = as_user(world.other_liaison)
    pages = [
        ("get", "/tasks/unit-queue", "“待单位审核”只对单位负责人开放。"),
        ("post", f"/tasks/{world.contribution.id}/unit-approve", "“待单位审核”只对单位负责人开放。"),
        ("get", "/review/", "“待审核”只对依法治区办的审核人开放。"),
        ("post", f"/review/{world.contribution.id}/approve", "“待审核”只对依法治区办的审核人开放。"),
        ("get", f"/figures/cycle/{world.cycle.id}/definitions", "只有管理员可以定义统计指标和校验规则。"),
        ("get", f"/figures/cycle/{world.cycle.id}/summary", "指标汇总只对依法治区办和签发领导开放。"),
        ("get", "/compile/", "汇总签发只对管理员和签发领导开放。"),
    ]
    for method, url, text in pages:
        response = getattr(client, method)(url)
        assert response.status_code == 403, url
        assert text in response.get_data(as_text=True), url
    assert client.get("/tasks/").status_code == 200
    reviewer = as_user(world.reviewer)
    response = reviewer.get("/tasks/")
    assert response.status_code == 403
    assert "“我的任务”只对各单位的联络员和单位负责人开放。" in response.get_data(as_text=True)
    _db.session.refresh(world.contribution)
    assert world.contribution.state == "draft"


def test_a_liaison_without_a_unit_is_refused_my_tasks(app, factory, as_user):
    """The gate's action (``tasks.view``) holds the unit condition, so the menu and the page agree."""
    loose = factory.user("liaison", username="no_unit_liaison")
    _db.session.commit()
    assert not policy.can(loose, "tasks.view")
    response = as_user(loose).get("/tasks/")
    assert response.status_code == 403
    assert "“我的任务”只对各单位的联络员和单位负责人开放。" in response.get_data(as_text=True)


def test_home_page_is_the_first_area_the_policy_opens(app, world, factory, as_user):
    """The landing redirect asks the policy, in the order admin, reviewer, unit head, liaison, leader;
    someone the policy opens no area to (a liaison without a unit) lands in the inbox."""
    loose = factory.user("liaison", username="home_no_unit")
    _db.session.commit()
    homes = {
        "admin": (world.admin, "/admin/"), "reviewer": (world.reviewer, "/review/"),
        "unit_head": (world.unit_head, "/tasks/unit-queue"), "liaison": (world.liaison, "/tasks/"),
        "leader": (world.leader, "/compile/"), "no unit": (loose, "/inbox/"),
    }
    for who, (user, where) in homes.items():
        assert as_user(user).get("/").headers["Location"] == where, who
