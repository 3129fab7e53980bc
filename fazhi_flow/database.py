"""Engine set-up: SQLite pragmas and IMMEDIATE write transactions."""
from sqlalchemy import event


def configure_engine(engine) -> None:
    """Make SQLite safe for concurrent use: WAL, busy timeout, foreign keys, BEGIN IMMEDIATE.

    Beginning every transaction IMMEDIATE takes the write lock up front, so two writers queue on the
    busy timeout instead of one failing later with "database is locked" when it upgrades its lock.
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
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_row(obj) -> None:
    """Re-read ``obj`` under a row lock (SELECT … FOR UPDATE) before checking and changing it.

    A check made after this holds until the transaction ends, so two requests deciding the same
    thing at once are serialised on PostgreSQL. (On SQLite every transaction already holds the write
    lock from BEGIN IMMEDIATE, and FOR UPDATE is not needed.) Changes already made to ``obj`` are
    flushed first, so the refresh does not discard them.
    """
    from .extensions import db

    db.session.flush()
    db.session.refresh(obj, with_for_update=True)
