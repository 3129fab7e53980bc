"""The dashboard loads with a fixed number of queries, however many units and sections there are."""

from sqlalchemy import select

from fazhi_flow.figures.cache import PAGES
from fazhi_flow.models import Unit
from fazhi_flow.testing import count_queries

from .conftest import bulk_cycle


def render(client, db, url, cached=False):
    """(queries, response) of ``url``: computed afresh, or with ``cached`` from the matrix kept by the
    request before (the figures token unchanged)."""
    if not cached:
        PAGES.clear()
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements), response


def test_query_count_does_not_grow_with_units_or_sections(factory, db, login_as):
    admin = factory.user("admin")
    db.session.commit()
    small = bulk_cycle(db, n_units=10, n_sections=3)
    large = bulk_cycle(db, n_units=300, n_sections=12)
    client = login_as(admin)
    client.get("/dashboard/")  # warm up: first-request work is not the dashboard's
    n_small, page_small = render(client, db, f"/dashboard/?cycle={small.id}")
    n_large, page_large = render(client, db, f"/dashboard/?cycle={large.id}")
    # 300 units are shown 50 at a time (paged when huge, issue 11); the last page costs the same.
    assert page_large.get_data(as_text=True).count('<th class="unit" scope="row">') == 50
    assert "共300个单位，第1–50个（第1/6页）" in page_large.get_data(as_text=True)
    assert page_small.get_data(as_text=True).count('<th class="unit" scope="row">') == 10
    assert n_small == n_large, (n_small, n_large)
    assert n_large <= 15
    # Kept under the figures token: the same page again costs fewer queries, however large.
    n_large_kept, again_large = render(client, db, f"/dashboard/?cycle={large.id}", cached=True)
    render(client, db, f"/dashboard/?cycle={small.id}")
    n_small_kept, again_small = render(client, db, f"/dashboard/?cycle={small.id}", cached=True)
    assert n_small_kept == n_large_kept < n_large, (n_small_kept, n_large_kept, n_large)
    assert again_large.get_data() == page_large.get_data() and again_small.get_data() == page_small.get_data()
    n_last, page_last = render(client, db, f"/dashboard/?cycle={large.id}&page=6")
    assert page_last.get_data(as_text=True).count('<th class="unit" scope="row">') == 50 and n_last == n_large
    # Filters and the export too.
    assert render(client, db, f"/dashboard/?cycle={small.id}&state=approved&kind=township&overdue=1")[0] == \
        render(client, db, f"/dashboard/?cycle={large.id}&state=approved&kind=township&overdue=1")[0]
    with count_queries(db.engine) as small_export:
        client.get(f"/dashboard/export.xlsx?cycle={small.id}")
    with count_queries(db.engine) as large_export:
        client.get(f"/dashboard/export.xlsx?cycle={large.id}")
    assert len(small_export) == len(large_export)


def test_query_count_for_a_unit_liaison_is_fixed_too(factory, db, login_as):
    small = bulk_cycle(db, n_units=10, n_sections=3)
    large = bulk_cycle(db, n_units=300, n_sections=3)
    unit = db.session.scalar(select(Unit).where(Unit.code == "b300u5"))
    liaison = factory.user("liaison", unit=unit)
    db.session.commit()
    client = login_as(liaison)
    client.get("/dashboard/")
    n_small, _ = render(client, db, f"/dashboard/?cycle={small.id}")
    n_large, page = render(client, db, f"/dashboard/?cycle={large.id}")
    assert n_small == n_large
    assert page.get_data(as_text=True).count('<th class="unit" scope="row">') == 1
