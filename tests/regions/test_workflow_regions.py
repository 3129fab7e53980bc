"""The workflow refuses actors of another region even when called directly (not through a page)."""
import pytest

from fazhi_flow.errors import PermissionDenied


def _collecting_cycle(factory, db, county, region_name):
    from datetime import date

    from fazhi_flow.models import ReportCycle

    cycle = ReportCycle(owner=county.region, year=2025, region=region_name, title="2025年法治政府建设年度报告",
                        due=date(2026, 1, 10), state="collecting")
    db.session.add(cycle)
    section = factory.section(cycle, title="推进依法行政")
    assignment = factory.assignment(section, county.gaj)
    contribution = factory.contribution(assignment, state="submitted")
    db.session.commit()
    return cycle, contribution


def test_another_regions_admin_and_reviewer_are_refused_by_the_machine(two_regions, factory, db):
    from fazhi_flow import policy
    from fazhi_flow.workflow.machine import fire

    zy_cycle, zy_material = _collecting_cycle(factory, db, two_regions.zy, "益阳市资阳区")
    hs = two_regions.hs
    # 赫山's reviewer is named by no section: "any reviewer" means any reviewer of the cycle's region.
    assert not policy.is_contribution_reviewer(hs.reviewer, zy_material)
    assert policy.is_contribution_reviewer(two_regions.zy.reviewer, zy_material)
    with pytest.raises(PermissionDenied):
        fire(zy_material, "approve", hs.reviewer)
    with pytest.raises(PermissionDenied):
        fire(zy_cycle, "compile", hs.admin)
    db.session.rollback()
    db.session.refresh(zy_material)
    db.session.refresh(zy_cycle)
    assert zy_material.state == "submitted" and zy_cycle.state == "collecting"
    # The region's own reviewer still approves.
    fire(zy_material, "approve", two_regions.zy.reviewer)
    assert zy_material.state == "approved"
