"""The one handler path (fazhi_flow/web/handler.py): permission gate, commit on success, rollback and a
Chinese message on refusal with what the user typed kept, refusals audited."""
from __future__ import annotations

import pytest
from flask import Blueprint, redirect, render_template_string, request
from sqlalchemy import func, select

from fazhi_flow import create_app
from fazhi_flow.errors import Conflict, DomainError, PermissionDenied
from fazhi_flow.extensions import db as _db
from fazhi_flow.models import AuditEvent, Unit
from fazhi_flow.testing import FreshUserClient, login
from fazhi_flow.web.handler import POLICY_ATTR, handler, on_refusal, public

PAGE = "{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}<input value='{{ typed }}'>"
FORM_PAGE = ("{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}"
             "<p class=problem>{{ problem }}</p><input value='{{ typed }}'>")


def _probe_blueprint():
    bp = Blueprint("handler_probe", __name__, url_prefix="/probe")

    def add_unit(code):
        _db.session.add(Unit(code=code, name=f"单位{code}", kind="government"))
        _db.session.flush()

    @bp.route("/ok", methods=["POST"])
    @handler("admin.manage")
    def ok():
        add_unit(request.form["code"])
        return "done"

    @bp.route("/refuse", methods=["POST"])
    @handler("admin.manage")
    def refuse():
        typed = request.form["code"]
        with on_refusal(lambda: render_template_string(PAGE, typed=typed)):
            add_unit(typed)
            raise DomainError("名称不符合要求，请修改后再保存。")
        return "unreachable"

    @bp.route("/conflict", methods=["POST"])
    @handler("admin.manage")
    def conflict():
        add_unit(request.form["code"])
        raise Conflict("内容已被他人修改。")

    @bp.route("/invalid", methods=["POST"])
    @handler("admin.manage")
    def invalid():
        add_unit(request.form["code"])
        return render_template_string(PAGE, typed=request.form["code"]), 400

    @bp.route("/forbidden", methods=["POST"])
    @handler("authenticated")
    def forbidden():
        add_unit(request.form["code"])
        raise PermissionDenied("只有本单位联络员可以编辑该材料。")

    @bp.route("/in-form", methods=["POST"])
    @handler("admin.manage")
    def in_form():
        """A page that shows the refusal itself (no flash), 409 for a conflict and 400 otherwise."""
        typed = request.form["code"]
        status = (lambda exc: 409 if isinstance(exc, Conflict) else 400)
        with on_refusal(lambda exc: render_template_string(FORM_PAGE, typed=typed, problem=exc.message),
                        status=status, flash=False):
            add_unit(typed)
            if request.form.get("stale"):
                raise Conflict("内容已被他人修改，请核对后再保存。")
            raise DomainError("单位名称不能为空。")
        return "unreachable"

    @bp.route("/fixed", methods=["POST"])
    @handler("admin.manage")
    def fixed():
        typed = request.form["code"]
        with on_refusal(lambda: render_template_string(PAGE, typed=typed), status=409):
            add_unit(typed)
            raise PermissionDenied("该单位已停用，不能再添加。")
        return "unreachable"

    @bp.route("/bounce", methods=["POST"])
    @handler("admin.manage")
    def bounce():
        with on_refusal(lambda: redirect("/probe/open", code=303), status=409):
            add_unit(request.form["code"])
            raise Conflict("内容已被他人修改。")
        return "unreachable"

    @bp.route("/gated")
    @handler("admin.manage", message="这里只对管理员开放。")
    def gated():
        return "管理"

    @bp.route("/open")
    @public
    def open_page():
        return "公开"

    return bp


@pytest.fixture()
def probe(db, app):
    probe_app = create_app("testing")
    probe_app.config.update(SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"])
    probe_app.register_blueprint(_probe_blueprint())
    with probe_app.app_context():
        yield probe_app
        _db.session.remove()


def _client(probe_app):
    return FreshUserClient(probe_app, probe_app.response_class, use_cookies=True)


def _units(code):
    _db.session.rollback()
    return _db.session.scalar(select(func.count()).select_from(Unit).where(Unit.code == code))


def _admin_client(probe, factory):
    admin = factory.user("admin", username="probe_admin")
    _db.session.commit()
    client = _client(probe)
    login(client, admin)
    return client


def test_success_commits(probe, factory):
    client = _admin_client(probe, factory)
    assert client.post("/probe/ok", data={"code": "ok1"}).status_code == 200
    assert _units("ok1") == 1


def test_refusal_rolls_back_and_shows_the_page_with_what_was_typed(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/refuse", data={"code": "typed-by-user"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "名称不符合要求，请修改后再保存。" in html
    assert "value='typed-by-user'" in html
    assert _units("typed-by-user") == 0


def test_conflict_without_page_goes_back_to_the_referrer_with_the_message(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/conflict", data={"code": "c1"}, headers={"Referer": "http://localhost/probe/open"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/probe/open")
    assert _units("c1") == 0
    follow = client.get("/probe/open")
    assert follow.status_code == 200
    with client.session_transaction() as session:
        assert ("error", "内容已被他人修改。") in session.get("_flashes", [])


def test_conflict_without_referrer_is_the_error_page_with_409(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/conflict", data={"code": "c2"})
    assert response.status_code == 409
    assert "内容已被他人修改。" in response.get_data(as_text=True)
    assert _units("c2") == 0


def test_error_status_response_rolls_back(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/invalid", data={"code": "bad1"})
    assert response.status_code == 400
    assert _units("bad1") == 0


def test_permission_refusal_inside_is_audited_and_rolled_back(probe, factory):
    user = factory.user("liaison", username="probe_liaison", unit=factory.unit())
    _db.session.commit()
    client = _client(probe)
    login(client, user)
    response = client.post("/probe/forbidden", data={"code": "f1"})
    assert response.status_code == 403
    assert _units("f1") == 0
    actions = list(_db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == user.id)))
    assert "refused.forbidden" in actions


def test_gate_sends_anonymous_to_login_and_others_get_403(probe, factory):
    anonymous = _client(probe)
    response = anonymous.post("/probe/ok", data={"code": "a1"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    user = factory.user("reviewer", username="probe_reviewer")
    _db.session.commit()
    client = _client(probe)
    login(client, user)
    assert client.post("/probe/ok", data={"code": "a2"}).status_code == 403
    assert _units("a1") == 0 and _units("a2") == 0
    assert anonymous.get("/probe/open").status_code == 200


def test_declarations_are_readable_and_unknown_actions_refused(probe):
    assert getattr(probe.view_functions["handler_probe.ok"], POLICY_ATTR) == "admin.manage"
    assert getattr(probe.view_functions["handler_probe.open_page"], POLICY_ATTR) == "public"
    with pytest.raises(KeyError):
        handler("no.such.action")


def test_refusal_shown_in_the_form_with_the_status_chosen_per_error(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/in-form", data={"code": "kept-1", "stale": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<p class=problem>内容已被他人修改，请核对后再保存。</p>" in html
    assert "value='kept-1'" in html
    assert "class=flash" not in html  # shown in the form, not flashed as well
    assert _units("kept-1") == 0

    response = client.post("/probe/in-form", data={"code": "kept-2"})
    assert response.status_code == 400
    assert "<p class=problem>单位名称不能为空。</p>" in response.get_data(as_text=True)
    assert _units("kept-2") == 0


def test_fixed_status_replaces_the_errors_own_and_a_403_is_still_audited(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/fixed", data={"code": "fx1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<p class=flash>该单位已停用，不能再添加。</p>" in html and "value='fx1'" in html
    assert _units("fx1") == 0
    messages = list(_db.session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "refused.forbidden")))
    assert any("该单位已停用" in str(m) for m in messages)


def test_a_redirect_keeps_its_own_status_and_the_message_is_flashed(probe, factory):
    client = _admin_client(probe, factory)
    response = client.post("/probe/bounce", data={"code": "b1"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/probe/open")
    assert _units("b1") == 0
    with client.session_transaction() as session:
        assert ("error", "内容已被他人修改。") in session.get("_flashes", [])


def test_gate_message_is_the_403_page_text(probe, factory):
    user = factory.user("reviewer", username="probe_gate_reviewer")
    _db.session.commit()
    client = _client(probe)
    login(client, user)
    response = client.get("/probe/gated")
    assert response.status_code == 403
    assert "这里只对管理员开放。" in response.get_data(as_text=True)
    assert getattr(probe.view_functions["handler_probe.gated"], POLICY_ATTR) == "admin.manage"
    assert _client(probe).get("/probe/gated").status_code == 302  # anonymous: to the login page


def test_the_last_commit_expires_nothing_only_when_the_session_ends_with_the_request(probe, factory):
    """A real server's request has a session of its own, dropped with it: expiring what it loaded at
    the last commit is wasted work. A session that outlives the request (a test's, around its requests)
    is expired as before, so what its holder reads afterwards comes from the database."""
    import threading

    from sqlalchemy import event

    client = _admin_client(probe, factory)
    expired, answers, made = [], [], []

    def note(_state, _keys):
        expired.append(1)

    def hold(target, _args, _kwargs):
        made.append(target)  # the session holds objects weakly: keep them to see what happens to them

    event.listen(Unit, "expire", note)
    event.listen(Unit, "init", hold)
    try:
        # A thread starts with no application context: the request pushes its own, as under gunicorn.
        worker = threading.Thread(target=lambda: answers.append(
            client.post("/probe/ok", data={"code": "own-session"}).status_code))
        worker.start()
        worker.join()
        assert answers == [200] and _units("own-session") == 1
        assert len(made) == 1 and expired == []
        # Inside the test's application context the request shares the test's session.
        assert client.post("/probe/ok", data={"code": "shared-session"}).status_code == 200
        assert _units("shared-session") == 1
        assert len(made) == 2 and expired
    finally:
        event.remove(Unit, "expire", note)
        event.remove(Unit, "init", hold)
