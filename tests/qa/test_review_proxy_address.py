"""Behind the reverse proxy of the documented deployment (nginx → gunicorn on 127.0.0.1), every
request comes from 127.0.0.1. Without trusting the proxy's X-Forwarded-For, the per-address login
throttle is one counter for the whole site: a few dozen wrong passwords from anybody block every
user's login for up to 15 minutes, and the audit trail records 127.0.0.1 for everybody.
"""
import pytest
from flask import request

from fazhi_flow import create_app
from fazhi_flow.extensions import db as _db
from fazhi_flow.services import login_throttle
from fazhi_flow.testing import PASSWORD, FreshUserClient


@pytest.fixture()
def proxied_app(app, db, monkeypatch):
    monkeypatch.setenv("FAZHI_TRUSTED_PROXIES", "1")
    application = create_app("testing")
    application.config.update(UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"])

    @application.route("/_address")
    def _address():
        return request.remote_addr

    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_the_nginx_recipe_trusts_one_proxy(monkeypatch, tmp_path):
    # Production trusts no proxy by default; the documented nginx deployment sets it.
    monkeypatch.setenv("FAZHI_TRUSTED_PROXIES", "1")
    monkeypatch.setenv("FAZHI_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("FAZHI_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    assert create_app("production").config["TRUSTED_PROXIES"] == 1


def test_the_client_address_comes_from_the_proxy(proxied_app):
    client = FreshUserClient(proxied_app, proxied_app.response_class)
    response = client.get("/_address", headers={"X-Forwarded-For": "10.1.2.3"},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.get_data(as_text=True) == "10.1.2.3"


def test_one_guesser_does_not_block_everybody_behind_the_proxy(proxied_app, world, db):
    username = world.liaison.username
    db.session.rollback()  # the other app writes to the same database (SQLite: one writer)
    guesser = FreshUserClient(proxied_app, proxied_app.response_class)
    for n in range(login_throttle.POLICIES["ip"].free + 3):
        guesser.post("/login", data={"username": f"nobody{n}", "password": "guess"},
                     headers={"X-Forwarded-For": "10.9.9.9"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    user = FreshUserClient(proxied_app, proxied_app.response_class)
    response = user.post("/login", data={"username": username, "password": PASSWORD},
                         headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 302
