"""Helpers for the web tests: a client that reloads the user per request, login through the real form."""
import pytest

from fazhi_flow.testing import PASSWORD, FreshUserClient, login  # noqa: F401  (used by the tests here)


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
