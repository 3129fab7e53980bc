"""The figures token (database triggers) and the aggregates cached under it.

Every kind of write the aggregates depend on changes the token, by the ORM or by plain SQL that the
application never sees; a draft's text does not. A page read after any such write gives what a book
computed from scratch gives, although the earlier answer sits in the cache; a rolled-back change leaves
nothing behind that a later reader could be given.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from fazhi_flow.figures import cache
from fazhi_flow.figures.evaluate import FigureBook
from fazhi_flow.figures.scoped import ScopedFigureBook
from fazhi_flow.figures.visibility import Visibility

from .test_page_queries import count_queries
from .world import build_world

UNITS, SECTIONS = 4, 4


@pytest.fixture
def world(db):
    return build_world(db, UNITS, SECTIONS)


def _token(db, w):
    db.session.expire_all()
    return cache.figures_token(w.cycle.id)


def _totals(w, reader=None) -> dict:
    """Each indicator's total and a reader's visible total, by the scoped book (cached aggregates)."""
    book = ScopedFigureBook(w.cycle)
    if reader is None:
        return {code: book.total(ind) for code, ind in book.indicators.items()}
    seen = Visibility(book, reader)
    return {code: seen.total(ind) for code, ind in book.indicators.items()}


def _expected(w, reader=None) -> dict:
    book = FigureBook(w.cycle, readonly=True)
    if reader is None:
        return {code: book.total(ind) for code, ind in book.indicators.items()}
    seen = Visibility(book, reader)
    return {code: seen.total(ind) for code, ind in book.indicators.items()}


def _a_value(db, w, state="approved"):
    from fazhi_flow.models.indicator import IndicatorValue

    return db.session.scalar(select(IndicatorValue).where(
        IndicatorValue.contribution_id == w.first(state), IndicatorValue.value.is_not(None)))


def test_a_world_built_by_bulk_inserts_has_a_token(db, world):
    assert _token(db, world) is not None


@pytest.mark.parametrize("change", [
    "value", "approved_value", "new_value", "deleted_value", "state", "role", "indicator", "rule",
    "deleted_contribution"])
def test_every_write_the_figures_depend_on_changes_the_token(db, world, change):
    """Plain SQL: no application code is asked to remember the token."""
    before = _token(db, world)
    cid = world.first("approved")
    statements = {
        "value": "UPDATE indicator_value SET value = value + 1 WHERE contribution_id = :c",
        "approved_value": "UPDATE indicator_value SET approved_value = approved_value + 1 WHERE contribution_id = :c",
        "new_value": None,
        "deleted_value": "DELETE FROM indicator_value WHERE contribution_id = :c",
        "state": "UPDATE contribution SET state = 'returned' WHERE id = :c",
        "role": "UPDATE assignment SET role = CASE WHEN role = 'lead' THEN 'support' ELSE 'lead' END"
                " WHERE id = (SELECT assignment_id FROM contribution WHERE id = :c)",
        "indicator": "UPDATE indicator SET reported_by = 'lead' WHERE id = (SELECT min(id) FROM indicator)",
        "rule": "DELETE FROM rule WHERE id = (SELECT min(id) FROM rule)",
        "deleted_contribution": "DELETE FROM contribution WHERE id = :c",
    }
    if change == "new_value":
        from fazhi_flow.models.indicator import IndicatorValue

        row = _a_value(db, world)
        where = {"contribution_id": row.contribution_id, "indicator_id": row.indicator_id}
        db.session.execute(text("DELETE FROM indicator_value WHERE id = :i"), {"i": row.id})
        db.session.commit()
        before = _token(db, world)
        db.session.add(IndicatorValue(**where, value=Decimal(7)))
    else:
        db.session.execute(text(statements[change]), {"c": cid})
    db.session.commit()
    after = _token(db, world)
    assert after is not None and after != before


def test_a_draft_text_or_an_unchanged_state_leaves_the_token(db, world):
    from fazhi_flow.models import Contribution

    before = _token(db, world)
    draft = db.session.get(Contribution, world.first("draft"))
    draft.body = draft.body + "补充一句。"
    db.session.execute(text("UPDATE contribution SET state = state, updated_at = CURRENT_TIMESTAMP WHERE id = :c"),
                       {"c": world.first("draft")})
    db.session.commit()
    assert _token(db, world) == before


def test_totals_after_writes_are_the_fresh_ones_though_the_old_are_cached(db, world):
    cache.AGGREGATES.clear()
    cache.UNIT_PARTS.clear()
    readers = (None, world.reviewer, world.liaison(0), world.liaison(1))
    for reader in readers:
        assert _totals(world, reader) == _expected(world, reader)
    cached_once = len(cache.AGGREGATES._items)
    assert cached_once == 1  # one entry for every reader; a liaison's own parts are kept per unit
    assert len(cache.UNIT_PARTS._items) == 4  # each liaison's own parts and its sections' roles
    # A second read of an unchanged cycle runs no aggregate, for the office or a liaison.
    for reader in (None, world.liaison(0)):
        with count_queries(db.engine) as statements:
            _totals(world, reader)
        assert not [s for s in statements if "GROUP BY" in s], statements
    # Behind the application's back: a value, a state (what a restricted reader sees), a role.
    row = _a_value(db, world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1000 WHERE id = :i"), {"i": row.id})
    db.session.execute(text("UPDATE contribution SET state = 'draft' WHERE id = :c"), {"c": world.first("submitted")})
    db.session.commit()
    db.session.expire_all()
    for reader in readers:
        assert _totals(world, reader) == _expected(world, reader), reader
    assert len(cache.AGGREGATES._items) == cached_once + 1


def test_what_a_rolled_back_transaction_saw_is_never_given_to_another(db, world):
    cache.AGGREGATES.clear()
    before = _totals(world)
    row = _a_value(db, world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1000 WHERE id = :i"), {"i": row.id})
    inside = _totals(world)  # computed and cached under this transaction's own token
    assert inside != before
    db.session.rollback()
    db.session.expire_all()
    assert _totals(world) == before == _expected(world)


def test_a_cycle_is_deleted_with_its_contributions(db, world):
    """The triggers fire while the cycle goes; no row for a deleted cycle is left or refused."""
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.models.figures_version import FiguresVersion

    cycle_id = world.cycle.id
    db.session.execute(text("DELETE FROM figures_version"))
    db.session.commit()
    for table in ("indicator_value", "figure_explanation", "revision", "contribution", "rule", "indicator"):
        db.session.execute(text(f"DELETE FROM {table}"))
    db.session.delete(db.session.get(ReportCycle, cycle_id))
    db.session.commit()
    assert db.session.scalar(select(FiguresVersion).where(FiguresVersion.cycle_id == cycle_id)) is None


def _failing(book) -> list:
    from fazhi_flow.figures.evaluate import evaluate_cycle

    return sorted((r.rule.id, r.full_message, r.explanation, r.blocking)
                  for r in evaluate_cycle(book, detail=True) if r.failed)


def _cached_failing(w) -> list:
    from fazhi_flow.services.compile import PlainApprovedFigureBook

    return sorted((f.rule.id, f.full_message, f.explanation, f.blocking)
                  for f in PlainApprovedFigureBook(w.cycle).failed_rules())


def test_the_compile_pages_rule_checks_follow_every_change(db, world):
    """The failing rules kept under the token are what a fresh evaluation of the approved figures gives,
    after approved values change behind the application's back and after a unit is renamed."""
    from fazhi_flow.models import Unit
    from fazhi_flow.publish.numbers import ApprovedFigureBook

    cache.BOOKS.clear()
    cache.AGGREGATES.clear()
    assert _cached_failing(world) == _failing(ApprovedFigureBook(world.cycle, readonly=True))
    # Everything approved, and each section's rule l<s> <= sum(c<s>) broken by a lead figure far
    # above the units' sum.
    db.session.execute(text("UPDATE contribution SET state = 'approved'"))
    db.session.execute(text("UPDATE indicator_value SET approved_value = COALESCE(value, 1)"))
    db.session.execute(text("UPDATE indicator_value SET approved_value = 99999999 WHERE indicator_id IN"
                            " (SELECT id FROM indicator WHERE code LIKE 'l%')"))
    db.session.execute(text("UPDATE revision SET data = NULL"))  # the approved figures are the values
    db.session.commit()
    db.session.expire_all()
    after = _cached_failing(world)
    assert after  # the rules now fail, with messages naming units and figures
    assert after == _failing(ApprovedFigureBook(world.cycle, readonly=True))
    unit = db.session.get(Unit, world.liaison(1).unit_id)
    unit.name = unit.name + "（更名）"
    db.session.commit()
    db.session.expire_all()
    renamed = _cached_failing(world)
    assert renamed == _failing(ApprovedFigureBook(world.cycle, readonly=True))
    if any(world.liaison(1).unit.name in message for _, message, _, _ in renamed):
        assert renamed != after


def test_the_compile_pages_tallies_kept_under_the_token_follow_every_change(db, world):
    """Counts by state and approved characters per section: kept, and after each kind of write behind
    the application's back (a state, a revision's text, a contribution moved to another section) what a
    fresh count gives."""
    from fazhi_flow.services import compile as svc

    cache.AGGREGATES.clear()
    before = svc.section_tallies(world.cycle)
    assert before == svc._section_tallies(world.cycle)
    assert svc.section_tallies(world.cycle) is before  # kept, not counted again
    draft, approved = world.first("draft"), world.first("approved")
    for statement in (f"UPDATE contribution SET state = 'approved' WHERE id = {draft}",
                      f"UPDATE revision SET body = body || '追加的文字' WHERE contribution_id = {approved}",
                      f"UPDATE contribution SET section_id = (SELECT min(id) FROM section WHERE id <> "
                      f"contribution.section_id AND cycle_id = contribution.cycle_id) WHERE id = {approved}"):
        db.session.execute(text(statement))
        db.session.commit()
        db.session.expire_all()
        after = svc.section_tallies(world.cycle)
        assert after == svc._section_tallies(world.cycle), statement
        assert after != before, statement  # the write did change what is counted
        before = after


def test_a_transaction_reading_between_two_writes_leaves_no_stale_entry(db, world):
    """On PostgreSQL the token changes once per transaction (at its first write), so what the
    transaction reads in between must not be kept: after the commit, readers get the final figures."""
    cache.AGGREGATES.clear()
    row = _a_value(db, world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1000 WHERE id = :i"), {"i": row.id})
    between = _totals(world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1000 WHERE id = :i"), {"i": row.id})
    db.session.commit()
    db.session.expire_all()
    final = _totals(world)
    assert final != between and final == _expected(world)


def test_a_bulk_insert_changes_the_token_once_per_transaction(db, world):
    """Thousands of rows in one statement: one token for the transaction (PostgreSQL rewrites the
    cycle's row once, not once per row), a new one for the next."""
    before = _token(db, world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1"))
    db.session.commit()
    first = _token(db, world)
    db.session.execute(text("UPDATE indicator_value SET value = value + 1"))
    db.session.commit()
    assert len({before, first, _token(db, world)}) == 3


def test_a_decision_locks_the_cycles_token_row_before_the_contribution(db, world, is_postgres):
    """PostgreSQL: every decision takes the token row first, so two requests deciding two contributions
    in opposite order (a bulk approve and a single one) queue instead of deadlocking; a draft save
    (no figures) does not queue there."""
    from sqlalchemy.exc import OperationalError

    from fazhi_flow.database import lock_row
    from fazhi_flow.models import Contribution

    if not is_postgres:
        pytest.skip("PostgreSQL only: a SQLite writer holds the whole database from BEGIN IMMEDIATE")
    c = db.session.get(Contribution, world.first("submitted"))
    probe = text("SELECT 1 FROM figures_version WHERE cycle_id = :c FOR UPDATE NOWAIT")
    lock_row(c)
    with db.engine.connect() as other:
        with pytest.raises(OperationalError):
            other.execute(probe, {"c": c.cycle_id})
    db.session.rollback()
    lock_row(c, columns_only=True)
    with db.engine.connect() as other:
        assert other.execute(probe, {"c": c.cycle_id}).scalar() == 1
        other.rollback()
    db.session.rollback()


def _cited(world, reader, fresh: bool) -> dict:
    """What each of ``reader``'s texts prints of its citations: by a prepared scoped book (kept single
    reporters and changed values) or by a full book computed afresh."""
    from fazhi_flow.models import Contribution

    rows = list(db_session(world).scalars(select(Contribution).where(
        Contribution.cycle_id == world.cycle.id, Contribution.unit_id == reader.unit_id).order_by(Contribution.id)))
    if fresh:
        book = FigureBook(world.cycle, readonly=True)
    else:
        book = ScopedFigureBook(world.cycle)
        book.note_reader(reader.unit_id)
        book.prepare(rows)
    seen = Visibility(book, reader)
    seen.known_codes  # noqa: B018 - the reader's own sections (one query of its own, not a batch)
    with count_queries(db_session(world).get_bind()) as statements:
        printed = {c.id: seen.values_for_text(c, c.body) for c in rows}
    # Prepared: the single reporters and changed values were loaded in the batch, none on demand.
    assert fresh or not statements, statements
    return printed


def db_session(world):
    from fazhi_flow.extensions import db as _db

    return _db.session


def test_single_reporters_and_changed_values_kept_under_the_token_follow_every_change(db, world):
    """The scoped book keeps which contributions alone report an indicator and which values changed
    after approval; after a lead changes hands or an approved value changes (plain SQL), what a text
    prints equals a fresh book's, for a lead and a supporting unit."""
    cache.AGGREGATES.clear()
    readers = (world.liaison(0), world.liaison(1))
    for reader in readers:
        assert _cited(world, reader, fresh=False) == _cited(world, reader, fresh=True)
    # The section led by unit 1 (reader 0's text in the section before cites its lead's figure) hands
    # the lead to unit 2, which enters that figure; then an approved value is changed.
    section, indicator = db.session.execute(text(
        "SELECT a.section_id, i.id FROM assignment a JOIN indicator i ON i.section_id = a.section_id "
        "WHERE a.unit_id = :u AND a.role = 'lead' AND i.reported_by = 'lead' ORDER BY a.section_id LIMIT 1"),
        {"u": world.unit_ids[1]}).first()
    new_lead = db.session.execute(text("SELECT id FROM contribution WHERE section_id = :s AND unit_id = :u"),
                                  {"s": section, "u": world.unit_ids[2]}).scalar()
    db.session.execute(text("UPDATE assignment SET role = 'support' WHERE section_id = :s"), {"s": section})
    db.session.execute(text("UPDATE assignment SET role = 'lead' WHERE section_id = :s AND unit_id = :u"),
                       {"s": section, "u": world.unit_ids[2]})
    db.session.execute(text("DELETE FROM indicator_value WHERE indicator_id = :i"), {"i": indicator})
    db.session.execute(text("INSERT INTO indicator_value (contribution_id, indicator_id, value, updated_at) "
                       "VALUES (:c, :i, 41, CURRENT_TIMESTAMP)"),
                       {"c": new_lead, "i": indicator})
    db.session.commit()
    approved = db.session.execute(text(
        "SELECT id FROM indicator_value WHERE approved_value IS NOT NULL ORDER BY id LIMIT 1")).scalar()
    db.session.execute(text("UPDATE indicator_value SET value = approved_value + 7 WHERE id = :i"), {"i": approved})
    db.session.commit()
    db.session.expire_all()
    for reader in readers:
        assert _cited(world, reader, fresh=False) == _cited(world, reader, fresh=True), reader


def _rule_results(world, contribution_id: int, reader, fresh: bool) -> list:
    """What the editor's figures area says of the rules: by a scoped book (the rules' sections as plain
    rows kept under the token) or by a full book computed afresh."""
    from fazhi_flow.models import Contribution
    from fazhi_flow.services.figures import contribution_figures

    session = db_session(world)
    session.expire_all()
    c = session.get(Contribution, contribution_id)
    if fresh:
        book = FigureBook(world.cycle, readonly=True)
    else:
        book = ScopedFigureBook(world.cycle)
        book.prepare([c], rules=True)
    fig = contribution_figures(c, reader, book)
    return [(r.rule.id, r.status, r.full_message, r.explanation, r.blocking, sorted(r.inputs), sorted(r.breakers))
            for r in fig.results]


@pytest.mark.parametrize("change", ["value", "state", "unit", "role", "explanation", "moved"])
def test_a_rules_sum_kept_as_plain_rows_follows_every_change(db, world, change, monkeypatch):
    """The editor and the review page read a rule's sum over every unit of a section from plain rows
    kept under the token: read again without a write they are not loaded again, and after each kind
    of write behind the application's back (another unit's value, state, name, role, explanation, a
    contribution moved into the section) the rules read what a fresh full book gives, for the office
    and for a liaison."""
    from fazhi_flow.figures import scoped

    cache.SECTIONS.clear()
    cid = world.contribution_id(0, 0)
    readers = (world.reviewer, world.liaison(0))
    for reader in readers:
        assert _rule_results(world, cid, reader, fresh=False) == _rule_results(world, cid, reader, fresh=True)
    before = {reader.id: _rule_results(world, cid, reader, fresh=False) for reader in readers}
    kept = scoped.ScopedFigureBook._plain_rows
    monkeypatch.setattr(scoped.ScopedFigureBook, "_plain_rows", lambda *a: pytest.fail("loaded again"))
    for reader in readers:
        assert _rule_results(world, cid, reader, fresh=False) == before[reader.id]
    monkeypatch.setattr(scoped.ScopedFigureBook, "_plain_rows", kept)

    other, third = world.contribution_id(1, 0), world.contribution_id(2, 0)
    rule = db.session.execute(text("SELECT id FROM rule WHERE section_id = :s"), {"s": world.section_ids[0]}).scalar()
    statements = {
        "value": [f"UPDATE indicator_value SET value = COALESCE(value, 0) + 1000 WHERE contribution_id = {other}"],
        "state": [f"UPDATE contribution SET state = 'draft' WHERE id = {other}",
                  f"UPDATE contribution SET state = 'approved' WHERE id = {third}"],
        "unit": [f"UPDATE unit SET name = name || '（更名）' WHERE id = {world.unit_ids[1]}"],
        "role": [f"UPDATE assignment SET role = 'support' WHERE section_id = {world.section_ids[0]}",
                 f"UPDATE assignment SET role = 'lead' WHERE id = (SELECT assignment_id FROM contribution"
                 f" WHERE id = {other})"],
        "explanation": [f"INSERT INTO figure_explanation (contribution_id, key, text, updated_at) VALUES"
                        f" ({cid}, 'rule:{rule}', '数字差异系口径调整所致', CURRENT_TIMESTAMP)"],
        "moved": [f"UPDATE contribution SET section_id = {world.section_ids[0]} WHERE id = "
                  f"{world.contribution_id(1, 1)}"],
    }[change]
    for statement in statements:
        db.session.execute(text(statement))
    db.session.commit()
    after = {reader.id: _rule_results(world, cid, reader, fresh=False) for reader in readers}
    for reader in readers:
        assert after[reader.id] == _rule_results(world, cid, reader, fresh=True), (change, reader.username)
    if change != "moved":  # a second contribution of a unit in a section: compared, not required to show
        assert after != before, change  # the write did change what the rules say


def test_a_contribution_asked_about_after_its_plain_row_takes_its_place(db, world):
    """A page that asks about another unit's contribution of a section loaded as plain rows gets
    answers about that object, which then stands in the section's lists in place of the row."""
    from fazhi_flow.figures.scoped import ContributionRow
    from fazhi_flow.models import Contribution

    cache.SECTIONS.clear()
    shown = db.session.get(Contribution, world.contribution_id(0, 0))
    other = db.session.get(Contribution, world.contribution_id(1, 0))
    book = ScopedFigureBook(world.cycle)
    book.prepare([shown], rules=True)
    ind = book.indicators["c0"]
    assert any(isinstance(c, ContributionRow) and c.id == other.id for c in book.reporters[ind.id])
    full = FigureBook(world.cycle, readonly=True)
    assert book.reports(other, ind) and book.value(other, ind) == full.value(full.contributions[other.id], ind)
    listed = [c for c in book.reporters[ind.id] if c.id == other.id]
    assert listed == [other] and listed[0] is other
    assert [c.id for c in book.reporters[ind.id]] == [c.id for c in full.reporters[ind.id]]


def test_a_liaisons_own_parts_kept_per_unit_follow_its_own_values(db, world):
    """A liaison's visible totals add its unit's current values to the others' approved ones: the
    unit's own parts are kept per unit under the token, and after its value changes behind the
    application's back the totals are a fresh full book's again, different from before."""
    cache.UNIT_PARTS.clear()
    for statement in ("UPDATE report_cycle SET share_approved_figures = TRUE",
                      "UPDATE contribution SET state = 'approved'",
                      "UPDATE indicator_value SET value = COALESCE(value, 1), approved_value = COALESCE(value, 1)"):
        db.session.execute(text(statement))
    db.session.commit()
    db.session.expire_all()
    reader = world.liaison(0)
    before = _totals(world, reader)
    assert before == _expected(world, reader)
    assert any(visible and total is not None for visible, total in before.values())
    with count_queries(db.engine) as statements:
        assert _totals(world, reader) == before
    assert not [s for s in statements if "GROUP BY" in s], statements
    db.session.execute(text("UPDATE indicator_value SET value = value + 1000 WHERE contribution_id = :c"),
                       {"c": world.contribution_id(0, 0)})
    db.session.commit()
    db.session.expire_all()
    after = _totals(world, reader)
    assert after == _expected(world, reader)
    assert after != before


def test_a_single_reporter_read_before_the_changed_values_is_still_listed_as_changed(db, world):
    """A page that prepares nothing first resolves a lead's figure (the single reporter, read as a
    plain row) and then lists the values changed after approval: that lead's changed value is listed,
    with the sentences citing it, as a fresh full book lists it."""
    from fazhi_flow.models import Contribution
    from fazhi_flow.services.figures import changes_after_approval

    lead = db.session.execute(text(
        "SELECT c.id FROM contribution c JOIN assignment a ON a.id = c.assignment_id "
        "WHERE c.section_id = :s AND a.role = 'lead'"), {"s": world.section_ids[1]}).scalar()
    db.session.execute(text(f"UPDATE contribution SET state = 'approved' WHERE id = {lead}"))
    db.session.execute(text(
        "UPDATE indicator_value SET approved_value = 5, value = 8 WHERE contribution_id = :c AND indicator_id ="
        " (SELECT id FROM indicator WHERE code = 'l1' AND cycle_id = :y)"), {"c": lead, "y": world.cycle.id})
    db.session.commit()
    db.session.expire_all()

    def listed(book):
        seen = Visibility(book, world.reviewer)
        citing = db.session.get(Contribution, world.contribution_id(0, 0))  # cites l1 (the next section's lead)
        book.contributions.setdefault(citing.id, citing)
        assert "8" in str(seen.values_for_text(citing, citing.body).get("l1"))
        return sorted((ch.indicator.code, ch.contribution.id, ch.old, ch.new,
                       sorted((c.id, before, after) for c, before, after in ch.sentences))
                      for ch in changes_after_approval(world.cycle, book, seen))

    expected = listed(FigureBook(world.cycle, readonly=True))
    assert ("l1", lead) in {(code, cid) for code, cid, *_ in expected}
    assert listed(ScopedFigureBook(world.cycle)) == expected


def test_a_value_changed_by_another_request_while_a_page_loads_is_listed_as_changed(
        db, world, is_postgres, monkeypatch):
    """Another request commits a change of a lead's approved figure after the page's list of changed
    values was read and before the single reporters are (as plain rows): the page still lists that
    change, with the sentences citing it, as a full book read afterwards does."""
    from fazhi_flow.figures import scoped
    from fazhi_flow.models import Contribution
    from fazhi_flow.services.figures import contribution_figures

    if not is_postgres:
        pytest.skip("PostgreSQL only: a second SQLite writer waits for the test's own transaction")
    lead = db.session.execute(text(
        "SELECT c.id FROM contribution c JOIN assignment a ON a.id = c.assignment_id "
        "WHERE c.section_id = :s AND a.role = 'lead'"), {"s": world.section_ids[1]}).scalar()
    db.session.execute(text(f"UPDATE contribution SET state = 'approved' WHERE id = {lead}"))
    db.session.execute(text(f"UPDATE indicator_value SET value = 3, approved_value = 3 WHERE contribution_id = {lead}"))
    db.session.commit()
    db.session.expire_all()
    batch, done = scoped.ScopedFigureBook._batch, []

    def batch_after_a_commit(self, condition):
        if not done:
            done.append(True)
            with db.engine.connect() as other:
                other.execute(text("UPDATE indicator_value SET value = 9 WHERE contribution_id = :c AND indicator_id ="
                                   " (SELECT id FROM indicator WHERE code = 'l1' AND cycle_id = :y)"),
                              {"c": lead, "y": world.cycle.id})
                other.commit()
        return batch(self, condition)

    def changes(book):
        c = db.session.get(Contribution, world.contribution_id(0, 0))  # its text cites {{l1}}
        book.prepare([c], rules=True)
        return [(ch.indicator.code, ch.contribution.id, ch.old, ch.new, [(s[0].id, s[1], s[2]) for s in ch.sentences])
                for ch in contribution_figures(c, world.reviewer, book).changes]

    monkeypatch.setattr(scoped.ScopedFigureBook, "_batch", batch_after_a_commit)
    kept = changes(scoped.ScopedFigureBook(world.cycle))
    monkeypatch.setattr(scoped.ScopedFigureBook, "_batch", batch)
    db.session.expire_all()
    expected = changes(FigureBook(world.cycle, readonly=True))
    assert [(code, cid) for code, cid, *_ in expected] == [("l1", lead)]
    assert kept == expected
