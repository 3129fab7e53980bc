"""Support for the project's tests: a test client and a login through the real form.

Kept in the package (not in a conftest) so every test folder imports the same one.
"""
import threading
from contextlib import contextmanager

from flask import before_render_template, g, has_app_context, template_rendered
from flask.testing import FlaskClient
from sqlalchemy import event

from .errors import DomainError
from .extensions import db

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


def demo_client(app, username: str | None):
    """A client logged in as the demo account ``username`` (anonymous for None)."""
    from .services.demo import DEMO_PASSWORD

    client = FreshUserClient(app, app.response_class, use_cookies=True)
    if username:
        response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def race(app, is_postgres: bool, jobs) -> list:
    """Run each ``job(barrier)`` in its own thread, app context and database connection, as two
    requests would; return per job "ok" (committed) or the DomainError message (rolled back)."""
    # On PostgreSQL both threads read first and then write, the worst interleaving. On SQLite a
    # transaction takes the write lock at BEGIN IMMEDIATE, so a thread cannot hold a read open while
    # waiting: there they start together and queue on the lock.
    barrier = threading.Barrier(len(jobs), timeout=30)
    outcomes = [None] * len(jobs)

    def run(index, job):
        with app.app_context():
            try:
                if not is_postgres:
                    barrier.wait()
                job(barrier if is_postgres else None)
                db.session.commit()
                outcomes[index] = "ok"
            except DomainError as exc:
                db.session.rollback()
                outcomes[index] = exc.message
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


@contextmanager
def count_queries(engine):
    """The SQL statements ``engine`` runs inside the block (a list, filled as they run)."""
    statements = []

    def _count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _count)


class LazyLoadDuringRender(AssertionError):
    pass


@contextmanager
def no_lazy_loads_while_rendering(app, session):
    """Fail any relationship or expired-column load issued while a template renders."""
    rendering = []

    def started(sender, template, context, **extra):
        rendering.append(template.name)

    def finished(sender, template, context, **extra):
        rendering.pop()

    def check(orm_state):
        if rendering and (orm_state.is_relationship_load or orm_state.is_column_load):
            raise LazyLoadDuringRender(f"lazy load while rendering {rendering[-1]}: {orm_state.statement}")

    before_render_template.connect(started, app)
    template_rendered.connect(finished, app)
    event.listen(session, "do_orm_execute", check)
    try:
        yield
    finally:
        event.remove(session, "do_orm_execute", check)
        before_render_template.disconnect(started, app)
        template_rendered.disconnect(finished, app)


def finish_pdfs():
    """Commit, then run the PDF job as the scheduler would after a publish; returns its run (the
    publish request itself leaves the PDF pending)."""
    from .publish.pdf_job import render_pending_pdfs

    db.session.commit()
    return render_pending_pdfs()
