"""Access beyond the login form: personal access tokens for the REST API and delegations (委托)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..timeutil import utcnow

TOKEN_SCOPES = {"read": "只读", "write": "读写"}


class ApiToken(db.Model):
    """A personal access token (个人访问令牌): created and revoked by its owner, stored only as a
    SHA-256 hash; ``prefix`` (the first characters) names it in lists and logs."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("scope IN ('read', 'write')", name="scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(10), default="read")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user = relationship("User")

    @property
    def scope_label(self) -> str:
        return TOKEN_SCOPES[self.scope]


class Delegation(db.Model):
    """委托: from ``starts_at`` to ``ends_at`` the substitute sees and acts on the delegator's work;
    every action is recorded as "substitute 代 delegator". Ends by itself; revoking ends it early."""

    __tablename__ = "delegation"
    __table_args__ = (
        CheckConstraint("delegator_id <> substitute_id", name="not_self"),
        CheckConstraint("ends_at > starts_at", name="period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delegator_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    # The delegator, or an admin setting it for someone absent.
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    delegator = relationship("User", foreign_keys=[delegator_id])
    substitute = relationship("User", foreign_keys=[substitute_id])
    created_by = relationship("User", foreign_keys=[created_by_id])
    revoked_by = relationship("User", foreign_keys=[revoked_by_id])
