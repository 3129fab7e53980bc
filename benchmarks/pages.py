"""Heavy pages at city scale under gunicorn, each beside a bare endpoint of the same server.

Builds a world (benchmarks/world.py: 300 units × 60 sections by default) in the database given,
starts gunicorn (2 workers) on this module's ``bench_app()`` — the application plus two bare
endpoints, one reading a row and one updating a row — logs real users in through the login form and
measures, with concurrent clients (threads, one HTTP connection per request), p50/p95 and requests per
second of 我的任务, the editor, 待审核, the review page, the compile page, the dashboard and a draft
save, each in five turns alternating with its yardstick (so both see the same stretch of a machine
whose speed drifts). Prints a table: measured, bare yardstick, ratio, target.

    createdb -h 127.0.0.1 -U postgres bench_pages
    python benchmarks/pages.py --url postgresql+psycopg://postgres@127.0.0.1:5432/bench_pages
    dropdb -h 127.0.0.1 -U postgres bench_pages

Options: --units, --sections, --clients (4), --seconds per page (10), --workers (2), --pages (a
comma-separated subset of tasks, editor, queue, review, compile, dashboard, save; default all). Without
--url a temporary SQLite database is used. The database should be empty (a second run adds a second
world) unless --world names a file: the first run writes the world's ids and user names there and later
runs measure that same world again without building it (e.g. before and after a change).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "secret-Pass1"  # tests/scale/world.py gives every account this password
QUERY_HEADER = "X-Bench-Queries"


# ---------------------------------------------------------------- the server side


def bench_app():
    """The application with the yardstick endpoints and a per-request query count (benchmark only)."""
    from flask import g, has_request_context, request
    from sqlalchemy import event, text

    from fazhi_flow import create_app
    from fazhi_flow.extensions import csrf, db

    app = create_app()

    @app.route("/_bench/select")
    def bench_select():
        # The cheapest useful page: one indexed single-row read, a few bytes out.
        row = db.session.execute(text("SELECT id, state FROM contribution WHERE id = :id"),
                                 {"id": request.args.get("id", 1, type=int)}).first()
        return f"{row[1] if row else '-'}\n"

    @app.route("/_bench/update", methods=["POST"])
    def bench_update():
        # The cheapest useful write: one single-row UPDATE, committed.
        db.session.execute(text("UPDATE contribution SET updated_at = CURRENT_TIMESTAMP WHERE id = :id"),
                           {"id": request.args.get("id", 1, type=int)})
        db.session.commit()
        return "ok\n"

    csrf.exempt(bench_update)

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args):
        if has_request_context():
            g.bench_queries = g.get("bench_queries", 0) + 1

    @app.after_request
    def _report(response):
        response.headers[QUERY_HEADER] = str(g.get("bench_queries", 0))
        return response

    return app


# ---------------------------------------------------------------- the client side


class Client:
    """One user's cookies against the server; every request on a new connection (gunicorn sync)."""

    def __init__(self, port: int, timeout: float = 120.0):
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, payload, response.headers
        finally:
            conn.close()

    def csrf(self, path: str) -> str:
        _status, payload, _ = self.request("GET", path)
        found = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', payload)
        if not found:
            raise RuntimeError(f"no csrf_token on {path}")
        return found.group(1).decode()

    def login(self, username: str) -> Client:
        token = self.csrf("/login")
        status, _, _ = self.request("POST", "/login", {"username": username, "password": PASSWORD,
                                                       "csrf_token": token})
        if status != 302:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")
        return self


@dataclass
class Result:
    name: str
    times: list = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    queries: int | None = None
    size: int = 0

    @property
    def rate(self) -> float:
        return len(self.times) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float | None:
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    @property
    def p50(self):
        return statistics.median(self.times) if self.times else None


def run(name: str, clients: list, make_request, seconds: float, warm_up: bool = True) -> Result:
    """Each client thread sends requests back to back until ``seconds`` have passed (a request that
    started in time runs to its end). First every client sends two requests that are not counted, so
    each worker has loaded its templates and modules."""
    if warm_up:  # twice, so that with one client both workers are warm too
        run(name, clients, make_request, 0, warm_up=False)
        run(name, clients, make_request, 0, warm_up=False)
    result = Result(name)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work(index, client):
        first = True  # with seconds=0: exactly one request per client
        while first or time.perf_counter() < deadline:
            first = False
            started = time.perf_counter()
            try:
                status, payload, headers = make_request(index, client)
                ok = status < 400
            except (OSError, http.client.HTTPException):
                ok, payload, headers = False, b"", {}
            took = time.perf_counter() - started
            with lock:
                if ok:
                    result.times.append(took)
                    result.size = len(payload)
                    if headers.get(QUERY_HEADER):
                        result.queries = int(headers[QUERY_HEADER])
                else:
                    result.errors += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - began
    return result


def run_alternating(scenarios: list[tuple], seconds: float, rounds: int = 5) -> list[Result]:
    """Scenarios ``(name, clients, make_request)`` in turns of ``seconds / rounds`` each (A, B, A, B,
    …), each one's figures summed: a ratio between them taken this way follows a machine whose speed
    drifts during the run, where two windows one after the other could fall on a fast and a slow
    stretch (this VM's bare UPDATE ran at 378–479 requests/s in runs minutes apart)."""
    for name, clients, make_request in scenarios:
        run(name, clients, make_request, 0)  # warm-up only
    totals = [Result(name) for name, _, _ in scenarios]
    for _ in range(rounds):
        for total, (name, clients, make_request) in zip(totals, scenarios):
            part = run(name, clients, make_request, seconds / rounds, warm_up=False)
            total.times += part.times
            total.errors += part.errors
            total.seconds += part.seconds
            total.queries = part.queries if part.queries is not None else total.queries
            total.size = part.size or total.size
    return totals


def settle(port: int, limit: float = 300.0) -> None:
    """Wait until the server answers a bare request quickly: a slow page's requests still running
    (or workers restarting after a timeout) must not be counted against the next measurement."""
    probe = Client(port, timeout=limit)
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            if probe.request("GET", "/_bench/select")[0] == 200 and time.perf_counter() - started < 0.5:
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)


def _ms(value) -> str:
    return "—" if value is None else f"{value * 1000:,.0f}"


def worker_rss_mb(master_pid: int) -> list[float]:
    """Resident memory of gunicorn's workers (children of the master), from /proc."""
    sizes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        if re.search(rf"^PPid:\s+{master_pid}$", status, re.MULTILINE):
            rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            if rss:
                sizes.append(int(rss.group(1)) / 1024)
    return sizes


def start_server(env: dict, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "120",
         "--chdir", str(HERE), "pages:bench_app()"],
        env=env, stdout=log, stderr=log)
    process.log = log
    probe = Client(port, timeout=2)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_path}")
        try:
            if probe.request("GET", "/_bench/select")[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not answer within 30 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.log.close()


PAGE_KEYS = ("tasks", "editor", "queue", "review", "compile", "dashboard", "save")


def measure(port: int, info: dict, n_clients: int, seconds: float, only=PAGE_KEYS) -> list[tuple]:
    """Every scenario in ``only``; returns rows (name, result, yardstick result, target kind)."""
    def logged_in(username):
        return [Client(port).login(username) for _ in range(n_clients)]

    liaisons, reviewers, admins = logged_in(info["liaison"]), logged_in(info["reviewer"]), logged_in(info["admin"])
    ids = [info["review"]] * n_clients

    def get(path):
        return lambda _i, client: client.request("GET", path)

    bare_select = ("bare SELECT", admins, lambda i, c: c.request("GET", f"/_bench/select?id={ids[i]}"))

    rows = []
    pages = [
        ("tasks", "我的任务 /tasks/", liaisons, "/tasks/"),
        ("editor", "editor /tasks/<id>", liaisons, f"/tasks/{info['editor']}"),
        ("queue", "待审核 /review/", reviewers, "/review/"),
        ("review", "review page /review/<id>", reviewers, f"/review/{info['review']}"),
        ("compile", "compile page /compile/<id>", admins, f"/compile/{info['cycle']}"),
        ("dashboard", "dashboard /dashboard/", admins, f"/dashboard/?cycle={info['cycle']}"),
    ]
    for key, name, clients, path in pages:
        if key not in only:
            continue
        print(f"  {name} …", end="", flush=True)
        settle(port)
        # Side by side: the page and the bare SELECT in turns, over the same stretch of the run.
        yardstick, result = run_alternating([bare_select, (name, clients, get(path))], seconds)
        print(f" {len(result.times)} ok, {result.errors} errors", flush=True)
        rows.append((name, result, yardstick, "ratio40" if name.startswith("dashboard") else "p95"))

    if "save" in only:
        rows.append(measure_saves(port, info, n_clients, seconds))
    return rows


def measure_saves(port: int, info: dict, n_clients: int, seconds: float) -> tuple:
    """Draft saves beside a bare single-row UPDATE."""
    # Draft saves: each client is a different unit's liaison saving its own draft, so no two
    # saves touch the same row (as at a deadline, when many units save at once).
    drafts = info["drafts"][:n_clients]
    savers = [Client(port).login(username) for username, _cid in drafts]
    state = []
    for (_username, cid), client in zip(drafts, savers):
        _status, page, _ = client.request("GET", f"/tasks/{cid}")
        version = int(re.search(rb'name="version"[^>]*value="(\d+)"', page).group(1))
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()
        state.append({"cid": cid, "version": version, "token": token, "n": 0})

    def save(i, client):
        s = state[i]
        s["n"] += 1
        cookies = dict(client.cookies)
        status, payload, headers = client.request("POST", f"/tasks/{s['cid']}", {
            "body": f"本单位今年办理案件{{{{c0}}}}件。第{s['n']}次保存。", "version": s["version"],
            "csrf_token": s["token"], "action": "save"})
        # The save's notice (草稿已保存) rides in the session cookie to the page the browser is sent
        # to, which shows and drops it; a client that never opens that page would carry every notice
        # of the run in its cookie, re-signed on each save.
        client.cookies = cookies
        if status in (302, 303):
            s["version"] += 1
        return status, payload, headers

    print("  draft save …", end="", flush=True)
    settle(port)
    yardstick, result = run_alternating(
        [("bare UPDATE", savers, lambda i, c: c.request("POST", f"/_bench/update?id={state[i]['cid']}")),
         ("draft save", savers, save)], seconds)
    print(f" {len(result.times)} ok, {result.errors} errors", flush=True)
    return ("draft save POST /tasks/<id>", result, yardstick, "ratio50")


TARGETS = {"p95": "p95 < 300 ms", "ratio40": "≥ 40 % of bare SELECT req/s", "ratio50": "≥ 50 % of bare UPDATE req/s"}


def verdict(kind: str, result: Result, yardstick: Result) -> str:
    ratio = result.rate / yardstick.rate if yardstick.rate else 0
    p95 = result.pct(0.95)
    if kind == "p95":
        ok = p95 is not None and p95 < 0.3 and not result.errors
    else:
        ok = ratio >= (0.4 if kind == "ratio40" else 0.5) and not result.errors
    return "met" if ok else "NOT met"


def print_table(rows, rss) -> None:
    head = ("page", "n", "err", "p50 ms", "p95 ms", "req/s", "queries", "KiB", "bare n", "bare req/s",
            "bare p95 ms", "ratio", "target", "")
    lines = [head]
    for name, result, yardstick, kind in rows:
        ratio = result.rate / yardstick.rate if yardstick.rate else 0
        lines.append((name, str(len(result.times)), str(result.errors), _ms(result.p50), _ms(result.pct(0.95)),
                      f"{result.rate:,.1f}", "—" if result.queries is None else str(result.queries),
                      f"{result.size / 1024:,.0f}", str(len(yardstick.times)), f"{yardstick.rate:,.1f}",
                      _ms(yardstick.pct(0.95)),
                      f"{ratio * 100:.1f} %", TARGETS[kind], verdict(kind, result, yardstick)))
    widths = [max(_width(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(line)))
    if rss:
        print(f"gunicorn workers' resident memory after the run: {', '.join(f'{m:.0f} MB' for m in rss)}")


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _arguments():
    """The parsed options and the pages asked for, or None after printing what is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--sections", type=int, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pages", default=",".join(PAGE_KEYS),
                        help=f"comma-separated subset of {', '.join(PAGE_KEYS)} (default: all)")
    parser.add_argument("--world", default=None,
                        help="file keeping the world's ids: written after building, read instead of building")
    args = parser.parse_args()
    if min(args.units, args.sections, args.clients, args.workers) < 1 or args.seconds <= 0:
        print("单位数、章节数、并发数、进程数都至少为 1，测量时间须大于 0。", file=sys.stderr)
        return None
    only = [key.strip() for key in args.pages.split(",") if key.strip()]
    unknown = [key for key in only if key not in PAGE_KEYS]
    if unknown or not only:
        print(f"未知的页面：{'、'.join(unknown) or '（空）'}；可选：{'、'.join(PAGE_KEYS)}。", file=sys.stderr)
        return None
    if args.world and Path(args.world).exists() and not args.url:
        print("--world 指向已有的测试数据时，须用 --url 指明它所在的数据库。", file=sys.stderr)
        return None
    return args, only


def _world(args) -> tuple[dict, str] | None:
    """The world's ids and how it came (kept or built), or None after printing why it could not be built."""
    from world import build

    from fazhi_flow import create_app
    from fazhi_flow.extensions import db

    kept = Path(args.world) if args.world else None
    if kept is not None and kept.exists():
        return json.loads(kept.read_text(encoding="utf-8")), f"kept in {kept.name}"
    app = create_app("development")
    started = time.perf_counter()
    try:
        info = build(app, args.units, args.sections)
        with app.app_context(), db.engine.connect() as conn:
            # Statistics, as autovacuum gathers them soon after a bulk load: without them PostgreSQL
            # plans a city's queries for an empty table.
            conn.exec_driver_sql("ANALYZE")
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        print(f"无法建立测试数据：{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return None
    finally:
        with app.app_context():
            db.engine.dispose()
    if kept is not None:
        kept.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    return info, f"built in {time.perf_counter() - started:.1f} s"


def main() -> int:
    parsed = _arguments()
    if parsed is None:
        return 1
    args, only = parsed
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        print("需要 gunicorn：pip install gunicorn", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {**os.environ, "FAZHI_ENV": "production", "FAZHI_DATABASE_URL": url, "FAZHI_INSTANCE_PATH": tmp,
               "FAZHI_SECRET_KEY": "benchmark-only-secret-key-0123456789abcdef",
               "FAZHI_SESSION_COOKIE_SECURE": "0", "FAZHI_LOG_LEVEL": "WARNING"}
        os.environ.update({k: env[k] for k in ("FAZHI_DATABASE_URL", "FAZHI_INSTANCE_PATH")})
        world = _world(args)
        if world is None:
            return 1
        info, built = world
        print(f"world: {info['contributions']} contributions ({url.split(':', 1)[0]}), {built}")
        port = _free_port()
        log_path = Path(tmp) / "gunicorn.log"
        server = start_server(env, port, args.workers, log_path)
        try:
            print(f"gunicorn: {args.workers} workers; {args.clients} concurrent clients, {args.seconds:g} s per page")
            rows = measure(port, info, args.clients, args.seconds, only)
            rss = worker_rss_mb(server.pid)
        finally:
            stop_server(server)
        print_table(rows, rss)
        errors = log_path.read_text(errors="replace").count("Traceback")
        if errors:
            print(f"server log has {errors} tracebacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
