"""The home page: send each role to its main page."""
from flask import Blueprint, current_app, redirect, url_for
from flask_login import current_user

from ... import policy
from ..handler import public

bp = Blueprint("main", __name__)

# In order of preference: the first area the user may enter (policy) whose page exists wins.
AREA_HOMES = (
    ("admin.manage", ("admin.index", "dashboard.index")),
    ("region.manage", ("admin.regions",)),
    ("review.queue", ("review.queue",)),
    ("unit_queue.view", ("tasks.unit_queue",)),
    ("tasks.view", ("tasks.index",)),
    ("compile.view", ("compile.index", "dashboard.index")),
    ("oversight.view", ("oversight.index",)),
)


def home_endpoint(user) -> str:
    endpoints = current_app.view_functions
    if not user.is_authenticated:
        return "public.index" if "public.index" in endpoints else "auth.login"
    for action, candidates in AREA_HOMES:
        if policy.can(user, action):
            for endpoint in candidates:
                if endpoint in endpoints:
                    return endpoint
    return "inbox.index"


@bp.route("/")
@public
def index():
    return redirect(url_for(home_endpoint(current_user)))
