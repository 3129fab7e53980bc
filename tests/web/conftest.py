"""Helpers for the web tests: a client that reloads the user per request, login through the real form."""
import pytest
from flask import g, has_app_context
from flask.testing import FlaskClient

PASSWORD = "secret-Pass1"


class FreshUserClient(FlaskClient):
    """The ``db`` fixture keeps one app context for the whole test, so ``g`` (where Flask-Login caches
    the current user) would survive between requests; drop the cache so every request loads the user
    from its own cookie, as in production."""

    def open(self, *args, **kwargs):
        if has_app_context():
            g.pop("_login_user", None)
        return super().open(*args, **kwargs)


def login(client, user, password=PASSWORD):
    response = client.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def dispose(application) -> None:
    """Close the database connections of an extra app (else they are garbage-collected open)."""
    from fazhi_flow.extensions import db as _db

    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture()
def extra_app(app, db):
    """Build more apps on the test database (e.g. with other settings); closed after the test."""
    from fazhi_flow import create_app

    made = []

    def _make(**settings):
        application = create_app("testing")
        application.config.update(UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"], **settings)
        made.append(application)
        return application

    yield _make
    for application in made:
        dispose(application)


@pytest.fixture()
def csrf_app(extra_app):
    """An app with CSRF protection on, as in production."""
    return extra_app(WTF_CSRF_ENABLED=True)


@pytest.fixture()
def client(app, db):
    return FreshUserClient(app, app.response_class, use_cookies=True)


@pytest.fixture()
def world(factory, db):
    w = factory.world()
    db.session.commit()
    return w


@pytest.fixture()
def as_user(client):
    def _as(user):
        with client.session_transaction() as session:
            session.clear()
        login(client, user)
        return client

    return _as
