"""What operations need in the database: the scheduler's heartbeat and last job runs, and
attachment bytes when the attachment storage is the database (several web machines)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..limits import fitted
from ..timeutil import utcnow


class JobStatus(db.Model):
    """One row per scheduled job (``sweep``, ``deliver``, ``prune``) with its last run, and the row
    ``scheduler`` whose ``beat_at`` the scheduler process refreshes: /readyz and the metrics read it."""

    __tablename__ = "job_status"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None]
    beat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool | None]
    duration_ms: Mapped[int | None]
    summary: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    _fit = fitted("host")


class ChannelHealth(db.Model):
    """One row per delivery channel (``email``, ``webhook``) while it is failing or was probed: the
    deliverer probes an unreachable channel once per run instead of spending every queued message's
    tries, and the admin pages show a banner while ``failing_since`` is set."""

    __tablename__ = "channel_health"

    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    failing_since: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_probe_at: Mapped[datetime | None]
    next_probe_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttachmentBlob(db.Model):
    """The bytes of an attachment when ``ATTACHMENT_STORAGE = "database"``; keyed like the files."""

    __tablename__ = "attachment_blob"

    stored_name: Mapped[str] = mapped_column(String(80), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
