"""The REST API under /api/v1 (JSON; OpenAPI 3.1 at /api/v1/openapi.json, readable at /api/v1/docs)
and the page where a person makes and revokes personal access tokens (/account/tokens).

The API is reached with a token only: its requests are not CSRF-checked, and they neither read nor
write the login session, so a browser's session cannot be used from another site against the API.
"""
from __future__ import annotations

from flask import g, request
from flask.sessions import SessionInterface

from .registry import PREFIX


def is_api_request() -> bool:
    path = request.path
    return path == PREFIX or path.startswith(PREFIX + "/")


class _NoSessionForApi:
    """The app's session interface, except that API requests get an empty session that is never saved
    (not a subclass: whatever else the wrapped interface offers is reached through ``__getattr__``)."""

    def __init__(self, inner: SessionInterface):
        self.inner = inner

    def open_session(self, app, request_):
        if request_.path == PREFIX or request_.path.startswith(PREFIX + "/"):
            # A fresh session of the app's kind: usable (nothing fails writing to it), never saved.
            return getattr(self.inner, "session_class", dict)()
        return self.inner.open_session(app, request_)

    def save_session(self, app, session, response):
        if is_api_request():
            return None
        return self.inner.save_session(app, session, response)

    def make_null_session(self, app):
        return self.inner.make_null_session(app)

    def is_null_session(self, obj) -> bool:
        return self.inner.is_null_session(obj)

    def __getattr__(self, name):
        # Everything else (the signing serializer, the cookie's settings) is the wrapped interface's.
        return getattr(self.inner, name)


def _api_request_start():
    """Before any other guard: an API request has nobody logged in until its token says who, and an
    address the routing refused (an id no column holds, say) is answered as a problem, not a page."""
    if not is_api_request():
        return None
    from flask import current_app

    g._login_user = current_app.login_manager.anonymous_user()
    if request.method == "OPTIONS":
        return _options()
    refused = request.routing_exception
    if refused is None:
        return None
    from .problems import problem_response

    methods = sorted(getattr(refused, "valid_methods", None) or [])
    if getattr(refused, "code", None) == 405 and methods and _exists_for(methods):
        return problem_response(405, f"该地址不支持 {request.method[:10]} 请求，可用：{'、'.join(methods)}。",
                                headers={"Allow": ", ".join(methods)})
    return problem_response(404, "API 中没有这个地址。可用的地址见 /api/v1/openapi.json。")


def _options():
    """OPTIONS names what the path takes (Flask's own answer would add the catch-all's methods)."""
    from flask import Response

    from .problems import problem_response
    from .registry import allowed_methods

    allowed = allowed_methods()
    if not allowed:
        return problem_response(404, "API 中没有这个地址。可用的地址见 /api/v1/openapi.json。")
    return Response(status=204, headers={"Allow": ", ".join(allowed)})


def _exists_for(methods) -> bool:
    """Whether the path itself is served (for one of ``methods``): werkzeug reports 405 for an id its
    converter refused when another method's rule shares the path, though no id there would match."""
    from flask import current_app
    from werkzeug.exceptions import HTTPException

    adapter = current_app.url_map.bind_to_environ(request.environ)
    probe = next((m for m in methods if m not in ("HEAD", "OPTIONS")), methods[0])
    try:
        adapter.match(method=probe)
    except HTTPException:
        return False
    return True


def init_app(app) -> None:
    from ..extensions import csrf
    from . import contributions, cycles, openapi, publications, values  # noqa: F401 (register operations)
    from .account import bp as account_bp
    from .registry import bp

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(account_bp)
    app.session_interface = _NoSessionForApi(app.session_interface)
    app.before_request_funcs.setdefault(None, []).insert(0, _api_request_start)
