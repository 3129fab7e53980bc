"""Support for the project's tests: a test client and a login through the real form.

Kept in the package (not in a conftest) so every test folder imports the same one.
"""
from flask import g, has_app_context
from flask.testing import FlaskClient

# The factories' default password (tests/conftest.py hashes it once).
PASSWORD = "secret-Pass1"


class FreshUserClient(FlaskClient):
    """A client whose requests load the user from their own cookie.

    In tests one app context spans the whole test and every request runs inside it, so ``g`` — where
    Flask-Login caches the current user — would outlive a request, and a second client would act as
    the first one's user. Dropping that cache makes each request behave as in production.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            g.pop("_login_user", None)
        return super().open(*args, **kwargs)


def login(client, user, password=PASSWORD):
    """Log ``user`` in through the login form; fail the test if that does not redirect."""
    response = client.post("/login", data={"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response
