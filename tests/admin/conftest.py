"""Fixtures of the admin tests: an office admin logged in through the real login form."""
from types import SimpleNamespace

import pytest

from fazhi_flow import testing
from fazhi_flow.testing import PASSWORD, FreshUserClient  # noqa: F401  (used by the tests here)


def login(client, user, password=PASSWORD):
    """Log in through the form and return the client, ready for the next request."""
    testing.login(client, user, password)
    return client


@pytest.fixture()
def new_client(app, db):
    return lambda: FreshUserClient(app, app.response_class, use_cookies=True)


@pytest.fixture()
def office(factory, db):
    """An admin, a cycle in setup with two sections, three units, a liaison and a reviewer."""
    office = factory.unit("区委依法治区办", code="yfzqb", kind="party")
    units = [factory.unit("区司法局", code="sfj"), factory.unit("区市场监管局", code="scjgj"),
             factory.unit("某某镇", code="mmz", kind="township")]
    admin = factory.user("admin", unit=office, username="admin1", name="管理员甲")
    reviewer = factory.user("reviewer", unit=office, username="shenhe1", name="审核人甲")
    liaison = factory.user("liaison", unit=units[0], username="sfj_ll", name="联络员甲")
    cycle = factory.cycle(state="setup", region="某某区")
    top = factory.section(cycle, "主要举措和成效", code="measures", position=0)
    leaf = factory.section(cycle, "严格规范执法", parent=top, code="enforce", position=0)
    db.session.commit()
    return SimpleNamespace(office=office, units=units, admin=admin, reviewer=reviewer, liaison=liaison,
                           cycle=cycle, top=top, leaf=leaf)


@pytest.fixture()
def client(new_client):
    return new_client()


@pytest.fixture()
def admin_client(client, office):
    return login(client, office.admin)


@pytest.fixture()
def csrf_on(app):
    """Turn CSRF protection on for one test (the testing config has it off)."""
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False
