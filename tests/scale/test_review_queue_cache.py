"""待审核 is kept per reviewer under the tokens of the region's collecting cycles: what a reviewer sees
after any change (a submission, a section's reviewers named or removed, by plain SQL as a migration or
another tool would write it) equals a fresh computation by the independent ``reviewable_submissions``,
and two reviewers never get each other's rows."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import text

from fazhi_flow.pages import review as review_pages
from fazhi_flow.pages.review import reviewable_submissions
from fazhi_flow.testing import FreshUserClient, login

from .world import build_world


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def _expected(db, user) -> list[int]:
    db.session.expire_all()  # the plain SQL below wrote past the session
    ids = [c.id for c in reviewable_submissions(user)]
    db.session.rollback()  # a test's transaction takes SQLite's write lock: end it before the next write
    return ids


def _sql(db, statement: str, **params) -> None:
    """Plain SQL past the ORM, committed (on the test's own connection: SQLite has one writer)."""
    db.session.execute(text(statement), params)
    db.session.commit()


@pytest.fixture()
def two_reviewers(app, db, factory):
    world = build_world(db, 6, 6)
    other = factory.user("reviewer", unit=world.office, username="second-reviewer")
    db.session.commit()
    clients = {}
    for user in (world.reviewer, other):
        clients[user.id] = FreshUserClient(app, app.response_class, use_cookies=True)
        login(clients[user.id], user)
    return world, other, clients


def test_the_kept_queue_follows_submissions_and_reviewers_and_is_never_shared(db, two_reviewers, monkeypatch):
    world, other, clients = two_reviewers
    named, unnamed = world.reviewer, other

    def pages():
        return {u.id: _ids(clients[u.id].get("/review/").get_data(as_text=True)) for u in (named, unnamed)}

    first = pages()
    # Every section names the world's reviewer: the second reviewer has nothing to review.
    assert first[named.id] == _expected(db, named) and len(first[named.id]) >= 6
    assert first[unnamed.id] == [] == _expected(db, unnamed)

    # Kept: asked again, nothing is computed afresh.
    def refuse(_user):
        raise AssertionError("the kept queue was not used")

    with monkeypatch.context() as patched:
        patched.setattr(review_pages, "reviewable_refs", refuse)
        assert pages() == first

    section = world.section_ids[0]
    in_section = {cid for (u, s), cid in world.contribution_ids.items() if s == 0} & set(first[named.id])
    assert in_section
    # The second reviewer is named for one section too (plain SQL): both now review its rows.
    _sql(db, "INSERT INTO section_reviewer (section_id, user_id) VALUES (:s, :u)", s=section, u=unnamed.id)
    second = pages()
    assert second[unnamed.id] == _expected(db, unnamed) and set(second[unnamed.id]) == in_section
    assert second[named.id] == first[named.id]
    # The world's reviewer is removed from it: its rows leave their queue.
    _sql(db, "DELETE FROM section_reviewer WHERE section_id = :s AND user_id = :u", s=section, u=named.id)
    third = pages()
    assert third[named.id] == _expected(db, named) == [i for i in first[named.id] if i not in in_section]
    assert third[unnamed.id] == second[unnamed.id]

    # A draft is submitted (plain SQL): it joins the end of the queue of the one who reviews it.
    draft = next(cid for (u, s), cid in sorted(world.contribution_ids.items())
                 if s == 1 and world.states[cid] == "draft")
    _sql(db, "UPDATE contribution SET state = 'submitted', submitted_at = :t WHERE id = :c",
         t=datetime(2100, 1, 1), c=draft)
    fourth = pages()
    assert fourth[named.id] == _expected(db, named) == third[named.id] + [draft]
    assert fourth[unnamed.id] == _expected(db, unnamed) == third[unnamed.id]
