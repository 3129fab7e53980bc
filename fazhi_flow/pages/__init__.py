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


def preload_sections(cycle_ids) -> None:
    """Every section of the cycles with its children and reviewers, so numbering and path labels
    need no further query (``Section.path_label`` walks parents and siblings)."""
    from ..web.loading import preload_sections as load

    load(cycle_ids)


def due_of(contribution):
    """The DueStatus of a contribution as its unit sees it (no countdown once it reached the office)."""
    from ..web.helpers import contribution_due

    return contribution_due(contribution)
