"""Loading by id for pages that act within the user's own region (admin cycle pages, reminder settings).

An object of another region answers exactly as a missing one (404), never 403: an id must not tell a
person of one region that a row of another region exists. ``policy.region_of`` decides the region.
"""
from __future__ import annotations

from flask import abort
from flask_login import current_user

from .. import policy
from ..extensions import db
from ..whole_numbers import DB_INT_MAX


def row_or_none(model, ident):
    """The row ``ident`` of ``model``, or None; an id no database column can hold (a form field is
    not a URL converter) is simply not found rather than an error of the driver."""
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 < ident <= DB_INT_MAX:
        return None
    return db.session.get(model, ident)


def is_own(obj, user=None) -> bool:
    """Whether ``obj`` belongs to ``user``'s region (default: the current user)."""
    user = user or current_user
    return policy.region_of(obj) == user.region_id


def own_or_404(obj, user=None):
    """``obj`` when it exists and belongs to the user's region; else 404."""
    if obj is None or not is_own(obj, user):
        abort(404)
    return obj


def get_own_or_404(model, ident, user=None):
    """The row ``ident`` of ``model`` in the user's region; 404 when missing or of another region."""
    return own_or_404(row_or_none(model, ident), user)
