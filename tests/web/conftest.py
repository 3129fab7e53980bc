"""Helpers for the web tests: log a factory user in through the real login form."""
import pytest

PASSWORD = "secret-Pass1"


def login(client, user, password=PASSWORD):
    response = client.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


@pytest.fixture()
def world(factory, db):
    w = factory.world()
    db.session.commit()
    return w


@pytest.fixture()
def as_user(client):
    def _as(user):
        client.get("/")  # make sure a previous user's cookie does not matter
        with client.session_transaction() as session:
            session.clear()
        login(client, user)
        return client

    return _as
