"""The audit trail: one row per login, failure and change."""
from flask import has_request_context, request

from ..extensions import db
from ..models import AuditEvent
from ..timeutil import utcnow


def record(actor, action: str, target: str | None = None, **detail) -> AuditEvent:
    """Add an audit row to the session (committed with the operation it describes)."""
    ip = request.remote_addr if has_request_context() else None
    row = AuditEvent(actor_id=getattr(actor, "id", None), action=action, target=target,
                     detail=detail or None, ip=ip, created_at=utcnow())
    db.session.add(row)
    return row
