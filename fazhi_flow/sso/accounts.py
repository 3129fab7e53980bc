"""An administrator's single sign-on settings of an account (the people page)."""
from __future__ import annotations

from ..extensions import db
from ..models import User
from ..services.audit import record
from ..services.users import require_manage


def apply_settings(user: User, actor, password_login_disabled: bool, unbind: bool) -> bool:
    """Turn the local password off or on, and drop the bound subject (the person's single sign-on
    account changed at the provider: the next login binds the new one). True when anything changed."""
    require_manage(actor, user)
    before = {"password_login_disabled": user.password_login_disabled, "sso_bound": user.sso_subject is not None}
    user.password_login_disabled = bool(password_login_disabled)
    if unbind and user.sso_subject is not None:
        user.sso_subject = None
    db.session.flush()
    after = {"password_login_disabled": user.password_login_disabled, "sso_bound": user.sso_subject is not None}
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if changed:
        record(actor, "user.update", f"user:{user.id}", changed=changed)
    return bool(changed)
