"""Users' channel choices (我的通知渠道). Without a saved choice, e-mail and in-app are both on."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models.reminder import UserChannelPreference


def preference(user) -> UserChannelPreference | None:
    return db.session.scalar(select(UserChannelPreference).where(UserChannelPreference.user_id == user.id))


def preferences_of(users) -> dict[int, UserChannelPreference]:
    """The saved choices of ``users``, read in one statement (a user without one has both on)."""
    ids = {u.id for u in users}
    if not ids:
        return {}
    return {p.user_id: p for p in db.session.scalars(
        select(UserChannelPreference).where(UserChannelPreference.user_id.in_(ids)))}


def wants(user, channel: str, choices: dict[int, UserChannelPreference] | None = None) -> bool:
    """True when ``user`` receives messages by ``channel`` ("email" or "inapp"); ``choices``: the
    choices already read for many people (``preferences_of``), else this user's is read now."""
    pref = choices.get(user.id) if choices is not None else preference(user)
    if channel == "email":
        return bool(user.email) and (pref is None or pref.email)
    if channel == "inapp":
        return pref is None or pref.inapp
    raise ValueError(channel)
