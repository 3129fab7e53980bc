"""A token per report cycle that changes whenever anything its figures are computed from changes.

Pages of a city's cycle spend most of their time on the same aggregates (each indicator's total and
reporters, the approved figures the rules check), which change far less often than they are read.
``figures.cache`` keeps them per process under this token. The token is written by database triggers,
not by application code, so no write path can forget it: a value or approved value, a contribution's
state, section, unit or assignment, an assignment's role, an indicator, a rule, an explanation of a
flagged figure or a revision, by the ORM, a bulk statement or a migration.

The token is random, not a counter: a transaction that changed something and was rolled back may
already have cached what it saw under its own token, and a counter would give that number again to
different data. A random 53-bit value is never seen twice in practice. A cycle that never changed has
no row, and nothing of it is cached.

No foreign key: triggers fire while a cycle is deleted with its contributions (ON DELETE CASCADE),
when a row for it could not be written; the ``EXISTS`` keeps rows for deleted cycles from being made,
and a trigger on the cycle removes its row.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, DDL, bindparam, event, inspect, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..extensions import db


class FiguresVersion(db.Model):
    __tablename__ = "figures_version"

    cycle_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    token: Mapped[int] = mapped_column(BigInteger)
    # PostgreSQL: the transaction that set the token. It changes the token once, at its first write:
    # rewriting one row for each of the 180,000 rows of a bulk insert makes every rewrite slower than
    # the last. Its own later reads see their transaction's id here and cache nothing.
    txid: Mapped[int | None] = mapped_column(BigInteger)


# (table, the changed row's cycle as SQL, the columns whose update changes the token: None for all)
_CYCLE_OF_VALUE = "(SELECT cycle_id FROM contribution WHERE id = {row}.contribution_id)"
_CYCLE_OF_ASSIGNMENT = "(SELECT cycle_id FROM section WHERE id = {row}.section_id)"
_WATCHED = (
    ("indicator_value", _CYCLE_OF_VALUE, ("value", "approved_value", "contribution_id", "indicator_id")),
    ("contribution", "{row}.cycle_id", ("state", "section_id", "unit_id", "assignment_id", "cycle_id")),
    ("assignment", _CYCLE_OF_ASSIGNMENT, ("role", "section_id", "unit_id")),
    ("indicator", "{row}.cycle_id", None),
    ("rule", "{row}.cycle_id", None),
    # Rule results carry the liaison's explanation; revisions hold the figures a reviewer approved.
    ("figure_explanation", _CYCLE_OF_VALUE, None),
    ("revision", _CYCLE_OF_VALUE, None),
)


def _sqlite_statements() -> list[str]:
    out = []
    for table, cycle, columns in _WATCHED:
        for when, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "NEW"), ("UPDATE", "OLD")):
            name = f"fv_{table}_{when.lower()}" + ("_old" if when == "UPDATE" and row == "OLD" else "")
            of = changed = ""
            if when == "UPDATE" and columns:  # only a real change: "SET state = state" is none
                of = f" OF {', '.join(columns)}"
                changed = " WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
            # SQLite's random() is 64 bits; an upsert needs a WHERE after a SELECT (parser rule).
            out.append(
                f"CREATE TRIGGER {name} AFTER {when}{of} ON {table}{changed} BEGIN "
                f"INSERT INTO figures_version (cycle_id, token) "
                f"SELECT id, random() FROM report_cycle WHERE id = {cycle.format(row=row)} "
                f"ON CONFLICT (cycle_id) DO UPDATE SET token = excluded.token; END")
    out.append("CREATE TRIGGER fv_report_cycle_delete AFTER DELETE ON report_cycle BEGIN "
               "DELETE FROM figures_version WHERE cycle_id = OLD.id; END")
    return out


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION figures_version_bump(cycle integer) RETURNS void AS $$
BEGIN
    IF cycle IS NOT NULL AND EXISTS (SELECT 1 FROM report_cycle WHERE id = cycle) THEN
        INSERT INTO figures_version (cycle_id, token, txid)
        VALUES (cycle, floor(random() * 9007199254740991)::bigint, txid_current())
        ON CONFLICT (cycle_id) DO UPDATE SET token = EXCLUDED.token, txid = EXCLUDED.txid
        WHERE figures_version.txid IS DISTINCT FROM EXCLUDED.txid;
    END IF;
END $$ LANGUAGE plpgsql
"""


def _postgresql_statements() -> list[str]:
    out = [_PG_FUNCTION]
    for table, cycle, columns in _WATCHED:
        # One function per table: it knows how to find the cycle of the old and the new row.
        out.append(f"""
CREATE OR REPLACE FUNCTION fv_{table}_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM figures_version_bump({cycle.format(row='OLD')}); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM figures_version_bump({cycle.format(row='NEW')}); END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql""")
        of = f" OF {', '.join(columns)}" if columns else ""
        out.append(f'CREATE TRIGGER fv_{table}_insert_delete AFTER INSERT OR DELETE ON "{table}" '
                   f"FOR EACH ROW EXECUTE FUNCTION fv_{table}_changed()")
        changed = ""
        if columns:
            changed = " WHEN (" + " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns) + ")"
        out.append(f'CREATE TRIGGER fv_{table}_update AFTER UPDATE{of} ON "{table}" '
                   f"FOR EACH ROW{changed} EXECUTE FUNCTION fv_{table}_changed()")
    out.append("""
CREATE OR REPLACE FUNCTION fv_report_cycle_deleted() RETURNS trigger AS $$
BEGIN
    DELETE FROM figures_version WHERE cycle_id = OLD.id;
    RETURN NULL;
END $$ LANGUAGE plpgsql""")
    out.append("CREATE TRIGGER fv_report_cycle_delete AFTER DELETE ON report_cycle "
               "FOR EACH ROW EXECUTE FUNCTION fv_report_cycle_deleted()")
    return out


def trigger_statements(dialect: str) -> list[str]:
    """The DDL creating the triggers on ``dialect`` (also what migration 0007 ran)."""
    if dialect == "postgresql":
        return _postgresql_statements()
    if dialect == "sqlite":
        return _sqlite_statements()
    return []


def drop_trigger_statements(dialect: str) -> list[str]:
    """The DDL removing what ``trigger_statements`` created (migration 0007's downgrade)."""
    if dialect == "postgresql":
        out = []
        for table, _cycle, _columns in _WATCHED:
            out += [f'DROP TRIGGER IF EXISTS fv_{table}_insert_delete ON "{table}"',
                    f'DROP TRIGGER IF EXISTS fv_{table}_update ON "{table}"',
                    f"DROP FUNCTION IF EXISTS fv_{table}_changed()"]
        return out + ["DROP TRIGGER IF EXISTS fv_report_cycle_delete ON report_cycle",
                      "DROP FUNCTION IF EXISTS fv_report_cycle_deleted()",
                      "DROP FUNCTION IF EXISTS figures_version_bump(integer)"]
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS fv_{table}_{suffix}" for table, _cycle, _columns in _WATCHED
                for suffix in ("insert", "delete", "update", "update_old")] + \
            ["DROP TRIGGER IF EXISTS fv_report_cycle_delete"]
    return []


# Migration 0008: what the progress dashboard shows besides the figures, so that it too can be kept
# under the token: the outline (titles, order, due dates), an assignment's own due date, the cycle's
# title, state and due date, and the units (name, kind, order; a unit belongs to every cycle of its
# region). Rare administrative writes: a new token for them costs the figure caches nothing of note.
# (name, table, events, columns watched by an update (None: all), SQLite: the cycles as a WHERE on
# report_cycle, PostgreSQL: the same as a WHERE on report_cycle)
_OUTLINE_WATCHED = (
    ("fv_assignment_due", "assignment", ("UPDATE",), ("due",), "id = (SELECT cycle_id FROM section WHERE id = {row}.section_id)"),
    ("fv_section", "section", ("INSERT", "DELETE", "UPDATE"), None, "id = {row}.cycle_id"),
    ("fv_cycle_shown", "report_cycle", ("UPDATE",), ("title", "region", "due", "state"), "id = {row}.id"),
    ("fv_unit", "unit", ("INSERT", "DELETE", "UPDATE"), None, "region_id = {row}.region_id"),
)


def _rows_of(events) -> list[tuple[str, str]]:
    """(event, NEW or OLD) pairs: an update concerns the cycles of the old and of the new row."""
    out = []
    for when in events:
        out += [(when, "OLD"), (when, "NEW")] if when == "UPDATE" else [(when, "NEW" if when == "INSERT" else "OLD")]
    return out


def _outline_sqlite_statements(watched) -> list[str]:
    out = []
    for name, table, events, columns, where in watched:
        for when, row in _rows_of(events):
            of = changed = ""
            if when == "UPDATE" and columns:
                of = f" OF {', '.join(columns)}"
                changed = " WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
            out.append(
                f"CREATE TRIGGER {name}_{when.lower()}_{row.lower()} AFTER {when}{of} ON {table}{changed} BEGIN "
                f"INSERT INTO figures_version (cycle_id, token) "
                f"SELECT id, random() FROM report_cycle WHERE {where.format(row=row)} "
                f"ON CONFLICT (cycle_id) DO UPDATE SET token = excluded.token; END")
    return out


def _outline_postgresql_statements(watched) -> list[str]:
    out = []
    for name, table, events, columns, where in watched:
        body = []
        if "DELETE" in events or "UPDATE" in events:
            body.append(f"IF TG_OP <> 'INSERT' THEN PERFORM figures_version_bump(id) FROM report_cycle "
                        f"WHERE {where.format(row='OLD')}; END IF;")
        if "INSERT" in events or "UPDATE" in events:
            body.append(f"IF TG_OP <> 'DELETE' THEN PERFORM figures_version_bump(id) FROM report_cycle "
                        f"WHERE {where.format(row='NEW')}; END IF;")
        out.append(f"""
CREATE OR REPLACE FUNCTION {name}_changed() RETURNS trigger AS $$
BEGIN
    {' '.join(body)}
    RETURN NULL;
END $$ LANGUAGE plpgsql""")
        of = f" OF {', '.join(columns)}" if columns else ""
        changed = ""
        if columns:
            changed = " WHEN (" + " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns) + ")"
        for when in events:
            if when == "UPDATE":
                out.append(f'CREATE TRIGGER {name}_update AFTER UPDATE{of} ON "{table}" '
                           f"FOR EACH ROW{changed} EXECUTE FUNCTION {name}_changed()")
            else:
                out.append(f'CREATE TRIGGER {name}_{when.lower()} AFTER {when} ON "{table}" '
                           f"FOR EACH ROW EXECUTE FUNCTION {name}_changed()")
    return out


def outline_trigger_statements(dialect: str, watched=_OUTLINE_WATCHED) -> list[str]:
    """The DDL of migration 0008's triggers (the outline, the units, the cycle's shown fields), or of
    another set of the same shape (``watched``)."""
    if dialect == "postgresql":
        return _outline_postgresql_statements(watched)
    if dialect == "sqlite":
        return _outline_sqlite_statements(watched)
    return []


def drop_outline_trigger_statements(dialect: str, watched=_OUTLINE_WATCHED) -> list[str]:
    """The DDL removing what ``outline_trigger_statements`` created (migration 0008's downgrade)."""
    out = []
    for name, table, events, _columns, _where in watched:
        if dialect == "postgresql":
            out += [f'DROP TRIGGER IF EXISTS {name}_{when.lower()} ON "{table}"' for when in events]
            out.append(f"DROP FUNCTION IF EXISTS {name}_changed()")
        elif dialect == "sqlite":
            out += [f"DROP TRIGGER IF EXISTS {name}_{when.lower()}_{row.lower()}" for when, row in _rows_of(events)]
    return out


# Migration 0009: who reviews a section (the reviewer's queue 待审核 is kept under the token).
REVIEWERS_WATCHED = (
    ("fv_section_reviewer", "section_reviewer", ("INSERT", "DELETE", "UPDATE"), None,
     "id = (SELECT cycle_id FROM section WHERE id = {row}.section_id)"),
)


def _create_triggers(target, connection, **_kw) -> None:
    dialect = connection.dialect.name
    for statement in (trigger_statements(dialect) + outline_trigger_statements(dialect)
                      + outline_trigger_statements(dialect, REVIEWERS_WATCHED)):
        connection.execute(DDL(statement))


# After every table exists (``create_all`` in tests and ``fazhi-flow init-db``; migrations run their own copy).
event.listen(db.metadata, "after_create", _create_triggers)


# PostgreSQL: the triggers lock a cycle's token row while the written row is locked already, and a
# unit's write locks the tokens of all its region's cycles in no set order. Two administrators editing
# one outline (two sections each, in opposite order), or two units of a region, would then deadlock.
# Before an administrative flush, the tokens it will change are locked first, in cycle order, as
# decisions lock theirs first (database.lock_row); the second writer then waits instead of failing.
_ADMIN_TABLES = frozenset({"section", "assignment", "report_cycle", "unit", "indicator", "rule"})


def _old_and_new(obj, name, relationship) -> set:
    """The row's old and new ``name`` (a foreign key), or its related object's id while still unset."""
    history = inspect(obj).attrs[name].history
    found = {v for v in (*history.deleted, getattr(obj, name)) if v is not None}
    if getattr(obj, name) is None and getattr(obj, relationship, None) is not None:
        found.add(getattr(obj, relationship).id)
    return found - {None}


def _tokens_touched(session) -> tuple[set, set, set]:
    """(cycle ids, section ids, region ids) that this flush's administrative rows belong to."""
    cycles, sections, regions = set(), set(), set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(obj, "__tablename__", None)
        if table not in _ADMIN_TABLES:
            continue
        if table == "report_cycle":
            if obj not in session.new:
                cycles.add(obj.id)
        elif table == "unit":
            regions |= _old_and_new(obj, "region_id", "region")
        elif table == "assignment":
            sections |= _old_and_new(obj, "section_id", "section")
        else:
            cycles |= _old_and_new(obj, "cycle_id", "cycle")
    return cycles, sections, regions


@event.listens_for(Session, "before_flush")
def _lock_tokens_first(session, _flush_context, _instances) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: a writing transaction holds the write lock from its BEGIN
    cycles, sections, regions = _tokens_touched(session)
    if not (cycles or sections or regions):
        return
    session.connection().execute(
        text("SELECT 1 FROM figures_version WHERE cycle_id IN :cycles "
             "OR cycle_id IN (SELECT cycle_id FROM section WHERE id IN :sections) "
             "OR cycle_id IN (SELECT id FROM report_cycle WHERE region_id IN :regions) "
             "ORDER BY cycle_id FOR UPDATE").bindparams(
            bindparam("cycles", expanding=True), bindparam("sections", expanding=True),
            bindparam("regions", expanding=True)),
        {"cycles": sorted(cycles) or [-1], "sections": sorted(sections) or [-1],
         "regions": sorted(regions) or [-1]})
