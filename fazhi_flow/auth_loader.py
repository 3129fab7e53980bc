"""Flask-Login user loading: the session carries "<id>:<token>", so a rotated token logs out.

The session also carries when the user logged in and when the last request came; a session past the
idle or the absolute limit (SESSION_IDLE_MINUTES, SESSION_ABSOLUTE_HOURS) loads no user, whatever
its signature says, so a copied cookie stops working on the server's clock, not the browser's.
"""
import time

from flask import current_app, flash, g, redirect, request, session
from flask_login import login_url
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .extensions import db
from .whole_numbers import optional_int

LOGIN_AT = "_login_at"  # epoch seconds of the password check
SEEN_AT = "_seen_at"    # epoch seconds of the last request of this session
# Refresh the idle stamp at most this often, so that not every response rewrites the cookie.
_SEEN_RESOLUTION = 60
EXPIRED_MESSAGE = "登录已超时，请重新登录。"


def now() -> float:
    return time.time()


def stamp_login(store=None) -> None:
    """Start the session's clocks; call right after login_user (``store``: a session other than
    the current request's, e.g. a test client's session_transaction)."""
    store = session if store is None else store
    store[LOGIN_AT] = store[SEEN_AT] = int(now())


def session_expired() -> bool:
    """True when the session's stamps are missing (older code, remember cookie) or past a limit."""
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        return True
    moment = now()
    idle = int(current_app.config["SESSION_IDLE_MINUTES"]) * 60
    absolute = int(current_app.config["SESSION_ABSOLUTE_HOURS"]) * 3600
    return moment - seen_at > idle or moment - login_at > absolute or seen_at > moment + 300


def touch_session() -> None:
    """Record activity of a live session (after session_expired said no)."""
    moment = int(now())
    if moment - session.get(SEEN_AT, 0) >= _SEEN_RESOLUTION:
        session[SEEN_AT] = moment


def request_user_logged_in() -> bool:
    """Whether this request has a logged-in user, without reading the user's row again.

    After a commit every loaded object is expired, so ``current_user.is_authenticated`` (which reads
    ``active``) would reload the user in ``after_request`` just to set a header. A user object that
    was loaded (``load_user`` checked it is active) or logged in during the request counts as is.
    """
    from flask_login import current_user

    loaded = g.get("_login_user")
    if loaded is None:  # nothing looked at the user yet: load it the ordinary way
        return current_user.is_authenticated
    from .models import User

    return isinstance(loaded, User)


def init_login(login_manager) -> None:
    from .models import User

    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录。"
    login_manager.login_message_category = "warning"

    @login_manager.user_loader
    def load_user(value: str):
        raw_id, _, token = (value or "").partition(":")
        user_id = optional_int(raw_id)
        if user_id is None or not token or session_expired():
            return None
        # The unit comes in the same query: every page's header names it. So does whether anyone has
        # delegated work to the user now: most have nobody, and then no page needs to ask again.
        from .services.delegations import any_delegation_to, no_principals_this_request

        # The roles too, joined (one round trip instead of two on every request).
        row = db.session.execute(select(User, any_delegation_to(User.id)).where(User.id == user_id)
                                 .options(joinedload(User.unit), joinedload(User.role_rows))).unique().first()
        user = row[0] if row is not None else None
        if user is None or not user.active or user.session_token != token:
            return None
        if not row[1]:
            no_principals_this_request(user)
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        # After a timeout the page already says so; "请先登录" on top would only confuse.
        if not g.get("session_expired"):
            flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(login_url(login_manager.login_view, next_url=request.url))
