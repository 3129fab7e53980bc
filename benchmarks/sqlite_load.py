"""Many users at once on the embedded default: gunicorn over one SQLite file of a city-sized world.

Builds a world (benchmarks/world.py: 300 units × 60 sections by default) in a temporary SQLite file,
starts gunicorn (``--workers``, 5 by default: the production default on 2 cores) on
``benchmarks/pages.py``'s ``bench_app()``, logs every simulated user in through the login page and
lets them work for ``--seconds`` (300): each user waits a random think time (uniform, 0.5–1.5 ×
``--think`` seconds, default 10) between requests. Most users are liaisons of different units, each
opening 我的任务, their editor and saving their own draft (so no two saves touch the same material); a
tenth are reviewers (待审核 and a review page) and a twentieth admins (the dashboard). Every user also
sends, now and then, one of the bare requests the yardstick is made of (reading one row, updating one
row of its own), measured at the same moments under the same load.

Prints per kind requests, errors, p50/p95, the whole run's requests per second, the ``uptime`` load
before and after, and the gunicorn workers' resident memory; then a table: measured p95, the bare
yardstick's p95, their ratio and the target (p95 < 300 ms, no errors).

    python benchmarks/sqlite_load.py [--users 200] [--seconds 300] [--think 10] [--units 300 --sections 60]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pages import (  # noqa: E402 - the benchmark's own helpers, next to this file
    Client,
    Result,
    _free_port,
    _ms,
    _world,
    start_server,
    stop_server,
    worker_rss_mb,
)

TARGET_P95 = 0.3
KINDS = ("tasks", "editor", "save", "queue", "review", "dashboard", "bare SELECT", "bare UPDATE")
LABELS = {"tasks": "我的任务 GET /tasks/", "editor": "填报页 GET /tasks/<id>", "save": "保存草稿 POST /tasks/<id>",
          "queue": "待审核 GET /review/", "review": "审核页 GET /review/<id>",
          "dashboard": "填报进度 GET /dashboard/", "bare SELECT": "基准：只读一行",
          "bare UPDATE": "基准：只改一行"}
BARE_SHARE = 0.08


class User:
    """One simulated person: a logged-in client, a role and (for a liaison) an own draft."""

    def __init__(self, port: int, role: str, username: str, cid: int | None):
        self.client = Client(port, timeout=120)
        self.role, self.username, self.cid = role, username, cid
        self.version, self.token, self.saves = 0, "", 0

    def login(self, info: dict) -> None:
        self.client.login(self.username)
        if self.role == "liaison":
            self.open_editor()

    def open_editor(self):
        status, page, headers = self.client.request("GET", f"/tasks/{self.cid}")
        if status == 200:
            self.version = int(re.search(rb'name="version"[^>]*value="(\d+)"', page).group(1))
            self.token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()
        return status, page, headers

    def save(self):
        self.saves += 1
        status, payload, headers = self.client.request("POST", f"/tasks/{self.cid}", {
            "body": f"本单位今年办理案件{{{{c0}}}}件，{self.username}第{self.saves}次保存。",
            "version": self.version, "csrf_token": self.token, "action": "save"})
        if status in (302, 303):
            self.version += 1
        return status, payload, headers


def cast(port: int, info: dict, n_users: int) -> list[User]:
    """The users: a tenth reviewers, a twentieth admins (at least one each), the rest liaisons of
    distinct units, each with one of its own drafts."""
    n_reviewers, n_admins = max(1, n_users // 10), max(1, n_users // 20)
    n_liaisons = n_users - n_reviewers - n_admins
    drafts = info["drafts"]
    if n_liaisons > len(drafts):
        raise SystemExit(f"{n_liaisons} liaisons need as many units with a draft; the world has {len(drafts)}")
    users = [User(port, "liaison", username, cid) for username, cid in drafts[:n_liaisons]]
    users += [User(port, "reviewer", info["reviewer"], None) for _ in range(n_reviewers)]
    users += [User(port, "admin", info["admin"], None) for _ in range(n_admins)]
    return users


def next_request(user: User, info: dict, rng: random.Random):
    """(kind, call) of the user's next request."""
    if rng.random() < BARE_SHARE:
        if rng.random() < 0.5 or user.cid is None:
            return "bare SELECT", lambda: user.client.request("GET", f"/_bench/select?id={info['review']}")
        return "bare UPDATE", lambda: user.client.request("POST", f"/_bench/update?id={user.cid}")
    if user.role == "liaison":
        kind = rng.choice(("tasks", "editor", "save", "save"))
        if kind == "tasks":
            return kind, lambda: user.client.request("GET", "/tasks/")
        if kind == "editor":
            return kind, user.open_editor
        return kind, user.save
    if user.role == "reviewer":
        if rng.random() < 0.5:
            return "queue", lambda: user.client.request("GET", "/review/")
        return "review", lambda: user.client.request("GET", f"/review/{info['review']}")
    return "dashboard", lambda: user.client.request("GET", f"/dashboard/?cycle={info['cycle']}")


def work(users: list[User], info: dict, seconds: float, think: float, seed: int) -> tuple[dict, float]:
    results = {kind: Result(kind) for kind in KINDS}
    failures: dict[str, int] = {}
    lock = threading.Lock()
    began = time.perf_counter()
    deadline = began + seconds

    def live(index: int, user: User):
        rng = random.Random(seed + index)
        time.sleep(rng.uniform(0, think))  # users arrive spread over one think time
        while time.perf_counter() < deadline:
            kind, call = next_request(user, info, rng)
            started = time.perf_counter()
            try:
                status, _payload, _headers = call()
                ok = status < 400
            except Exception as exc:  # noqa: BLE001 - counted as an error, the user carries on
                ok, status = False, type(exc).__name__
            took = time.perf_counter() - started
            with lock:
                if ok:
                    results[kind].times.append(took)
                else:
                    results[kind].errors += 1
                    failures[f"{kind} {status}"] = failures.get(f"{kind} {status}", 0) + 1
            time.sleep(rng.uniform(0.5 * think, 1.5 * think))

    threads = [threading.Thread(target=live, args=(i, u), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 180)
    elapsed = time.perf_counter() - began
    for result in results.values():
        result.seconds = elapsed
    if failures:
        print("errors: " + ", ".join(f"{k} × {n}" for k, n in sorted(failures.items())))
    return results, elapsed


def print_tables(results: dict, elapsed: float) -> None:
    bare = {"save": results["bare UPDATE"]}
    print(f"{'kind':<28} {'n':>6} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7}")
    for kind in KINDS:
        r = results[kind]
        print(f"{LABELS[kind]:<28} {len(r.times):>6} {r.errors:>4} {_ms(r.p50):>8} {_ms(r.pct(0.95)):>8} "
              f"{len(r.times) / elapsed:>7.2f}")
    total = sum(len(r.times) + r.errors for r in results.values())
    errors = sum(r.errors for r in results.values())
    print(f"all: {total} requests, {errors} errors, {total / elapsed:.1f} requests/s over {elapsed:.0f} s")
    print()
    print("| 请求 | 实测 p50 / p95 | 基准 p95（同时测） | 比值（实测 p95 ÷ 基准 p95） | 目标 |")
    print("|---|---|---|---|---|")
    for kind in KINDS[:6]:
        r, y = results[kind], bare.get(kind, results["bare SELECT"])
        p95, y95 = r.pct(0.95), y.pct(0.95)
        ratio = f"{p95 / y95:.1f} ×" if p95 and y95 else "—"
        met = "达到" if p95 is not None and p95 < TARGET_P95 and not r.errors else "未达到"
        print(f"| {LABELS[kind]} | {_ms(r.p50)} / {_ms(p95)} ms（{len(r.times)} 次，{r.errors} 错） | "
              f"{y.name} {_ms(y95)} ms | {ratio} | p95 < 300 ms、0 错误（{met}） |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--think", type=float, default=10.0, help="mean think time between a user's requests")
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--sections", type=int, default=60)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if min(args.users, args.units, args.sections, args.workers) < 1 or args.seconds <= 0 or args.think < 0:
        print("用户数、单位数、章节数、进程数都至少为 1，测量时间须大于 0。", file=sys.stderr)
        return 1
    args.url, args.world = None, None

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {**os.environ, "FAZHI_ENV": "production", "FAZHI_DATABASE_URL": url, "FAZHI_INSTANCE_PATH": tmp,
               "FAZHI_SECRET_KEY": "benchmark-only-secret-key-0123456789abcdef",
               "FAZHI_SESSION_COOKIE_SECURE": "0", "FAZHI_LOG_LEVEL": "WARNING"}
        os.environ.update({k: env[k] for k in ("FAZHI_DATABASE_URL", "FAZHI_INSTANCE_PATH")})
        world = _world(args)
        if world is None:
            return 1
        info, built = world
        print(f"world: {info['contributions']} contributions (sqlite), {built}")
        port = _free_port()
        log_path = Path(tmp) / "gunicorn.log"
        server = start_server(env, port, args.workers, log_path)
        try:
            users = cast(port, info, args.users)
            started = time.perf_counter()
            # Four at a time: logging in hashes the password, the server's costliest request.
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda u: u.login(info), users))
            print(f"{len(users)} users logged in through the login page in {time.perf_counter() - started:.0f} s "
                  f"({sum(u.role == 'liaison' for u in users)} liaisons of distinct units, "
                  f"{sum(u.role == 'reviewer' for u in users)} reviewers, {sum(u.role == 'admin' for u in users)} admins)")
            print(f"gunicorn: {args.workers} sync workers; think time {args.think:g} s; {args.seconds:g} s")
            print(f"load before: {os.getloadavg()}")
            results, elapsed = work(users, info, args.seconds, args.think, args.seed)
            print(f"load after:  {os.getloadavg()}")
            rss = worker_rss_mb(server.pid)
        finally:
            stop_server(server)
        print_tables(results, elapsed)
        print(f"gunicorn workers' resident memory after the run: {', '.join(f'{m:.0f} MB' for m in rss)}")
        tracebacks = log_path.read_text(errors="replace").count("Traceback")
        if tracebacks:
            print(f"server log has {tracebacks} tracebacks:")
            print(log_path.read_text(errors="replace")[-3000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
