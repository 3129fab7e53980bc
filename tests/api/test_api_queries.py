"""The API's list and read operations cost a fixed number of statements however much material there
is (no statement per row), as the pages do."""
from __future__ import annotations

from fazhi_flow.testing import count_queries

from .test_api_workflow import api_for


def _grow(factory, world, units: int):
    cycle = world.cycle
    for i in range(units):
        unit = factory.unit(f"区第{i}局")
        section = factory.section(cycle, f"第{i}节", reviewers=[world.reviewer])
        for target in (unit, world.unit):
            c = factory.contribution(factory.assignment(section, target),
                                     state=("draft", "submitted", "approved")[i % 3])
            c.body = "本单位" + "办理案件12件。" * 50


def _costs(client, db, user, paths) -> dict[str, int]:
    api = api_for(client, db, user)
    costs = {}
    for path in paths:
        api.get(path)  # warm up: the token's last use is noted once a minute
        with count_queries(db.engine) as statements:
            answer = api.get(path)
        assert answer.status_code == 200, (path, answer.json)
        costs[path] = len(statements)
    return costs


def test_statements_do_not_grow_with_the_material(app, factory, db):
    from fazhi_flow.testing import FreshUserClient

    results = []
    for units in (2, 12):
        world = factory.world()
        _grow(factory, world, units)
        db.session.commit()
        c = world.contribution.cycle_id
        paths = ["/cycles", f"/cycles/{c}", f"/cycles/{c}/outline", f"/cycles/{c}/assignments",
                 f"/cycles/{c}/status", "/contributions?per_page=100", f"/contributions?cycle={c}&state=draft",
                 "/publications"]
        client = FreshUserClient(app, app.response_class, use_cookies=True)
        costs = {}
        for user in (world.admin, world.reviewer, world.liaison):
            costs.update({f"{user.name} {p.replace(str(c), 'C')}": n
                          for p, n in _costs(client, db, user, paths).items()})
        results.append(costs)
        # The next world in a database of its own content: empty this one.
        db.session.commit()
        db.session.expunge_all()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
    small, large = results
    assert small == large
