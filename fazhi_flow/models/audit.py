"""Who did what: the transition log of both workflows and the general audit trail."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..extensions import db
from ..limits import fitted
from ..timeutil import utcnow


class TransitionLog(db.Model):
    __tablename__ = "transition_log"
    __table_args__ = (
        CheckConstraint(
            "(contribution_id IS NULL) <> (cycle_id IS NULL)", name="one_subject"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contribution_id: Mapped[int | None] = mapped_column(
        ForeignKey("contribution.id", ondelete="CASCADE"), index=True
    )
    cycle_id: Mapped[int | None] = mapped_column(
        ForeignKey("report_cycle.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # Set when the actor acted as a substitute (委托): shown as "actor 代 on_behalf_of".
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    # Extra facts of the event, e.g. the paragraph a comment points at or the units missing at compile.
    context: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor = relationship("User", foreign_keys=[actor_id])
    on_behalf_of = relationship("User", foreign_keys=[on_behalf_of_id])


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str | None] = mapped_column(String(120))
    detail: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor = relationship("User", foreign_keys=[actor_id])
    on_behalf_of = relationship("User", foreign_keys=[on_behalf_of_id])

    # Targets may carry names typed by others (e.g. a guessed user name): fitted, never refused.
    _fit = fitted("target", "ip")


# ------------------------------------------------------------------ immutability
# The trail is evidence: once written, a row is never changed or removed by the application. The ORM
# refuses to flush a change or a delete of a loaded row, and the session refuses UPDATE/DELETE
# statements aimed at these tables (``session.execute(update(AuditEvent)…)``). Maintenance that must
# bypass this (test fixtures emptying tables) goes through a bare engine connection.
# Transition rows of a contribution deleted by the database cascade (contribution.id ON DELETE
# CASCADE) still go with it: the application deletes only contributions nobody ever submitted, which
# have no transitions.
IMMUTABLE_TABLES = frozenset({"audit_event", "transition_log"})


class ImmutableRowError(RuntimeError):
    """Raised on any attempt to change or delete an audit or transition row."""


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(TransitionLog, "before_update")
def _refuse_update(mapper, connection, target):
    # The ORM calls this for every dirty row, even one whose values did not change (e.g. a
    # relationship set to the same user): only a real change of a column is refused.
    state = inspect(target)
    if any(state.attrs[column.key].history.has_changes() for column in mapper.column_attrs):
        raise ImmutableRowError(f"{mapper.local_table.name} rows cannot be changed")


@event.listens_for(AuditEvent, "before_delete")
@event.listens_for(TransitionLog, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise ImmutableRowError(f"{mapper.local_table.name} rows cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state):
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in IMMUTABLE_TABLES:
        raise ImmutableRowError(f"{table.name} rows cannot be changed or deleted")
