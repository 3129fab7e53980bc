"""A large cycle's compile page lists the sections from aggregate SQL, reading no text, in a fixed number
of queries; each section's own page loads that section only, in a fixed number of queries too; the figure
book of plain rows the overview checks rules with gives the full book's results."""
from __future__ import annotations

import re

import pytest

from fazhi_flow.testing import count_queries, no_lazy_loads_while_rendering

from .test_compile_queries import LARGE, SMALL, _client, _get
from .world import build_world

# A text column read as such (``revision.body``), not only measured (``length(revision.body)``).
TEXT_READ = re.compile(r"(?<!length\()\b(revision|contribution|section_draft)\.body\b")


@pytest.fixture()
def large(app):
    """Every cycle counts as large: the compile page shows the overview and opens sections on their pages."""
    app.config["COMPILE_INLINE_MAX_ITEMS"] = 0
    yield
    app.config.pop("COMPILE_INLINE_MAX_ITEMS")


def _overview(client, db, url):
    client.get(url)
    db.session.remove()
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    return list(statements), response.get_data(as_text=True)


def test_the_overview_reads_no_text_in_fixed_queries(app, db, large):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size, cycle_state="compiling")
        cycle_id = world.cycle.id
        statements, html = _overview(_client(app, world.admin), db, f"/compile/{cycle_id}")
        counts[size] = len(statements)
        assert not [s for s in statements if TEXT_READ.search(s)]
        # A row per section (the headings above the assigned sections too), each linking to its page.
        rows = re.findall(r'<tr id="row-(\d+)"', html)
        assert {int(r) for r in rows} >= set(world.section_ids)
        for section_id in world.section_ids:
            assert f'href="/compile/{cycle_id}/sections/{section_id}"' in html
        assert 'name="body"' not in html and "全区合计" not in html and "本单位今年办理案件" not in html
        # Each assigned section: every unit assigned, a quarter approved (the world rotates 4 states).
        row = html[html.index(f'id="row-{world.section_ids[0]}"'):]
        cells = re.findall(r'<td class="num">(\d+)</td>', row[:row.index("</tr>")])
        assert int(cells[0]) == size[0] and int(cells[1]) + int(cells[2]) == size[0] and int(cells[3]) > 0
    assert counts[SMALL] == counts[LARGE], counts


def test_a_section_page_loads_that_section_only_in_fixed_queries(app, db, large):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size, cycle_state="compiling")
        section_id = world.section_ids[1]
        counts[size], html = _get(_client(app, world.admin), db, f"/compile/{world.cycle.id}/sections/{section_id}")
        # The approved numbers are printed: the citations were resolved.
        assert "全区合计" in html and "{{" not in html and 'name="body"' in html
        assert html.count('class="card compile-section') == 1
        assert 'rel="prev"' in html and 'rel="next"' in html
    assert counts[SMALL] == counts[LARGE], counts


@pytest.mark.parametrize("path", ["", "/sections/{section}"])
def test_overview_and_section_page_templates_do_not_lazy_load(app, db, large, path):
    world = build_world(db, *SMALL, cycle_state="compiling")
    client = _client(app, world.admin)
    url = f"/compile/{world.cycle.id}" + path.format(section=world.section_ids[0])
    db.session.remove()
    with no_lazy_loads_while_rendering(app, db.session):
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:800]


def test_the_plain_book_checks_rules_as_the_full_book_does(app, db):
    from sqlalchemy import update

    from fazhi_flow.figures.evaluate import evaluate_cycle
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.models.indicator import Indicator, IndicatorValue
    from fazhi_flow.publish.numbers import ApprovedFigureBook
    from fazhi_flow.services.compile import PlainApprovedFigureBook, StoredCitations

    world = build_world(db, 6, 5, cycle_state="compiling")
    cycle_id = world.cycle.id
    # Break one rule (l0 <= sum(c0)): the lead's approved figure above the section total.
    db.session.execute(update(IndicatorValue).where(
        IndicatorValue.indicator_id == db.session.scalar(
            db.select(Indicator.id).where(Indicator.cycle_id == cycle_id, Indicator.code == "l0")))
        .values(value=10 ** 9, approved_value=10 ** 9))
    db.session.commit()
    db.session.expunge_all()
    cycle = db.session.get(ReportCycle, cycle_id)

    def results(book):
        return [(r.rule.id, r.failed, r.blocking, r.full_message, sorted(r.inputs), sorted(r.owners))
                for r in evaluate_cycle(book, detail=True)]

    full, plain = results(ApprovedFigureBook(cycle, readonly=True)), results(PlainApprovedFigureBook(cycle))
    assert full == plain and len(full) == 5
    assert [r for r in plain if r[1]], "the broken rule fails"
    # The stored citations print from the plain book what the full book prints.
    book = PlainApprovedFigureBook(cycle)
    numbers, reference = StoredCitations(cycle, plain=True), StoredCitations(cycle)
    for cid in list(book.contributions)[:12]:
        keys = ["c0", "sum(c0)", "l0", "l1", "nope"]
        assert numbers.printed(cid, keys) == reference.printed(cid, keys)


def test_a_section_merged_with_the_plain_book_is_the_one_the_full_book_gives(app, db):
    from fazhi_flow.models import ReportCycle, Section
    from fazhi_flow.publish.merge import CitedTexts
    from fazhi_flow.services.compile import PlainBookTexts, section_view

    world = build_world(db, 5, 6, cycle_state="compiling")
    cycle_id, section_ids = world.cycle.id, list(world.section_ids)

    def views(numbers_for):
        found = {}
        for section_id in section_ids:
            db.session.expunge_all()
            cycle = db.session.get(ReportCycle, cycle_id)
            view = section_view(cycle, db.session.get(Section, section_id), numbers_for(cycle))
            found[section_id] = (view.prefill, {k: [str(p) for p in v] for k, v in view.material.items()},
                                 view.sources)
        return found

    plain, full = views(PlainBookTexts), views(CitedTexts)
    assert plain == full
    # The own, the summed, the lead's and the next section's figures are printed, none left unresolved.
    assert all("{{" not in prefill and "全区合计" in prefill for prefill, _m, _s in plain.values())
    assert all(s.get("figures") for _p, _m, sources in plain.values() for s in sources)


def test_the_compile_index_names_each_cycles_latest_draft_in_fixed_queries(app, db):
    from datetime import datetime

    from fazhi_flow.models import ReportDraftVersion

    from fazhi_flow.models import User

    counts = {}
    worlds = []
    admin_id = None
    for n in (1, 4):
        while len(worlds) < n:
            world = build_world(db, 2, 2, cycle_state="compiling", year=2020 + len(worlds))
            # Drafts 1..k, k differing per cycle: the page must name each cycle's own latest.
            for number in range(1, len(worlds) + 3):
                db.session.add(ReportDraftVersion(cycle_id=world.cycle.id, number=number, reason="测试",
                                                  text=f"第{number}稿", document={}, created_at=datetime(2025, 1, number)))
            admin_id = admin_id or world.admin.id
            db.session.commit()
            worlds.append(world)
        client = _client(app, db.session.get(User, admin_id))
        counts[n], html = _get(client, db, "/compile/")
        rows = re.findall(r"<tr>\s*<td>(\d{4})</td>.*?第(\d+)稿", html, re.S)
        assert sorted((int(y), int(k)) for y, k in rows) == [(2020 + i, i + 2) for i in range(n)]
    assert counts[1] == counts[4], counts


def test_every_section_merged_with_the_plain_book_is_what_the_full_book_gives(app, db):
    """The small cycle's compile page merges every section with the plain-rows book (PlainBookTexts)."""
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.publish.merge import CitedTexts
    from fazhi_flow.services.compile import PlainBookTexts, section_views

    world = build_world(db, 4, 5, cycle_state="compiling")
    cycle_id = world.cycle.id

    def merged(numbers_for):
        db.session.expunge_all()
        cycle = db.session.get(ReportCycle, cycle_id)
        return [(v.section.id, v.prefill, {k: [str(p) for p in m] for k, m in v.material.items()}, v.sources)
                for v in section_views(cycle, numbers_for(cycle))]

    plain, full = merged(PlainBookTexts), merged(CitedTexts)
    assert plain == full and any("全区合计" in prefill for _id, prefill, _m, _s in plain)
