"""Render time of the progress dashboard for 300 units × 60 sections.

Builds a temporary SQLite database (18 000 assignments and contributions), logs an admin in through
the real login form and renders the dashboard page and its XLSX export several times.

    python benchmarks/dashboard.py [--units 300] [--sections 60] [--runs 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(db, n_units: int, n_sections: int):
    from fazhi_flow.models import (Assignment, Contribution, ReportCycle, Revision, Section, Unit, User)

    today = date.today()
    cycle = ReportCycle(year=today.year - 1, region="基准测试区", title="法治政府建设年度报告",
                        due=today - timedelta(days=3), state="collecting")
    db.session.add(cycle)
    db.session.flush()
    tops = [Section(cycle_id=cycle.id, code=f"top{i}", position=i, title=f"第{i + 1}部分") for i in range(4)]
    db.session.add_all(tops)
    db.session.flush()
    per_top = n_sections // len(tops)
    sections = [Section(cycle_id=cycle.id, parent_id=tops[i // per_top % len(tops)].id, code=f"s{i}",
                        position=i % per_top, title=f"第{i + 1}项工作") for i in range(n_sections)]
    units = [Unit(code=f"u{i}", name=f"单位{i + 1:03d}", kind=("government", "township", "judicial")[i % 3],
                  sort_order=i) for i in range(n_units)]
    admin = User(username="bench_admin", name="管理员")
    admin.set_roles(["admin"])
    admin.set_password("bench-Pass1")
    db.session.add_all(sections + units + [admin])
    db.session.flush()
    assignments = [Assignment(section_id=s.id, unit_id=u.id, role="lead" if j % 4 == 0 else "support",
                              due=(today + timedelta(days=5)) if (i + j) % 11 == 0 else None)
                   for i, u in enumerate(units) for j, s in enumerate(sections)]
    db.session.add_all(assignments)
    db.session.flush()
    states = ["draft", "submitted", "approved", "approved", "returned", "unit_review", "approved"]
    contributions = [Contribution(assignment_id=a.id, cycle_id=cycle.id, section_id=a.section_id, unit_id=a.unit_id,
                                  body="", state=states[i % len(states)]) for i, a in enumerate(assignments)]
    db.session.add_all(contributions)
    db.session.flush()
    start = datetime(today.year, today.month, today.day)
    db.session.add_all([Revision(contribution_id=c.id, number=1, body="材料",
                                 created_at=start - timedelta(days=(c.id % 9)))
                        for c in contributions if c.state != "draft"])
    db.session.commit()
    return cycle, len(assignments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--sections", type=int, default=60)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FAZHI_INSTANCE_PATH"] = tmp
        os.environ["FAZHI_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'bench.db'}"
        from sqlalchemy import event

        from fazhi_flow import create_app
        from fazhi_flow.extensions import db

        app = create_app("testing")
        with app.app_context():
            db.create_all()
            t0 = time.perf_counter()
            cycle, n = build(db, args.units, args.sections)
            print(f"built {args.units} units × {args.sections} sections = {n} contributions "
                  f"in {time.perf_counter() - t0:.1f} s ({db.engine.dialect.name})")
            cycle_id = cycle.id
            engine = db.engine
            db.session.remove()

        client = app.test_client()
        response = client.post("/login", data={"username": "bench_admin", "password": "bench-Pass1"})
        assert response.status_code == 302, "login failed"
        queries: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))

        for label, url in (("page", f"/dashboard/?cycle={cycle_id}"),
                           ("page, overdue only", f"/dashboard/?cycle={cycle_id}&overdue=1"),
                           ("XLSX export", f"/dashboard/export.xlsx?cycle={cycle_id}")):
            times, counts, size = [], [], 0
            for _ in range(args.runs + 1):  # the first run warms up templates and caches
                queries.clear()
                t0 = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - t0)
                counts.append(len(queries))
                size = len(response.data)
                assert response.status_code == 200, response.status_code
            times = times[1:]
            print(f"{label:20s} median {statistics.median(times) * 1000:7.0f} ms  "
                  f"min {min(times) * 1000:7.0f} ms  max {max(times) * 1000:7.0f} ms  "
                  f"queries {counts[-1]}  size {size / 1024:.0f} KiB  ({args.runs} runs)")
        engine.dispose()


if __name__ == "__main__":
    main()
