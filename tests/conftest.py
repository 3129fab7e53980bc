"""Fixtures: an app on SQLite (default) or PostgreSQL (FAZHI_TEST_DATABASE_URL), a client, factories.

On PostgreSQL each test run works in a private database created for it and dropped afterwards, so
parallel runs on one server don't collide.
"""
from __future__ import annotations

import functools
import os
import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fazhi_flow import create_app
from fazhi_flow.extensions import db as _db
from fazhi_flow.testing import PASSWORD, FreshUserClient, login

PG_URL_ENV = "FAZHI_TEST_DATABASE_URL"
_SESSION_APP: dict = {}  # the one app every test shares; other apps' engines are closed after each test
IN_CI = os.environ.get("CI", "").lower() == "true"


def _admin_engine(url):
    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    url = make_url(base)
    name = f"fazhi_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - report any connection failure the same way
        pytest.exit(f"{PG_URL_ENV} is set but PostgreSQL is unreachable: {exc}", returncode=3)
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    instance = tmp_path_factory.mktemp("instance")
    os.environ["FAZHI_INSTANCE_PATH"] = str(instance)
    # The engine is built inside create_app, so the URL must be known before it is called.
    os.environ["FAZHI_DATABASE_URL"] = database_url
    application = create_app("testing")
    application.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        UPLOAD_FOLDER=str(instance / "uploads"),
    )
    _SESSION_APP["app"] = application
    return application


@pytest.fixture(scope="session")
def _schema(app):
    with app.app_context():
        _db.create_all()
    yield
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture()
def db(app, _schema):
    """The database, emptied after each test."""
    with app.app_context():
        yield _db
        _db.session.rollback()
        _db.session.remove()
        with _db.engine.begin() as conn:
            for table in reversed(_db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture()
def client(app, db):
    return FreshUserClient(app, app.response_class, use_cookies=True)


@pytest.fixture(autouse=True)
def _close_other_apps_engines():
    """Close the connections of apps a test builds for itself (``create_app`` with other settings).

    Left to the garbage collector, such a PostgreSQL connection is closed at some later moment with
    a ResourceWarning; warnings are errors here, so it fails whichever test happens to be running
    then (or the whole run at exit), never the test that leaked it.
    """
    yield
    for other, engines in list(_db._app_engines.items()):
        if other is not _SESSION_APP.get("app"):
            for engine in engines.values():
                engine.dispose()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


# ---------------------------------------------------------------- factories


DEFAULT_PASSWORD = PASSWORD


@functools.cache
def _default_hash():
    from werkzeug.security import generate_password_hash

    return generate_password_hash(DEFAULT_PASSWORD)


class Factory:
    """Small builders for the domain; each flushes and returns the object."""

    def __init__(self, db):
        self.db = db
        self._n = 0

    def _next(self):
        self._n += 1
        return self._n

    def unit(self, name=None, code=None, kind="government", parent=None):
        from fazhi_flow.models import Unit

        n = self._next()
        unit = Unit(code=code or f"u{n}", name=name or f"测试单位{n}", kind=kind, parent=parent)
        self.db.session.add(unit)
        self.db.session.flush()
        return unit

    def user(self, *roles, unit=None, username=None, name=None, password=None):
        password = password or DEFAULT_PASSWORD
        from fazhi_flow.models import User

        n = self._next()
        user = User(username=username or f"user{n}", name=name or f"用户{n}", unit=unit,
                    email=f"user{n}@example.test")
        user.set_roles(roles or ("liaison",))
        # Hashing is deliberately slow; reuse one hash of the default password across tests.
        if password == DEFAULT_PASSWORD:
            user.password_hash = _default_hash()
        else:
            user.set_password(password)
        self.db.session.add(user)
        self.db.session.flush()
        return user

    def cycle(self, state="setup", unit_head_review=False, year=2024, region=None):
        from fazhi_flow.models import ReportCycle

        n = self._next()
        cycle = ReportCycle(year=year, region=region or f"测试区{n}", title=f"{year}年法治政府建设年度报告",
                            due=date(year + 1, 1, 10), unit_head_review=unit_head_review,
                            issuers="中共测试区委员会\n测试区人民政府", issue_date=date(year + 1, 1, 6),
                            state=state)
        self.db.session.add(cycle)
        self.db.session.flush()
        return cycle

    def section(self, cycle, title="测试章节", parent=None, reviewers=(), position=None, **kw):
        from fazhi_flow.models import Section

        n = self._next()
        section = Section(cycle=cycle, parent=parent, code=kw.pop("code", f"s{n}"), title=title,
                          position=n if position is None else position, **kw)
        section.reviewers = list(reviewers)
        self.db.session.add(section)
        self.db.session.flush()
        return section

    def assignment(self, section, unit, role="lead", due=None):
        from fazhi_flow.models import Assignment

        assignment = Assignment(section=section, unit=unit, role=role, due=due)
        self.db.session.add(assignment)
        self.db.session.flush()
        return assignment

    def contribution(self, assignment, state="draft", body="本单位今年开展了依法行政培训3次。"):
        from fazhi_flow.models import Contribution

        section = assignment.section
        contribution = Contribution(assignment=assignment, cycle_id=section.cycle_id,
                                    section_id=section.id, unit_id=assignment.unit_id, body=body,
                                    state=state)
        self.db.session.add(contribution)
        self.db.session.flush()
        return contribution

    def world(self, state="collecting", unit_head_review=False, contribution_state="draft"):
        """One cycle, one section, two units, and a user of every role; returns a namespace."""
        from types import SimpleNamespace

        unit = self.unit("区司法局", code=f"sfj{self._next()}")
        other = self.unit("区市场监管局", code=f"scj{self._next()}")
        office = self.unit("区委依法治区办", code=f"yfzqb{self._next()}", kind="party")
        reviewer = self.user("reviewer", unit=office, name="审核人")
        cycle = self.cycle(state=state, unit_head_review=unit_head_review)
        section = self.section(cycle, "严格规范执法", reviewers=[reviewer])
        assignment = self.assignment(section, unit)
        contribution = self.contribution(assignment, state=contribution_state)
        return SimpleNamespace(
            cycle=cycle, section=section, unit=unit, other_unit=other, office=office,
            assignment=assignment, contribution=contribution, reviewer=reviewer,
            liaison=self.user("liaison", unit=unit, name="联络员"),
            other_liaison=self.user("liaison", unit=other, name="他单位联络员"),
            unit_head=self.user("unit_head", unit=unit, name="单位负责人"),
            admin=self.user("admin", unit=office, name="管理员"),
            leader=self.user("leader", unit=office, name="签发领导"),
            outsider_reviewer=self.user("reviewer", unit=office, name="其他审核人"),
            own_unit_reviewer=self.user("reviewer", unit=unit, name="本单位审核人"),
        )


@pytest.fixture()
def factory(db):
    return Factory(db)


@pytest.fixture()
def fresh_database_url(database_url, tmp_path):
    """An extra, empty database of the same kind as the test database (for migrations, the demo)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"{url.database}_x{uuid.uuid4().hex[:6]}"
    admin = _admin_engine(url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def is_postgres(database_url):
    return make_url(database_url).get_backend_name() == "postgresql"


# ---------------------------------------------------------------- CI: no silent skips

# Outside CI a missing browser, PDF renderer or database server skips with a reason. In CI the
# same skip is a failure: CI installs all of them, so a skip there means a check did not happen.
_CI_REQUIRED = ("chromium", "playwright", "pdftoppm", "weasyprint", "pango", "postgresql")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not IN_CI or not report.skipped:
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr).lower()
    on_postgres = bool(os.environ.get(PG_URL_ENV))
    mentions_postgres = "postgresql" in reason
    required = any(word in reason for word in _CI_REQUIRED if word != "postgresql")
    if required or (mentions_postgres and on_postgres):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where this must run: {reason}"


@pytest.fixture()
def world(factory, db):
    """``factory.world()``, committed."""
    w = factory.world()
    db.session.commit()
    return w


@pytest.fixture()
def as_user(client):
    """Log the shared client in as a user (logging out whoever it was)."""
    def _as(user):
        with client.session_transaction() as session:
            session.clear()
        login(client, user)
        return client

    return _as


@pytest.fixture()
def demo(app, db, monkeypatch):
    """The demo district (every account's password DEMO_PASSWORD); returns its cycle."""
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import org
    from fazhi_flow.services.demo import load_demo

    # The passwords' strength plays no part where this is used; a cheap hash keeps many logins fast.
    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    cycle, _, _ = load_demo()
    return cycle


# ---------------------------------------------------------------- one browser for the whole run


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, shared by every browser test of the run (tests/browser,
    tests/api, tests/sso): Playwright's sync API allows one running instance per thread, so a second
    one started while this is alive fails ("Sync API inside the asyncio loop")."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import ARGS, CHROMIUM

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()
