"""Every route declares who may open it (``@handler("<action>")`` or ``@public``).

The check reads the real url_map of the application, so a route added without a declaration fails
here by name, before anybody can open it unchecked.
"""
from __future__ import annotations

from flask import Flask

from fazhi_flow import policy
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
