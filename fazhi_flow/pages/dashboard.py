"""Page model of the progress dashboard (填报进度): what the template prints, with the matrix cells
already written out.

A city-sized matrix has 18,000 cells; printing each through the template (attribute lookups, an
``url_for`` per link) cost more than loading the data. The cells of a row are written here in one
pass, escaped with markupsafe, the link built from a prefix made once per page; and the matrix shows
one page of units at a time (the figures above it and its totals row count every unit).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from datetime import date

from flask import current_app, render_template, url_for
from markupsafe import Markup, escape

from .. import policy
from ..extensions import db
from ..figures.cache import PAGES, cache_key, figures_token
from ..services import dashboard as svc
from ..services.dashboard import Dashboard, UnitRow
from ..timeutil import local_today


def cell_endpoint(viewer, restricted: bool) -> str | None:
    """Where a cell links: the own unit's material for a liaison or unit head, the review page for
    those who may read every unit's (admins, leaders); reviewers' cells are not links."""
    endpoints = current_app.view_functions
    if restricted:
        return "tasks.edit" if "tasks.edit" in endpoints else None
    if policy.can(viewer, "contribution.read_all"):
        return "review.show" if "review.show" in endpoints else None
    return None


def link_prefix(endpoint: str | None) -> str | None:
    """The URL of ``endpoint`` for a contribution, less the id: the id is appended per cell."""
    if endpoint is None:
        return None
    probe = url_for(endpoint, contribution_id=1)
    if not probe.endswith("/1"):  # pragma: no cover - both endpoints end with the id
        raise RuntimeError(f"{endpoint} does not end with the contribution id")
    return probe[:-1]


@dataclass
class DashboardPage:
    cycle: object | None  # None: no cycle exists yet
    cycles: list
    filters: dict
    today: date | None = None
    restricted: bool = False  # only the viewer's own unit's row
    matrix: Markup | None = None  # the figures, the matrix and its pager, rendered (kept per token)
    dash: Dashboard | None = None  # only while the matrix is rendered
    href: str | None = None  # link prefix of a cell; None: cells are not links
    pager: str | None = None  # this page's URL less the page number (filters kept)
    _pieces: dict = field(default_factory=dict)

    def page_href(self, number: int) -> str:
        return f"{self.pager}{number}"

    @property
    def page_numbers(self) -> list[int | None]:
        """The pages the pager links: the first, the last and two around the current one (None: a gap)."""
        dash = self.dash
        if dash is None or dash.pages <= 1:
            return []
        wanted = {1, dash.pages} | set(range(max(1, dash.page - 2), min(dash.pages, dash.page + 2) + 1))
        out: list[int | None] = []
        for number in sorted(wanted):
            if out and number - (out[-1] or 0) > 1:
                out.append(None)
            out.append(number)
        return out

    def cells(self, row: UnitRow) -> Markup:
        """The ``<td>`` of every column of ``row``, as the matrix prints them."""
        state_filter = self.filters.get("state")
        name = escape(row.unit.name)
        out = []
        for c in row.line:
            if c is None:
                out.append("<td></td>")
                continue
            overdue = c.overdue_days > 0
            key = (c.state, overdue, c.overdue_workdays if overdue else 0)
            piece = self._pieces.get(key)
            if piece is None:
                piece = self._pieces[key] = _piece(c, overdue)
            css, title, label, mark = piece
            dim = " dim" if state_filter and c.state != state_filter else ""
            if c.contribution_id and self.href:
                out.append(f'<td class="{css}{dim}"{title}><a href="{self.href}{c.contribution_id}" '
                           f'aria-label="{name} {label}">{mark}</a></td>')
            else:
                out.append(f'<td class="{css}{dim}"{title}>{mark}</td>')
        return Markup("".join(out))


def _piece(c, overdue: bool) -> tuple[str, str, str, str]:
    """The escaped parts of a cell that depend only on its state and lateness (shared by many cells)."""
    late = escape(c.overdue_label)
    title = f' title="{late}"' if overdue else ""
    label = f"{escape(c.label)} {late}" if overdue else str(escape(c.label))
    return str(escape(c.css)), title, label, str(escape(c.mark))


def pager_prefix(cycle, filters: dict) -> str:
    """The dashboard's URL with ``cycle`` and ``filters``, ending in ``page=``: a page's number is appended."""
    args = {"cycle": cycle.id, "state": filters.get("state"), "kind": filters.get("unit_kind"),
            "overdue": "1" if filters.get("overdue_only") else None}
    return url_for("dashboard.index", **{k: v for k, v in args.items() if v}) + "&page="


def build_page(cycle, cycles: list, viewer, filters: dict, page: int | None = None,
               oversight: bool = False) -> DashboardPage:
    """The dashboard of ``cycle`` as ``viewer`` may see it (``cycle`` None: no cycle exists yet), its
    matrix paged by units (``svc.UNITS_PER_PAGE`` rows, or the app's DASHBOARD_UNITS_PER_PAGE).
    ``oversight``: an overseer's read (督导) — every unit, and cells that are not links (an overseer
    never opens a region's material).

    The rendered matrix is kept per process under the cycle's figures token, which the database
    changes with everything the matrix shows (states, submissions, assignments and their due dates,
    the outline, the units, the cycle's due date), and under what else it depends on: the day, the
    rows the viewer may see, where cells link, the filters and the page. Each request reads the token,
    so a change is seen at once, by every process."""
    if viewer.unit is not None:
        # The page header names the viewer's unit: read it now, not while rendering (the login already
        # loads it with the user, so this costs no query then).
        viewer.unit.name  # noqa: B018
    if cycle is None:
        return DashboardPage(None, cycles, filters)
    per_page = current_app.config.get("DASHBOARD_UNITS_PER_PAGE", svc.UNITS_PER_PAGE)
    restricted = not oversight and not svc.sees_all_units(viewer)
    href = None if oversight else link_prefix(cell_endpoint(viewer, restricted))
    today = local_today()
    out = DashboardPage(cycle, cycles, filters, today, restricted, href=href, pager=pager_prefix(cycle, filters))

    def render() -> tuple[Markup, int]:
        """The matrix and the number of the page it shows. The cycle was read before the token: its
        due date (which sections without one inherit) is read again."""
        db.session.refresh(cycle, ["due"])
        out.dash = svc.build_dashboard(cycle, viewer, **filters, today=today, page=page, per_page=per_page,
                                       all_units=oversight)
        try:
            return Markup(render_template("dashboard/_matrix.html", page=out, dash=out.dash,
                                          CELL_LABELS=svc.CELL_LABELS, CELL_CLASSES=svc.CELL_CLASSES,
                                          CELL_MARKS=svc.CELL_MARKS, percent=svc.percent)), out.dash.page
        finally:
            out.dash = None  # the rows hold ORM objects: nothing of them outlives the request

    def key(number):
        return cache_key(("dashboard", svc.restricted_units(viewer) if restricted else None, oversight, href,
                          tuple(sorted(filters.items())), number, per_page, today), cycle.id, token)

    token = figures_token(cycle.id)
    wanted = max(page or 1, 1)
    out.matrix = PAGES.get(key(wanted)) if token is not None else None
    if out.matrix is None:
        out.matrix, shown_page = render()
        # Kept under the page shown: a number past the last page is clamped by the service, and
        # keeping it under each such number would let any URL push real pages out of the cache.
        if token is not None and shown_page == wanted:
            PAGES.put(key(wanted), out.matrix)
    return out
