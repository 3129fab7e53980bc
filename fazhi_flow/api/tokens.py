"""Personal access tokens (个人访问令牌): created and revoked by their owner, kept only as a hash.

The token text is shown once, when it is made; the database holds its SHA-256, so a copy of the
database opens nothing. A request names the token in ``Authorization: Bearer <token>``; the hash is
looked up directly (no comparison of secrets character by character).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from .. import policy
from ..database import require_write_lock
from ..errors import DomainError, NotFound
from ..extensions import db
from ..models import ApiToken
from ..models.access import TOKEN_SCOPES
from ..timeutil import utcnow
from ..services.audit import record
from ..web.own_region import row_or_none

TOKEN_PREFIX = "ffp_"
NAME_MAX = 60  # ApiToken.name
DEFAULT_DAYS = 90
MAX_DAYS = 365
# last_used_at is written at most this often, so that reading through the API is not a write each time.
TOUCH_EVERY = timedelta(minutes=1)
# A user keeps at most this many live tokens: a leaked script making tokens in a loop stops here.
MAX_LIVE_TOKENS = 20


def token_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def live_tokens(user) -> list[ApiToken]:
    """The user's tokens, newest first (revoked and expired ones too: the page says which)."""
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def create_token(user, name: str, scope: str, days: int) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns the row and the token text (shown once, never stored)."""
    policy.require(user, "api_token.manage", user)
    name = (name or "").strip()
    if not name:
        raise DomainError("请填写令牌名称（例如用途），以便日后识别。")
    if len(name) > NAME_MAX:
        raise DomainError(f"令牌名称最多{NAME_MAX}字。")
    if scope not in TOKEN_SCOPES:
        raise DomainError("权限范围只能是“只读”或“读写”。")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise DomainError(f"有效期必须是1到{MAX_DAYS}天。")
    now = utcnow()
    live = db.session.scalar(select(db.func.count()).select_from(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)) or 0
    if live >= MAX_LIVE_TOKENS:
        raise DomainError(f"您已有{live}个有效令牌，最多{MAX_LIVE_TOKENS}个。请先撤销不用的令牌。")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, prefix=text[:12], token_hash=token_hash(text), scope=scope,
                   created_at=now, expires_at=now + timedelta(days=days))
    db.session.add(row)
    db.session.flush()
    record(user, "api_token.create", f"api_token:{row.id}", name=name, scope=scope, prefix=row.prefix,
           expires_at=row.expires_at.isoformat(timespec="seconds"))
    return row, text


def _own_row(user, token_id) -> ApiToken | None:
    row = row_or_none(ApiToken, token_id)
    if row is None or row.user_id != user.id or not policy.can(user, "api_token.manage", row.user):
        return None
    return row


def is_own(user, token_id) -> bool:
    """Whether ``token_id`` is one of ``user``'s tokens (policy: each person manages their own)."""
    return _own_row(user, token_id) is not None


def revoke_token(user, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (another person's id is not found)."""
    row = _own_row(user, token_id)
    if row is None:
        raise NotFound("这个令牌不存在。")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record(user, "api_token.revoke", f"api_token:{row.id}", name=row.name, prefix=row.prefix)
        db.session.flush()
    return row


def authenticate(header: str | None):
    """The (token, user) named by an ``Authorization`` header; None when it names no usable token
    (missing, malformed, unknown, revoked, expired, or its owner deactivated)."""
    scheme, _, text = (header or "").partition(" ")
    text = text.strip()
    if scheme.lower() != "bearer" or not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(text)))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = row.user
    if user is None or not user.active:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        _touch(row, now)
    return row, user


def _touch(row: ApiToken, now) -> None:
    """Note the use in its own short transaction (a GET otherwise only reads)."""
    token_id = row.id
    db.session.rollback()
    require_write_lock()
    db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
    db.session.commit()
