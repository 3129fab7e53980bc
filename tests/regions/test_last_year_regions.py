"""Last year's cycle (shown beside this year's figures and text) is the same region's, never another's."""
from datetime import date


def _cycle(db, region, year, printed):
    from fazhi_flow.models import ReportCycle

    cycle = ReportCycle(owner=region, year=year, region=printed, title=f"{year}年法治政府建设年度报告",
                        due=date(year + 1, 1, 10))
    db.session.add(cycle)
    db.session.flush()
    return cycle


def test_previous_cycle_follows_the_owning_region_not_the_printed_name(two_regions, db):
    from fazhi_flow.figures.yoy import previous_cycle

    # Both counties print the same short name (the constraint is on printed name and year, so the
    # years differ): only the owner tells them apart.
    zy_last = _cycle(db, two_regions.zy.region, 2023, "城关区")
    hs_last = _cycle(db, two_regions.hs.region, 2023, "赫山区")
    hs_now = _cycle(db, two_regions.hs.region, 2024, "城关区")
    zy_now = _cycle(db, two_regions.zy.region, 2024, "资阳区")
    db.session.commit()
    assert previous_cycle(hs_now) == hs_last
    assert previous_cycle(zy_now) == zy_last
    # A cycle recorded as cloned from another region's is not taken as its last year.
    zy_now.cloned_from_id = hs_last.id
    assert previous_cycle(zy_now) == zy_last
