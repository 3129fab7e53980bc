"""The audit trail: one row per login, failure, change and refused request."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import AuditEvent
from ..timeutil import utcnow

logger = logging.getLogger(__name__)

# Refusals are written at most once per user, address and kind in this interval, so that a script
# hammering a forbidden page or forging tokens cannot fill the table.
REFUSAL_INTERVAL = timedelta(minutes=1)
REFUSAL_KINDS = {"forbidden": "无权访问被拒绝", "csrf": "安全校验失败被拒绝"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def record(actor, action: str, target: str | None = None, **detail) -> AuditEvent:
    """Add an audit row to the session (committed with the operation it describes)."""
    ip = request.remote_addr if has_request_context() else None
    row = AuditEvent(actor_id=getattr(actor, "id", None), action=action, target=target,
                     detail=detail or None, ip=ip, created_at=utcnow())
    db.session.add(row)
    return row


def record_refusal(kind: str, reason: str | None = None) -> None:
    """Audit a refused request (kind "forbidden" or "csrf") in its own short transaction.

    Call only after the request's own changes were rolled back: this commits the session. A busy or
    failing database loses the row, never the response (the refusal page is shown all the same).
    """
    try:
        _write_refusal(kind, reason)
    except SQLAlchemyError:
        db.session.rollback()
        logger.warning("refused request not audited (database unavailable)", exc_info=True)


def _write_refusal(kind: str, reason: str | None) -> None:
    actor_id = current_user.id if current_user.is_authenticated else None
    ip = request.remote_addr
    action = f"refused.{kind}"
    if db.engine.dialect.name == "postgresql":
        # Waiting on a busy database would hold the refusal page; the row is worth less than that.
        db.session.execute(text("SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '3s'"))
    recent = select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.created_at >= utcnow() - REFUSAL_INTERVAL,
        AuditEvent.actor_id.is_(None) if actor_id is None else AuditEvent.actor_id == actor_id,
        AuditEvent.ip.is_(None) if ip is None else AuditEvent.ip == ip).limit(1)
    if db.session.scalar(recent) is None:
        detail = {"method": request.method, "reason": _clean(reason or "", 200)}
        db.session.add(AuditEvent(actor_id=actor_id, action=action, target=_clean(request.path),
                                  detail=detail, ip=ip, created_at=utcnow()))
    db.session.commit()


def _clean(value: str, limit: int | None = None) -> str:
    """Text an attacker chose, made storable: no control characters (PostgreSQL refuses NUL), bounded.

    Column values need no ``limit``: the model fits them to their columns (limits.fitted)."""
    return _CONTROL.sub("", value)[:limit]
