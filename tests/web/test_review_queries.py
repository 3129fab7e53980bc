"""The reviewer's queue loads with a fixed number of queries, however many submissions wait."""
from sqlalchemy import event

from fazhi_flow.extensions import db as _db
from fazhi_flow.services import contributions as svc


def _queries(client, url):
    seen = []
    listener = lambda *args, **kwargs: seen.append(1)  # noqa: E731
    event.listen(_db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(_db.engine, "before_cursor_execute", listener)
    return len(seen)


def _submit_more(factory, world, db, count, tag):
    for i in range(count):
        section = factory.section(world.cycle, f"{tag}章节{i}", reviewers=[world.reviewer])
        unit = factory.unit(f"{tag}单位{i}", code=f"{tag}{i}")
        contribution = factory.contribution(factory.assignment(section, unit))
        svc.submit_contribution(contribution, factory.user("liaison", unit=unit))
    db.session.commit()


def test_queue_queries_do_not_grow_with_the_queue(as_user, world, factory, db):
    _submit_more(factory, world, db, 5, "a")
    client = as_user(world.reviewer)
    _queries(client, "/review/")  # warm up what every page loads once
    few = _queries(client, "/review/")
    _submit_more(factory, world, db, 20, "b")
    _queries(client, "/review/")  # the commit above expired the user; reload it once again
    assert _queries(client, "/review/") == few
