"""The reminder sweep over 100,000 contributions: with nothing due, and with about 80,000 reminders due.

Builds one collecting cycle (60 sections × about 1,667 units, one liaison and one unit head per unit)
with bulk inserts, then runs each sweep in a fresh process, as the scheduler would, and prints its
time, statements and peak memory beside the targets. Due dates and submissions are arranged so that
on the busy morning 80 % of the contributions have exactly one reminder due (before the due date, on
it, overdue, waiting for review or for the unit head).

    python benchmarks/sweep.py                       # temporary SQLite database
    python benchmarks/sweep.py --database-url postgresql+psycopg://user@host:5432/postgres
    python benchmarks/sweep.py --contributions 20000 --tracemalloc

With ``--database-url`` a private database is created on that server for the run and dropped after.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SH = ZoneInfo("Asia/Shanghai")
SECTIONS = 60


def _working_day_from(day: date) -> date:
    from fazhi_flow.workdays import WorkCalendar

    cal = WorkCalendar()
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    return day


# The busy morning, a week from the real today, and a quiet one five weeks before it. Near the real
# date, as in use: the messages count working days from today to the due date.
_TODAY = datetime.now(SH).date()
BUSY = datetime.combine(_working_day_from(_TODAY + timedelta(days=7)), datetime.min.time().replace(hour=9, minute=5),
                        tzinfo=SH)
QUIET = datetime.combine(_working_day_from(BUSY.date() - timedelta(days=35)),
                         datetime.min.time().replace(hour=9, minute=5), tzinfo=SH)

SCENARIOS = [
    # name, moment, what it shows, target seconds, target MB
    ("quiet", QUIET, "无到期提醒（仅每日进度汇总）", 0.5, 300),
    ("nothing", QUIET + timedelta(hours=2), "无到期提醒（汇总已发）", 0.5, 300),
    ("busy", BUSY, "约8万条提醒到期", 30.0, 300),
    ("again", BUSY + timedelta(minutes=30), "同日再次扫描（均已加入）", 0.5, 300),
]


def _back(calendar, day: date, n: int) -> date:
    """The day with exactly ``n`` working days in (day, given day]."""
    d, count = day, 0
    while count < n:
        count += calendar.is_working_day(d)
        d -= timedelta(days=1)
    return d


def build(db, n: int) -> int:
    """Write the world with Core bulk inserts; return the number of contributions."""
    from sqlalchemy import insert, select

    from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section, Unit, User, UserRole
    from fazhi_flow.models.cycle import section_reviewer
    from fazhi_flow.workdays import WorkCalendar

    cal = WorkCalendar()
    today = BUSY.date()
    utc = lambda day: datetime(day.year, day.month, day.day, 10, tzinfo=SH).astimezone(timezone.utc).replace(tzinfo=None)  # noqa: E731
    # (state, due date, submitted at) by contribution index modulo 10: eight with one reminder due.
    plan = [
        ("draft", cal.add_working_days(today, 3), None),       # before_due, 3 working days left
        ("draft", cal.add_working_days(today, 5), None),       # before_due, 5 left
        ("draft", today, None),                                # due_today
        ("returned", cal.add_working_days(today, 1), None),    # before_due, 1 left
        ("draft", _back(cal, today, 1), None),                 # overdue, first reminder
        ("submitted", today + timedelta(days=30), utc(_back(cal, today, 4))),    # backlog
        ("unit_review", today + timedelta(days=30), utc(_back(cal, today, 4))),  # unit-head backlog
        ("submitted", today + timedelta(days=30), utc(_back(cal, today, 3))),    # backlog
        ("approved", today, utc(_back(cal, today, 10))),
        ("approved", today, utc(_back(cal, today, 10))),
    ]
    s = db.session
    cycle = ReportCycle(year=2024, region="基准测试区", title="2024年法治政府建设年度报告", due=today,
                        issuers="基准测试区人民政府", state="collecting")
    s.add(cycle)
    s.flush()
    office = Unit(code="office", name="区委依法治区办", kind="party")
    s.add(office)
    s.flush()
    tops = [Section(cycle_id=cycle.id, code=f"top{i}", position=i, title=f"第{i + 1}部分") for i in range(4)]
    s.add_all(tops)
    s.flush()
    sections = [Section(cycle_id=cycle.id, parent_id=tops[i % 4].id, code=f"s{i}", position=i,
                        title=f"第{i + 1}项工作") for i in range(SECTIONS)]
    s.add_all(sections)
    s.flush()
    staff = [User(username=f"admin{i}", name=f"管理员{i}", email=f"admin{i}@example.test", unit_id=office.id)
             for i in range(2)] + [User(username=f"reviewer{i}", name=f"审核人{i}", email=f"reviewer{i}@example.test",
                                        unit_id=office.id) for i in range(5)]
    s.add_all(staff)
    s.flush()
    s.execute(insert(UserRole), [{"user_id": u.id, "role": "admin" if u.username.startswith("admin") else "reviewer"}
                                 for u in staff])
    reviewers = [u for u in staff if u.username.startswith("reviewer")]
    s.execute(insert(section_reviewer), [{"section_id": sec.id, "user_id": reviewers[i % 5].id}
                                         for i, sec in enumerate(sections)])
    units = -(-n // SECTIONS)
    s.execute(insert(Unit), [{"code": f"u{i}", "name": f"单位{i + 1:04d}", "kind": "government", "sort_order": i}
                             for i in range(units)])
    unit_ids = s.scalars(select(Unit.id).where(Unit.code != "office").order_by(Unit.id)).all()
    s.execute(insert(User), [{"username": f"{role}{u}", "name": f"{label}{u}", "email": f"{role}{u}@example.test",
                              "unit_id": u, "password_hash": "!"}
                             for u in unit_ids for role, label in (("liaison", "联络员"), ("head", "负责人"))])
    s.execute(insert(UserRole), [{"user_id": uid, "role": "liaison" if name.startswith("liaison") else "unit_head"}
                                 for uid, name in s.execute(select(User.id, User.username)
                                                            .where(User.unit_id != office.id))])
    rows, k = [], 0
    for unit_id in unit_ids:
        for sec in sections:
            if k >= n:
                break
            rows.append({"section_id": sec.id, "unit_id": unit_id, "role": "lead", "due": plan[k % 10][1]})
            k += 1
    s.execute(insert(Assignment), rows)
    assignments = s.execute(select(Assignment.id, Assignment.section_id, Assignment.unit_id)
                            .order_by(Assignment.id)).all()
    s.execute(insert(Contribution), [
        {"assignment_id": a, "cycle_id": cycle.id, "section_id": sec, "unit_id": u, "body": "",
         "state": plan[i % 10][0], "submitted_at": plan[i % 10][2]}
        for i, (a, sec, u) in enumerate(assignments)])
    s.commit()
    if db.engine.dialect.name == "postgresql":
        # As autovacuum would by the time a real cycle is this big: the planner needs the row counts.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return len(assignments)


def run_one(name: str, moment: datetime, use_tracemalloc: bool) -> dict:
    """One sweep in this process (a fresh one per scenario); its figures as a dict."""
    from sqlalchemy import event

    from fazhi_flow import create_app
    from fazhi_flow.extensions import db
    from fazhi_flow.reminders.jobs import sweep

    app = create_app("testing")
    with app.app_context():
        statements = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(1))
        db.session.execute(db.text("SELECT 1"))  # connect before measuring
        db.session.rollback()
        statements.clear()
        # A scheduler process has swept before: warm up (statements compiled, caches filled) with a
        # dry run at a moment when nothing is due.
        sweep(QUIET + timedelta(hours=3), dry_run=True)
        statements.clear()
        before_mb = _rss_now_mb()
        if use_tracemalloc:
            import tracemalloc

            tracemalloc.start()
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = sweep(moment)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        heap = None
        if use_tracemalloc:
            heap = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        peak = _peak_rss_mb()
        db.session.remove()
        db.engine.dispose()
    return {"name": name, "seconds": seconds, "cpu": cpu, "queued": len(result.queued), "candidates": result.candidates,
            "statements": len(statements), "rss_before_mb": before_mb, "peak_rss_mb": peak, "heap_mb": heap}


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: on Linux that keeps the high-water
    mark of the parent process the child was started from, here the one that built the world."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _child(args) -> None:
    moment = datetime.fromisoformat(args.moment)
    print(json.dumps(run_one(args.child, moment, args.tracemalloc)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributions", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL server (a temporary database is created on it)")
    parser.add_argument("--tracemalloc", action="store_true", help="also report the Python heap peak (slower)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--moment", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    with tempfile.TemporaryDirectory() as tmp:
        admin = None
        if args.database_url:
            try:
                server = make_url(args.database_url)
            except Exception:  # noqa: BLE001 - one clear message for a malformed URL
                sys.exit(f"--database-url 无法解析：{args.database_url}")
            name = f"fazhi_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # noqa: BLE001
                sys.exit(f"无法在 {server.render_as_string(hide_password=True)} 上创建临时数据库：{exc}")
            url = server.set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{Path(tmp) / 'sweep.db'}"
        env = dict(os.environ, FAZHI_INSTANCE_PATH=tmp, FAZHI_DATABASE_URL=url, PYTHONPATH=str(ROOT))
        os.environ.update(FAZHI_INSTANCE_PATH=tmp, FAZHI_DATABASE_URL=url)
        try:
            from fazhi_flow import create_app
            from fazhi_flow.extensions import db

            app = create_app("testing")
            with app.app_context():
                db.create_all()
                t0 = time.perf_counter()
                n = build(db, args.contributions)
                dialect = db.engine.dialect.name
                db.session.remove()
                db.engine.dispose()
            print(f"built {n:,} contributions in {time.perf_counter() - t0:.1f} s ({dialect})", flush=True)
            rows = []
            for name_, moment, label, target_s, target_mb in SCENARIOS:
                cmd = [sys.executable, __file__, "--child", name_, "--moment", moment.isoformat()]
                if args.tracemalloc:
                    cmd.append("--tracemalloc")
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
                if done.returncode != 0:
                    sys.exit(f"{name_} failed:\n{done.stderr}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append((label, figures, target_s, target_mb))
                print(f"  {name_}: {figures['seconds']:.3f} s, {figures['queued']:,} queued", flush=True)
            _table(rows, n, dialect, args.tracemalloc)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def _table(rows, n: int, dialect: str, heap: bool) -> None:
    print()
    print(f"提醒扫描，{n:,} 份材料（{dialect}）")
    head = "| 情形 | 加入提醒 | SQL 语句 | 耗时 | 目标 | 其中本进程 CPU | 进程内存峰值 | 目标 |" + (
        " Python 堆峰值 |" if heap else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, f, target_s, target_mb in rows:
        ok_s = "✓" if f["seconds"] < target_s else "✗"
        ok_mb = "✓" if f["peak_rss_mb"] < target_mb else "✗"
        line = (f"| {label} | {f['queued']:,} | {f['statements']:,} | {f['seconds']:.3f} s {ok_s} | < {target_s:g} s "
                f"| {f['cpu']:.3f} s | {f['peak_rss_mb']:.0f} MB {ok_mb} | < {target_mb} MB |")
        if heap:
            line += f" {f['heap_mb']:.0f} MB |"
        print(line)
    print(f"（进程内存为扫描进程的内存峰值（VmHWM），含启动后约 {rows[0][1]['rss_before_mb']:.0f} MB 的基础占用；"
          f"耗时为墙钟时间，机器繁忙时偏大，CPU 一栏不含数据库服务器的时间。）")
    load = os.getloadavg()[0]
    print(f"（测量时系统负载 {load:.1f}，CPU 核数 {os.cpu_count()}。）")


if __name__ == "__main__":
    main()
