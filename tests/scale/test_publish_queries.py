"""Publishing reads the merged draft in a fixed number of queries however large the cycle: keeping a
draft version and freezing it as a publication cost the same for 12 contributions as for 288."""
from __future__ import annotations

from fazhi_flow.models import Publication, ReportCycle, User
from fazhi_flow.services import compile as svc

from .test_compile_queries import LARGE, SMALL, count_queries
from .world import build_world


def _cold(db, cycle_id, admin_id):
    db.session.commit()
    db.session.expunge_all()  # as a request or a command starts: nothing loaded yet
    return db.session.get(ReportCycle, cycle_id), db.session.get(User, admin_id)


def test_record_version_and_freeze_in_fixed_queries(app, db):
    counts = {}
    for size in (SMALL, LARGE):
        world = build_world(db, *size, cycle_state="compiling")
        ids = world.cycle.id, world.admin.id
        cycle, admin = _cold(db, *ids)
        with count_queries(db.engine) as recording:
            version = svc.record_version(cycle, admin, "提请签发")
            db.session.flush()
        number = version.number
        cycle, admin = _cold(db, *ids)
        with count_queries(db.engine) as freezing:
            publication = svc.freeze_publication(cycle, admin)
            db.session.flush()
        counts[size] = (len(recording), len(freezing))
        assert publication.draft_version.number == number
        stored = db.session.get(Publication, publication.id)
        assert "全区合计" in stored.text and "{{" not in stored.text
        assert stored.text == svc.get_version(cycle, number).text
    assert counts[SMALL] == counts[LARGE], counts
