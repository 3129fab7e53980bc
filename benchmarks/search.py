"""The search (/search/) at city scale: 300 units × 60 sections (18,000 contributions).

Builds the scale tests' world (benchmarks/world.py) in a temporary SQLite file and, when
FAZHI_BENCH_DATABASE_URL (or --database-url) names a PostgreSQL server, in a private database created
there for the run and dropped after. Then, per database, role and query, it prints the median and the
slowest time of a whole GET /search/?q=… (log-in cookie, the five groups' statements, rendering) and
the number of SQL statements. The issue asks for less than 200 ms.

    python benchmarks/search.py [--units 300] [--sections 60] [--runs 7]
    FAZHI_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres python benchmarks/search.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# A word in every body (18,000 matches: the count and the first 20), one in a few titles, a name, none,
# and Latin letters (matched case-insensitively: every text lowered by the database).
QUERIES = ("依法行政", "章节1", "联络员", "没有这个词", "Sum(C1")
ROLES = ("admin", "reviewer", "leader", "liaison")
GOAL_MS = 200


def _measure(app, info: dict, runs: int) -> list[tuple]:
    from fazhi_flow.extensions import db
    from fazhi_flow.testing import FreshUserClient, count_queries

    rows = []
    with app.app_context():
        for role in ROLES:
            client = FreshUserClient(app, app.response_class, use_cookies=True)
            answer = client.post("/login", data={"username": info[role], "password": "secret-Pass1"})
            if answer.status_code != 302:
                raise RuntimeError(f"login of {info[role]} failed: HTTP {answer.status_code}")
            for query in QUERIES:
                url = f"/search/?q={quote(query)}"
                client.get(url)  # warm the caches every request shares
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    with count_queries(db.engine) as statements:
                        response = client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{url} as {role}: HTTP {response.status_code}")
                rows.append((role, query, statistics.median(times), max(times), len(statements)))
            db.session.remove()
    return rows


def _run(label: str, url: str, args) -> bool:
    os.environ["FAZHI_DATABASE_URL"] = url
    from fazhi_flow import create_app
    from fazhi_flow.extensions import db
    from world import build

    app = create_app("development")
    # The form posts of the log-in need no CSRF token here: what is measured is the search.
    app.config.update(SQLALCHEMY_DATABASE_URI=url, WTF_CSRF_ENABLED=False)
    started = time.perf_counter()
    try:
        info = build(app, args.units, args.sections)
        print(f"\n{label}: built {info['contributions']} contributions in {time.perf_counter() - started:.1f} s")
        rows = _measure(app, info, args.runs)
    finally:
        with app.app_context():
            db.engine.dispose()
    print(f"{'role':<9} {'query':<12} {'median ms':>10} {'max ms':>8} {'statements':>11}")
    ok = True
    for role, query, median, worst, statements in rows:
        ok &= median < GOAL_MS
        print(f"{role:<9} {query:<12} {median:>10.1f} {worst:>8.1f} {statements:>11}")
    print(f"{label}: every median below {GOAL_MS} ms: {'yes' if ok else 'NO'}")
    return ok


def _postgres(base: str, args) -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(base)
    name = f"fazhi_bench_search_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return _run("PostgreSQL", server.set(database=name).render_as_string(hide_password=False), args)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--sections", type=int, default=60)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("FAZHI_BENCH_DATABASE_URL"),
                        help="a PostgreSQL server (default: FAZHI_BENCH_DATABASE_URL); SQLite always runs")
    args = parser.parse_args()
    if args.units < 1 or args.sections < 1 or args.runs < 1:
        print("单位数、章节数和次数都至少为 1。", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FAZHI_INSTANCE_PATH", tmp)
        ok = _run("SQLite", f"sqlite:///{Path(tmp) / 'search.db'}", args)
        if args.database_url:
            ok &= _postgres(args.database_url, args)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
