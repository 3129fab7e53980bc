"""The home page: send each role to its main page."""
from flask import Blueprint, current_app, redirect, url_for
from flask_login import current_user

from ..handler import public

bp = Blueprint("main", __name__)

# In order of preference: the first role the user holds whose page exists wins.
ROLE_HOMES = (
    ("admin", ("admin.index", "dashboard.index")),
    ("reviewer", ("review.queue",)),
    ("unit_head", ("tasks.unit_queue",)),
    ("liaison", ("tasks.index",)),
    ("leader", ("compile.index", "dashboard.index")),
)


def home_endpoint(user) -> str:
    endpoints = current_app.view_functions
    if not user.is_authenticated:
        return "public.index" if "public.index" in endpoints else "auth.login"
    for role, candidates in ROLE_HOMES:
        if user.has_role(role):
            for endpoint in candidates:
                if endpoint in endpoints:
                    return endpoint
    return "inbox.index"


@bp.route("/")
@public
def index():
    return redirect(url_for(home_endpoint(current_user)))
