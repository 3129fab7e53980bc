"""Which local account a signed-on identity is: never a new one, never somebody else's.

A person is found by the subject stored at their first single sign-on login (``User.sso_subject``);
before that by username, else by an e-mail address the provider vouches for and exactly one active
account has. The first match stores the subject, and from then on an account bound to one subject
refuses every other: somebody given the same username at the provider later (a rename, a reused
name) must not take the account over. Nobody is created here: roles are an administrator's choice.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import User

NO_MATCH = "没有与统一身份认证账号对应的用户，请联系管理员。"
INACTIVE = "您的账号已停用，不能登录，请联系管理员。"
OTHER_SUBJECT = ("该用户已与另一个统一身份认证账号关联，不能登录。如统一身份认证账号确有变更，"
                 "请联系管理员解除原关联。")
PRIVILEGED_UNVERIFIED = ("该账号有管理权限，首次通过统一身份认证登录时，统一身份认证平台核实的电子邮箱须与账号的"
                         "电子邮箱一致。请联系管理员核对账号的电子邮箱。")
# Accounts whose first OpenID Connect link must not rest on a username alone: at many providers a
# person can choose or change their preferred_username, and these accounts manage everybody else.
PRIVILEGED_ROLES = ("admin", "sysadmin", "oversight")
SUBJECT_MAX = 255  # User.sso_subject
USERNAME_MAX = 60  # User.username


class SsoRefused(Exception):
    """A single sign-on login that must not proceed: ``message`` for the person, ``reason`` for the log."""

    def __init__(self, message: str, reason: str):
        super().__init__(reason)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    method: str            # "oidc" | "ldap"
    subject: str           # stable id at the provider: the OIDC "sub", "ldap:<entryUUID>"
    username: str | None   # the provider's username for this person
    email: str | None
    email_verified: bool


def match_user(identity: Identity) -> User:
    """The active local account of ``identity``, bound to its subject; raises SsoRefused otherwise."""
    subject = (identity.subject or "").strip()
    if not subject or len(subject) > SUBJECT_MAX:
        raise SsoRefused(NO_MATCH, "bad_subject")
    user = db.session.scalar(select(User).where(User.sso_subject == subject))
    if user is None:
        user = _by_username(identity.username) or _by_email(identity)
        if user is None:
            raise SsoRefused(NO_MATCH, "no_match")
        if user.sso_subject is not None and user.sso_subject != subject:
            raise SsoRefused(OTHER_SUBJECT, "subject_mismatch")
        if identity.method == "oidc" and user.has_role(*PRIVILEGED_ROLES) and not _email_vouched(identity, user):
            raise SsoRefused(PRIVILEGED_UNVERIFIED, "privileged_unverified")
    if not user.active:
        raise SsoRefused(INACTIVE, "inactive")
    if user.sso_subject is None:
        _bind(user, subject)
    return user


def _email_vouched(identity: Identity, user: User) -> bool:
    """The provider vouches for an e-mail address that is the account's own."""
    return bool(identity.email_verified and identity.email and user.email
                and identity.email.strip().lower() == user.email.strip().lower())


def _bind(user: User, subject: str) -> None:
    try:
        with db.session.begin_nested():
            user.sso_subject = subject
    except IntegrityError:
        # The same subject was bound to another account at the same moment (two first logins).
        db.session.refresh(user)
        raise SsoRefused(OTHER_SUBJECT, "subject_taken") from None


def _by_username(username: str | None) -> User | None:
    name = (username or "").strip()
    if not name or len(name) > USERNAME_MAX:
        return None
    return db.session.scalar(select(User).where(func.lower(User.username) == name.lower()))


def _by_email(identity: Identity) -> User | None:
    """Only an address the provider has verified, and only when exactly one active account has it
    (two colleagues sharing an office mailbox would otherwise be a guess)."""
    email = (identity.email or "").strip()
    if not email or not identity.email_verified or len(email) > 200:
        return None
    found = list(db.session.scalars(
        select(User).where(func.lower(User.email) == email.lower(), User.active.is_(True)).limit(2)))
    return found[0] if len(found) == 1 else None
