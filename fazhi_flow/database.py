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
