"""The search page: GET only, reads nothing the searcher may not read (the service scopes in SQL)."""
from __future__ import annotations

from flask import render_template, request
from flask_login import current_user

from ...errors import DomainError
from ...services import search as svc
from ..handler import handler
from . import bp


@bp.route("/")
@handler("authenticated")
def index():
    raw = request.args.get("q")
    try:
        results = svc.search(current_user, raw)
    except DomainError as exc:
        # The page itself shows the refusal beside the box, with what was typed cut to the limit.
        return render_template("search/index.html", results=None, query=svc.shown_query(raw),
                               problem=exc.message, limit=svc.MAX_LENGTH, active_nav="search"), 400
    return render_template("search/index.html", results=results, query=results.query if results else "",
                           problem=None, limit=svc.MAX_LENGTH, active_nav="search")
