"""Loading objects for the API: only what the caller may see, everything else 404 (as a missing id).

Unlike the pages (which say 403 for a colleague unit's material of the same region), the API answers
404 for every object the caller may not read: an id tells nothing about material one may not see.
"""
from __future__ import annotations

from .. import policy
from ..extensions import db
from ..models import Contribution, Publication, ReportCycle
from ..web.own_region import row_or_none
from .problems import ApiProblem


def cycle_or_404(user, cycle_id: int) -> ReportCycle:
    cycle = row_or_none(ReportCycle, cycle_id)
    if cycle is None or cycle.region_id != user.region_id or not sees_cycle(user, cycle):
        raise ApiProblem(404, "该年度报告不存在。")
    return cycle


def sees_cycle(user, cycle) -> bool:
    """As the progress page decides (``cycle.view``): the region's people who see progress at all."""
    return policy.can(user, "cycle.view", cycle)


def contribution_or_404(user, contribution_id: int) -> Contribution:
    contribution = row_or_none(Contribution, contribution_id)
    if contribution is None or policy.region_of(contribution) != user.region_id \
            or not policy.can(user, "contribution.view", contribution):
        raise ApiProblem(404, "这份材料不存在，或不由您查看。")
    return contribution


def publication_or_404(user, publication_id: int) -> Publication:
    publication = row_or_none(Publication, publication_id)
    if publication is None or not policy.can(user, "publication.view", publication):
        raise ApiProblem(404, "该发布版本不存在。")
    return publication


def reload(obj):
    """``obj`` as stored now (after a refused operation's rollback)."""
    db.session.refresh(obj)
    return obj
