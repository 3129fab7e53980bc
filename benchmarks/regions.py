"""Regions at provincial scale: 1 province → 10 cities → 100 districts × 60 units × 40 sections.

Builds the world with Core bulk inserts (240,000 contributions, one collecting cycle per district, a
liaison and a unit head per unit, an admin, a reviewer and a leader per district, an overseer (督导)
per city and one for the province), then measures, with the SQL statement count of each:

- a district's progress dashboard, rendered through the test client as its admin;
- the oversight view (/oversight/) of a city (its districts) and of the province (every region);
- the reminder sweep across all regions in one run, in a fresh process as the scheduler runs it
  (time, statements, peak memory, reminders written).

The statement counts are what must not grow with the number of regions; ``--small`` builds
1 → 2 → 4 districts × 10 units × 5 sections in seconds, so the two tables can be compared.

    python benchmarks/regions.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    FAZHI_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/regions.py --small

A private database is created on that server for the run and dropped after. Without a URL a
temporary SQLite file is used (the figures are meant for PostgreSQL).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# The same busy morning (a week from today, 09:05) and helpers as the one-region sweep benchmark.
from sweep import BUSY, _back, _peak_rss_mb  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
PASSWORD = "bench-Pass1"


@dataclass(frozen=True)
class Size:
    cities: int
    districts: int  # per city
    units: int  # per district
    sections: int  # per district's cycle

    @property
    def contributions(self) -> int:
        return self.cities * self.districts * self.units * self.sections


FULL = Size(cities=10, districts=10, units=60, sections=40)
SMALL = Size(cities=2, districts=2, units=10, sections=5)


def _plan():
    """(state, due date, submitted at) by contribution index modulo 10: a busy morning in every
    district — half the material has a reminder due (before the due date, on it, overdue, waiting
    for the reviewer or for the unit head), the rest is approved or due later."""
    from fazhi_flow.workdays import WorkCalendar

    cal = WorkCalendar()
    today = BUSY.date()

    def utc(day):
        return datetime(day.year, day.month, day.day, 10, tzinfo=SH).astimezone(timezone.utc).replace(tzinfo=None)

    return [
        ("draft", cal.add_working_days(today, 3), None),                          # before_due, 3 left
        ("draft", today, None),                                                   # due_today
        ("draft", _back(cal, today, 1), None),                                    # overdue, first
        ("submitted", today + timedelta(days=30), utc(_back(cal, today, 4))),     # reviewer backlog
        ("unit_review", today + timedelta(days=30), utc(_back(cal, today, 4))),   # unit-head backlog
        ("draft", today + timedelta(days=30), None),                              # nothing yet
        ("returned", today + timedelta(days=30), None),                           # nothing yet
        ("approved", today, utc(_back(cal, today, 10))),
        ("approved", today, utc(_back(cal, today, 10))),
        ("approved", today, utc(_back(cal, today, 10))),
    ]


def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    # Cheap on purpose: a few accounts log in; the others never do ("!": no password).
    return generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def build(db, size: Size) -> dict:
    """Write the world with Core bulk inserts; return the ids and user names the measures need."""
    from sqlalchemy import insert, select

    from fazhi_flow.models import Region, Unit

    s = db.session
    plan = _plan()
    today = BUSY.date()
    secret = _password_hash()
    # Regions through the ORM (111 rows): their path is written by the model's listener.
    province = Region(code="430000", name="湖南省", level="province")
    s.add(province)
    cities, districts = [], []
    for c in range(size.cities):
        city = Region(code=f"43{c + 1:02d}00", name=f"第{c + 1}市", level="city", parent=province, sort_order=c)
        cities.append(city)
        s.add(city)
        for d in range(size.districts):
            district = Region(code=f"43{c + 1:02d}{d + 1:02d}", name=f"第{c + 1}市第{d + 1}区", level="county",
                              parent=city, sort_order=d)
            districts.append(district)
            s.add(district)
    s.flush()
    # Units: unit 0 of each district is its office (依法治区办); "gaj" exists in every district.
    s.execute(insert(Unit), [
        {"region_id": r.id, "code": "yfzqb" if u == 0 else ("gaj" if u == 1 else f"u{u}"),
         "name": f"{r.name}委依法治区办" if u == 0 else f"{r.name}单位{u:02d}",
         "kind": "party" if u == 0 else "government", "sort_order": u}
        for r in districts for u in range(size.units + 1)])
    s.execute(insert(Unit), [{"region_id": r.id, "code": "yfzsb", "name": f"{r.name}委依法治办", "kind": "party"}
                             for r in [province] + cities])
    units = s.execute(select(Unit.id, Unit.region_id, Unit.code)).all()
    office = {rid: uid for uid, rid, code in units if code in ("yfzqb", "yfzsb")}
    work_units: dict[int, list[int]] = {}
    for uid, rid, code in sorted(units):
        if code not in ("yfzqb", "yfzsb"):
            work_units.setdefault(rid, []).append(uid)
    ids = _people(s, districts, [province] + cities, office, work_units, secret)
    return _cycles(db, size, districts, cities, ids, work_units, plan, today)


def _people(s, districts, overseen, office, work_units, secret) -> dict:
    """Accounts: per district an admin, a reviewer and a leader, per unit a liaison and a unit head,
    per city and for the province an overseer (督导); {username: id}."""
    from sqlalchemy import insert, select

    from fazhi_flow.models import User, UserRole

    people = []
    for i, r in enumerate(districts):
        for role in ("admin", "reviewer", "leader"):
            people.append({"username": f"r{i}_{role}", "name": f"{r.name}{role}", "email": f"r{i}_{role}@example.cn",
                           "region_id": r.id, "unit_id": office[r.id], "password_hash": secret, "_role": role})
        for uid in work_units[r.id]:
            for role in ("liaison", "unit_head"):
                people.append({"username": f"{role}{uid}", "name": f"{role}{uid}", "email": f"{role}{uid}@example.cn",
                               "region_id": r.id, "unit_id": uid, "password_hash": "!", "_role": role})
    for i, r in enumerate(overseen):
        people.append({"username": f"o{i}_oversight", "name": f"{r.name}督导", "email": f"o{i}@example.cn",
                       "region_id": r.id, "unit_id": office[r.id], "password_hash": secret, "_role": "oversight"})
    roles = {p["username"]: p.pop("_role") for p in people}
    s.execute(insert(User), people)
    ids = dict(s.execute(select(User.username, User.id)).all())
    s.execute(insert(UserRole), [{"user_id": ids[name], "role": role} for name, role in roles.items()])
    return ids


def _cycles(db, size, districts, cities, ids, work_units, plan, today) -> dict:
    """One collecting cycle per district with its outline, assignments and contributions; commits."""
    from sqlalchemy import insert, select

    from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section
    from fazhi_flow.models.cycle import section_reviewer

    s = db.session
    # One collecting cycle per district.
    opened = datetime.combine(today - timedelta(days=60), datetime.min.time())
    s.execute(insert(ReportCycle), [
        {"region_id": r.id, "region": r.name, "year": today.year - 1,
         "title": f"{r.name}{today.year - 1}年法治政府建设年度报告", "due": today, "issuers": f"{r.name}人民政府",
         "state": "collecting", "opened_at": opened, "unit_head_review": True} for r in districts])
    cycles = dict(s.execute(select(ReportCycle.region_id, ReportCycle.id)).all())
    tops_per = 4
    s.execute(insert(Section), [{"cycle_id": cid, "code": f"top{t}", "position": t, "title": f"第{t + 1}部分"}
                                for cid in cycles.values() for t in range(tops_per)])
    tops = {(cid, code): sid for sid, cid, code in s.execute(select(Section.id, Section.cycle_id, Section.code))}
    s.execute(insert(Section), [{"cycle_id": cid, "parent_id": tops[(cid, f"top{k % tops_per}")], "code": f"s{k}",
                                 "position": k, "title": f"第{k + 1}项工作"}
                                for cid in cycles.values() for k in range(size.sections)])
    leaves = s.execute(select(Section.id, Section.cycle_id).where(Section.parent_id.is_not(None))
                       .order_by(Section.id)).all()
    region_of_cycle = {cid: rid for rid, cid in cycles.items()}
    reviewer_of = {r.id: ids[f"r{i}_reviewer"] for i, r in enumerate(districts)}
    s.execute(insert(section_reviewer), [{"section_id": sid, "user_id": reviewer_of[region_of_cycle[cid]]}
                                         for sid, cid in leaves])
    sections_of: dict[int, list[int]] = {}
    for sid, cid in leaves:
        sections_of.setdefault(cid, []).append(sid)
    n = 0
    for r in districts:  # a district at a time: bounded memory, a few statements each
        cid = cycles[r.id]
        rows = [{"section_id": sid, "unit_id": uid, "role": "lead", "due": plan[(k + j) % 10][1]}
                for j, uid in enumerate(work_units[r.id]) for k, sid in enumerate(sections_of[cid])]
        s.execute(insert(Assignment), rows)
        made = s.execute(select(Assignment.id, Assignment.section_id, Assignment.unit_id)
                         .where(Assignment.section_id.in_(sections_of[cid])).order_by(Assignment.id)).all()
        s.execute(insert(Contribution), [
            {"assignment_id": a, "cycle_id": cid, "section_id": sid, "unit_id": u, "body": "",
             "state": plan[i % 10][0], "submitted_at": plan[i % 10][2]} for i, (a, sid, u) in enumerate(made)])
        n += len(made)
    s.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return {"contributions": n, "district_admin": "r0_admin", "district_cycle": cycles[districts[0].id],
            "city_overseer": "o1_oversight", "province_overseer": "o0_oversight",
            "districts": len(districts), "regions": 1 + len(cities) + len(districts),
            "city_regions": size.districts}


# ------------------------------------------------------------------ pages


def measure_page(app, engine, username: str, url: str, runs: int) -> dict:
    """Median time and the statements of ``url`` for ``username`` (logged in through the form)."""
    from sqlalchemy import event

    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    if response.status_code != 302:
        raise SystemExit(f"{username} 登录失败（{response.status_code}）")
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        times, counts = [], []
        for _ in range(runs + 1):  # the first run warms up templates and caches
            statements.clear()
            t0 = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - t0)
            counts.append(len(statements))
            if response.status_code != 200:
                raise SystemExit(f"{url} 返回 {response.status_code}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return {"ms": statistics.median(times[1:]) * 1000, "queries": counts[-1]}


# ------------------------------------------------------------------ the sweep, in its own process


def run_sweep() -> dict:
    from sqlalchemy import event, func, select

    from fazhi_flow import create_app
    from fazhi_flow.extensions import db
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.models.reminder import OutboxMessage, Reminder
    from fazhi_flow.reminders.jobs import sweep

    app = create_app("testing")
    with app.app_context():
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(1))
        db.session.execute(db.text("SELECT 1"))
        db.session.rollback()
        statements.clear()
        t0 = time.perf_counter()
        result = sweep(BUSY)
        seconds = time.perf_counter() - t0
        peak = _peak_rss_mb()
        count = len(statements)
        statements.clear()
        t1 = time.perf_counter()
        again = sweep(BUSY + timedelta(minutes=30))
        again_s = time.perf_counter() - t1
        cycles = db.session.scalar(select(func.count(func.distinct(Reminder.cycle_id))))
        messages = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        collecting = db.session.scalar(select(func.count()).select_from(ReportCycle)
                                       .where(ReportCycle.state == "collecting"))
        db.session.remove()
        db.engine.dispose()
    return {"seconds": seconds, "statements": count, "queued": len(result.queued), "peak_rss_mb": peak,
            "again_seconds": again_s, "again_statements": len(statements), "again_queued": len(again.queued),
            "cycles_reminded": cycles, "collecting": collecting, "outbox": messages,
            "candidates": result.candidates}


# ------------------------------------------------------------------ main


def _database(url_arg: str | None, tmp: str):
    """(url, drop) for a private database on the server named by ``url_arg``, else SQLite."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if not url_arg:
        return f"sqlite:///{Path(tmp) / 'regions.db'}", lambda: None
    try:
        server = make_url(url_arg)
    except Exception:  # noqa: BLE001 - one clear message for a malformed URL
        sys.exit(f"--database-url 无法解析：{url_arg}")
    name = f"fazhi_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        sys.exit(f"无法在 {server.render_as_string(hide_password=True)} 上创建临时数据库：{exc}")

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("FAZHI_BENCH_DATABASE_URL"),
                        help="a PostgreSQL server (a temporary database is created on it); "
                             "default FAZHI_BENCH_DATABASE_URL, else a temporary SQLite file")
    parser.add_argument("--small", action="store_true", help="1 → 2 → 4 districts × 10 units × 5 sections")
    parser.add_argument("--runs", type=int, default=5, help="page renders measured (median)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_sweep()), flush=True)
        return
    size = SMALL if args.small else FULL
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = _database(args.database_url, tmp)
        env = dict(os.environ, FAZHI_INSTANCE_PATH=tmp, FAZHI_DATABASE_URL=url, PYTHONPATH=str(ROOT))
        os.environ.update(FAZHI_INSTANCE_PATH=tmp, FAZHI_DATABASE_URL=url)
        try:
            _run(args, size, env)
        finally:
            drop()


def _run(args, size: Size, env: dict) -> None:
    from fazhi_flow import create_app
    from fazhi_flow.extensions import db

    app = create_app("testing")
    with app.app_context():
        db.create_all()
        t0 = time.perf_counter()
        info = build(db, size)
        dialect = db.engine.dialect.name
        engine = db.engine
        db.session.remove()
    print(f"built {info['regions']} regions, {info['districts']} district cycles, {info['contributions']:,} "
          f"contributions in {time.perf_counter() - t0:.1f} s ({dialect})", flush=True)
    rows = []
    # Outside any app context, as a server runs requests: each request gets its own (and its own g).
    for label, user, url, regions in (
            ("区县进度看板（管理员）", info["district_admin"], f"/dashboard/?cycle={info['district_cycle']}", 1),
            ("市督导页 /oversight/", info["city_overseer"], "/oversight/", info["city_regions"]),
            ("省督导页 /oversight/", info["province_overseer"], "/oversight/", info["regions"] - 1)):
        figures = measure_page(app, engine, user, url, args.runs)
        rows.append((label, figures["queries"], f"{figures['ms']:.0f} ms", regions, ""))
        print(f"  {label}: {figures['queries']} statements, {figures['ms']:.0f} ms", flush=True)
    engine.dispose()
    done = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True,
                          cwd=str(ROOT))
    if done.returncode != 0:
        sys.exit(f"sweep failed:\n{done.stderr}")
    f = json.loads(done.stdout.strip().splitlines()[-1])
    rows.append(("提醒扫描（全部地区，一次）", f["statements"], f"{f['seconds'] * 1000:.0f} ms", f["collecting"],
                 f"加入提醒 {f['queued']:,} 条（{f['cycles_reminded']} 个年度报告，消息 {f['outbox']:,} 条），"
                 f"进程内存峰值 {f['peak_rss_mb']:.0f} MB"))
    rows.append(("同日再次扫描", f["again_statements"], f"{f['again_seconds'] * 1000:.0f} ms", f["collecting"],
                 f"加入提醒 {f['again_queued']} 条"))
    print()
    print(f"地区规模：1 省 → {size.cities} 市 → {info['districts']} 区县 × {size.units} 单位 × {size.sections} 章节"
          f"（{info['contributions']:,} 份材料，{dialect}）")
    print("| 页面/任务 | SQL 语句 | 耗时 | 地区数 | 备注 |")
    print("|---|---|---|---|---|")
    for label, queries, ms, regions, note in rows:
        print(f"| {label} | {queries} | {ms} | {regions} | {note} |")
    load = os.getloadavg()[0]
    print(f"（页面耗时为 {args.runs} 次渲染的中位数；测量时系统负载 {load:.1f}，CPU 核数 {os.cpu_count()}。）")


if __name__ == "__main__":
    main()
