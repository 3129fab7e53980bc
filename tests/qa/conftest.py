"""Fixtures of the acceptance checks: the demo's users of each role, login through the real form."""
import pytest
from flask import g, has_app_context
from flask.testing import FlaskClient

PASSWORD = "secret-Pass1"


class FreshUserClient(FlaskClient):
    """Load the user from the cookie on every request (the test's app context outlives requests)."""

    def open(self, *args, **kwargs):
        if has_app_context():
            g.pop("_login_user", None)
        return super().open(*args, **kwargs)


def login(client, user, password=PASSWORD):
    response = client.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


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
