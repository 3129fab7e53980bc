"""Users' channel choices (我的通知渠道). Without a saved choice, e-mail and in-app are both on."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models.reminder import UserChannelPreference


def preference(user) -> UserChannelPreference | None:
    return db.session.scalar(select(UserChannelPreference).where(UserChannelPreference.user_id == user.id))


def wants(user, channel: str) -> bool:
    """True when ``user`` receives messages by ``channel`` ("email" or "inapp")."""
    pref = preference(user)
    if channel == "email":
        return bool(user.email) and (pref is None or pref.email)
    if channel == "inapp":
        return pref is None or pref.inapp
    raise ValueError(channel)
