"""Page models: everything a heavy page shows, gathered before its template runs.

A page model is built in a fixed number of queries (one per kind of thing, eager loading instead of
lazy loads), whatever the size of the cycle; its template only reads it and never triggers a query of
its own. Routes check permissions, build the page and render it.
"""
from __future__ import annotations


def load_viewer(user) -> None:
    """Load what every page's layout reads of the viewer (the unit shown beside the name)."""
    if getattr(user, "is_authenticated", False) and user.unit_id is not None:
        _ = user.unit


def preload_sections(cycle_ids, reviewers: bool = True) -> list:
    """Every section of the cycles with its children (and, with ``reviewers``, its reviewers), so
    numbering and path labels need no further query (``Section.path_label`` walks parents and
    siblings). Returns the cycles and sections: the session holds loaded objects weakly, so a page that
    keeps no other reference to them (plain rows) keeps these."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from ..extensions import db
    from ..models import ReportCycle, Section

    ids = sorted(set(cycle_ids))
    if not ids:
        return []
    cycles = list(db.session.scalars(
        select(ReportCycle).where(ReportCycle.id.in_(ids)).options(selectinload(ReportCycle.sections))))
    sections = list(db.session.scalars(
        select(Section).where(Section.cycle_id.in_(ids))
        .options(selectinload(Section.children), *([selectinload(Section.reviewers)] if reviewers else []))))
    return cycles + sections


def due_of(contribution):
    """The DueStatus of a contribution as its unit sees it (no countdown once it reached the office)."""
    from ..web.helpers import contribution_due

    return contribution_due(contribution)


def prepare_figures(contributions, rules: bool = False) -> None:
    """Load in one batch per cycle the figures the texts of ``contributions`` print (and, with
    ``rules``, what their rule checks read), into the request's figure books; cycles whose texts
    cite nothing load no book."""
    from ..web import bound_text

    renderer = bound_text.current()
    by_cycle: dict[int, tuple] = {}
    for c in contributions:
        cited = rules or bound_text.has_citations(c.body) or any(
            bound_text.has_citations(r.body) for r in _loaded_revisions(c))
        if cited:
            by_cycle.setdefault(c.cycle_id, (c.cycle, []))[1].append(c)
    for cycle, shown in by_cycle.values():
        renderer.book(cycle).prepare(shown, rules=rules)


def _loaded_revisions(contribution) -> list:
    """The contribution's revisions when already loaded (a page that shows them loaded them)."""
    from sqlalchemy import inspect

    state = inspect(contribution)
    return [] if "revisions" in state.unloaded else list(contribution.revisions)
