"""Engine set-up: SQLite pragmas; IMMEDIATE transactions for writers, DEFERRED ones for page reads."""
import logging

from flask import g, has_app_context, has_request_context, request
from sqlalchemy import event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import scoped_session

logger = logging.getLogger(__name__)

# Requests with these methods only read (a handler that writes anyway says so: require_write_lock).
READ_METHODS = ("GET", "HEAD", "OPTIONS")
# Connection.info key: True while the connection's SQLite transaction began DEFERRED.
_DEFERRED = "fazhi_sqlite_deferred"
_WRITE_LOCK_FLAG = "_fazhi_write_lock"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def wants_write_lock() -> bool:
    """Whether a transaction beginning now should take SQLite's write lock up front.

    Outside a request (CLI, jobs, the scheduler) always; in a request unless its method only reads.
    """
    if not has_request_context():
        return True
    return request.method not in READ_METHODS or bool(g.get(_WRITE_LOCK_FLAG))


def require_write_lock() -> None:
    """Make the request's next transactions IMMEDIATE: for a GET that writes (e.g. an audit row).

    Call it before the transaction that writes begins (at the start, or right after a commit or
    rollback): a DEFERRED transaction that has read cannot safely become a writer under load.
    """
    if has_request_context():
        setattr(g, _WRITE_LOCK_FLAG, True)


# WSGI environ key: True when the request came without an application context around it (a real
# server), so the request's database session is discarded with it.
_SESSION_ENDS = "fazhi.session_ends_with_request"


class SessionScope:
    """WSGI wrapper noting whether the request's session ends with the request. It does unless the
    caller already holds an application context (a test working with the same session around its
    requests), which the request then shares."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ[_SESSION_ENDS] = not has_app_context()
        return self.wsgi_app(environ, start_response)


def session_ends_with_request() -> bool:
    return has_request_context() and bool(request.environ.get(_SESSION_ENDS))


def configure_engine(engine) -> None:
    """Make SQLite safe for concurrent use: WAL, busy timeout, foreign keys, the right BEGIN.

    A writer begins IMMEDIATE, taking the write lock up front, so two writers queue on the busy
    timeout instead of one failing later with "database is locked" when it upgrades its lock. A
    read-only request begins DEFERRED: under WAL it reads a snapshot without waiting for a writer,
    so pages are not queued behind saves.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN, not the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        immediate = wants_write_lock()
        connection.info[_DEFERRED] = not immediate
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED")

    @event.listens_for(engine, "before_cursor_execute")
    def _write_in_read(connection, _cursor, statement, _parameters, _context, _executemany):
        # A write in a DEFERRED transaction fails at once ("database is locked") when another
        # connection writes at the same moment; such a handler must call require_write_lock().
        if (connection.info.get(_DEFERRED) and statement.lstrip()[:7].upper().startswith(_WRITES)
                and has_request_context()):
            logger.warning("write in a read-only (DEFERRED) SQLite transaction: %s %s: %.60s",
                           request.method, request.path, statement)


def in_read_transaction(session) -> bool:
    """Whether ``session`` works in a DEFERRED (read-only) SQLite transaction."""
    return bool(session.connection().info.get(_DEFERRED))


def _lock_figures_token(session, obj, columns_only: bool) -> None:
    """PostgreSQL: before a contribution's or a cycle's row, lock the cycle's figures token row (the
    triggers of any figure or state write take it, and administrative flushes take it first:
    ``models.figures_version``). Taken in this order by every decision, two requests deciding two
    contributions in opposite order wait for each other instead of deadlocking; a cycle locked to be
    signed does not deadlock with a section being added (token, then the cycle row for its foreign
    key). Draft saves (``columns_only``) write no figures and do not queue here."""
    from .models import Contribution, ReportCycle

    if columns_only or session.get_bind().dialect.name != "postgresql":
        return
    if isinstance(obj, Contribution):
        cycle_id = obj.cycle_id
    elif isinstance(obj, ReportCycle):
        cycle_id = obj.id
    else:
        return
    session.execute(text("SELECT 1 FROM figures_version WHERE cycle_id = :c FOR UPDATE"), {"c": cycle_id})


def _locked_rows(session) -> set:
    """Identity keys of the rows this transaction has locked (``get_locked``): the set of another
    transaction is never returned, its locks having ended with it."""
    session = session() if isinstance(session, scoped_session) else session
    transaction = session.get_transaction()
    held = session.info.get("_fazhi_locked_rows")
    if held is None or held[0] is not transaction:
        held = session.info["_fazhi_locked_rows"] = (transaction, set())
    return held[1]


def get_locked(model, ident, options=()):
    """``model`` ``ident`` read with SELECT … FOR UPDATE OF its own table (other tables joined by
    ``options`` are not locked), or None. The row is then current and stays so until the transaction
    ends, so ``lock_row(obj, columns_only=True)`` reads nothing again: a draft save's one read.

    Only for a request that will take no other lock before this one: a decision (``lock_row`` without
    ``columns_only``) first locks the cycle's figures token row, and taking the contribution's first
    would invert that order."""
    from .extensions import db

    # FOR UPDATE always reads the row; an object this session already holds with another version_id
    # raises StaleDataError rather than keep old values (routes call this before loading it otherwise).
    obj = db.session.get(model, ident, options=options, with_for_update={"of": model})
    if obj is not None:
        _locked_rows(db.session).add(sa_inspect(obj).identity_key)
    return obj


def lock_row(obj, columns_only: bool = False) -> None:
    """Re-read ``obj`` under a row lock (SELECT … FOR UPDATE) before checking and changing it.

    ``columns_only``: re-read the row's own columns and leave its relationships as loaded (else they
    are expired and, the related objects being held only weakly, read again: a second query for the
    cycle on every draft save). For callers that read no collection or related object that another
    transaction could have changed.

    A check made after this holds until the transaction ends, so two requests deciding the same
    thing at once are serialised on PostgreSQL. (On SQLite a writing transaction already holds the
    write lock from BEGIN IMMEDIATE, and FOR UPDATE is not needed; a read-only request's DEFERRED
    transaction holds no lock, so it must not decide anything here.) Changes already made to ``obj``
    are flushed first, so the refresh does not discard them.
    """
    from .extensions import db

    if has_request_context() and in_read_transaction(db.session):
        raise RuntimeError("lock_row in a read-only request: call require_write_lock() first")
    db.session.flush()
    if columns_only and sa_inspect(obj).identity_key in _locked_rows(db.session):
        return  # read under this transaction's lock already (get_locked)
    _lock_figures_token(db.session, obj, columns_only)
    names = [attr.key for attr in sa_inspect(obj).mapper.column_attrs] if columns_only else None
    # OF its own table: an object loaded with a joined relationship (get_locked's cycle) would otherwise
    # ask PostgreSQL to lock the nullable side of an outer join, which it refuses.
    db.session.refresh(obj, attribute_names=names, with_for_update={"of": sa_inspect(obj).mapper.class_})
