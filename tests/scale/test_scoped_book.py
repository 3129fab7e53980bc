"""The scoped figure book (what pages read) gives every reader exactly the answers of the full book:
printed citations, totals, rule checks and messages, literal-number checks, changes after approval —
for the office, a section's lead unit, a support unit and an anonymous visitor, with approved figures
shared or not. Prepared for one contribution, it answers without loading anything more."""
from __future__ import annotations

from decimal import Decimal

import pytest
from flask_login import AnonymousUserMixin
from sqlalchemy import select

from fazhi_flow.figures.evaluate import FigureBook, evaluate_contribution
from fazhi_flow.figures.scoped import ScopedFigureBook
from fazhi_flow.figures.visibility import Visibility

from .test_page_queries import count_queries
from .world import build_world

UNITS, SECTIONS = 4, 6


@pytest.fixture
def world(db):
    from fazhi_flow.models import Contribution
    from fazhi_flow.models.indicator import IndicatorValue

    w = build_world(db, UNITS, SECTIONS)
    # A figure changed after approval (unit 2's of section 0), cited by every text of section 0.
    approved = w.contribution_id(2, 0)
    assert w.states[approved] == "approved"
    row = db.session.scalar(select(IndicatorValue).where(IndicatorValue.contribution_id == approved))
    row.value = Decimal(row.approved_value) + 5
    # A required figure left blank by a draft, and a text citing a code nobody defines.
    draft = db.session.get(Contribution, w.first("draft"))
    draft.body += "\n另有{{no_such_code}}件。"
    db.session.commit()
    return w


def _readers(w):
    anonymous = AnonymousUserMixin()
    return {"system": None, "admin": w.admin, "reviewer": w.reviewer,
            "lead of section 0": w.liaison(0), "support unit": w.liaison(1), "anonymous": anonymous}


def _results(results) -> list:
    return [(r.rule.id, r.contribution.id if r.contribution is not None else None, r.status, r.full_message,
             sorted(r.owners), sorted(r.inputs), sorted(r.breakers), r.explanation) for r in results]


def _figures(fig) -> dict:
    return {
        "rows": [(r.indicator.code, r.value, r.approved_value, r.explanation) for r in fig.rows],
        "results": _results(fig.results),
        "literals": [repr(x) for x in fig.literals],
        "unknown": fig.unknown_citations, "empty": [i.code for i in fig.empty_citations],
        "foreign": fig.foreign_citations,
        "changes": [(ch.indicator.code, ch.contribution.id, ch.old, ch.new,
                     [(c.id, before, after) for c, before, after in ch.sentences]) for ch in fig.changes],
    }


def _contributions(db, w) -> list:
    from fazhi_flow.models import Contribution

    return list(db.session.scalars(select(Contribution).where(Contribution.cycle_id == w.cycle.id)
                                   .order_by(Contribution.id)))


@pytest.mark.parametrize("share", [False, True])
def test_every_reader_reads_what_the_full_book_gives(app, db, world, share):
    from fazhi_flow.services.figures import contribution_figures

    world.cycle.share_approved_figures = share
    db.session.commit()
    contributions = _contributions(db, world)
    compared = 0
    for name, reader in _readers(world).items():
        full = Visibility(FigureBook(world.cycle, readonly=True), reader)
        scoped = Visibility(ScopedFigureBook(world.cycle), reader)  # unprepared: loads on demand
        for c in contributions:
            assert scoped.values_for_text(c, c.body) == full.values_for_text(c, c.body), (name, c.id)
            assert scoped.values_for(c) == full.values_for(c), (name, c.id)
            assert scoped.names() == full.names(), name
            assert _results(evaluate_contribution(scoped.book, c, True, scoped)) == \
                _results(evaluate_contribution(full.book, c, True, full)), (name, c.id)
            compared += 1
        for ind in full.book.by_id.values():
            assert scoped.total(ind) == full.total(ind), (name, ind.code)
            assert scoped.book.total(ind) == full.book.total(ind), ind.code
        if reader is not None and getattr(reader, "is_authenticated", False):
            with app.test_request_context():
                for c in contributions[:: 5]:
                    assert _figures(contribution_figures(c, reader, ScopedFigureBook(world.cycle))) == \
                        _figures(contribution_figures(c, reader, FigureBook(world.cycle, readonly=True))), (name, c.id)
    assert compared == len(_readers(world)) * UNITS * SECTIONS


def test_prepared_for_a_page_it_loads_nothing_more(app, db, world):
    """What the editor and the review page ask of one contribution is loaded by ``prepare``."""
    from fazhi_flow.services.figures import contribution_figures

    contributions = _contributions(db, world)
    for reader in (world.reviewer, world.liaison(0), world.liaison(1)):
        for c in contributions:
            book = ScopedFigureBook(world.cycle)
            seen = Visibility(book, reader)
            book.prepare([c], rules=True)
            seen.leads(c.section_id)  # the reader's own sections: one query, asked once per page
            with app.test_request_context():
                expected = _figures(contribution_figures(c, reader, FigureBook(world.cycle, readonly=True)))
                with count_queries(db.engine) as statements:
                    seen.values_for_text(c, c.body)
                    got = contribution_figures(c, reader, book)
            assert _figures(got) == expected, c.id
            assert book._on_demand == 0, c.id
            # Only last year's lookups of contribution_figures itself remain (no figure loads).
            assert not [s for s in statements if "indicator_value" in s or "FROM contribution JOIN assignment" in s], \
                statements


def test_a_page_that_prepares_nothing_still_runs_bounded_queries(app, db):
    """Asking for every contribution one by one loads a few on demand, then the cycle at once."""
    counts = {}
    for size in ((3, 4), (12, 8)):
        w = build_world(db, *size)
        contributions = _contributions(db, w)
        with count_queries(db.engine) as statements:
            seen = Visibility(ScopedFigureBook(w.cycle), w.reviewer)
            for c in contributions:
                seen.values_for_text(c, c.body)
        counts[size] = len(statements)
    assert counts[(3, 4)] == counts[(12, 8)], counts
