"""gunicorn settings for the web service: ``gunicorn -c python:fazhi_flow.ops.gunicorn_conf 'fazhi_flow:create_app()'``.

Read from the environment (the same environment file as the app's FAZHI_* settings):

* FAZHI_WEB_BIND (default 127.0.0.1:8000; nginx in front), FAZHI_WEB_WORKERS (default 2 × cores + 1,
  at most 8), FAZHI_WEB_THREADS (1), FAZHI_WEB_TIMEOUT (120 s: a Word/PDF export of a large report may
  take a while), FAZHI_WEB_MAX_REQUESTS (0: workers are not replaced on a count. Every replaced
  worker leaves its Prometheus counter files behind until the next restart, so recycling every N
  requests would make each scrape slower for as long as the service runs; set it only together with
  a periodic restart);
* PROMETHEUS_MULTIPROC_DIR: where the workers keep their metric files. Left unset, a folder of
  this master's own in the temporary directory, removed at exit. Either way it is made if missing
  and emptied at start-up: files of an earlier run would add old counts to the new ones.

gunicorn's access log stays off: the app writes one line per request itself (method, path without the
query string, status, duration, user, request id); gunicorn's error log goes to stderr. Options given on
the command line (``-b``, ``-w``) win over these.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _whole(name: str, default: int, low: int = 1, high: int = 10_000) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        # SystemExit with a text: gunicorn stops with this one line and status 1, no traceback.
        raise SystemExit(f"{name} 必须是 {low} 到 {high} 之间的整数，而不是“{raw[:40]}”。")
    return int(raw)


def _default_workers() -> int:
    return min(2 * (os.cpu_count() or 1) + 1, 8)


bind = [os.environ.get("FAZHI_WEB_BIND") or "127.0.0.1:8000"]
workers = _whole("FAZHI_WEB_WORKERS", _default_workers(), 1, 64)
threads = _whole("FAZHI_WEB_THREADS", 1, 1, 64)
timeout = _whole("FAZHI_WEB_TIMEOUT", 120, 5, 3600)
graceful_timeout = 30
keepalive = 5
max_requests = _whole("FAZHI_WEB_MAX_REQUESTS", 0, 0, 10_000_000)
max_requests_jitter = max_requests // 10 if max_requests else 0
proc_name = "fazhi-flow-web"
accesslog = None
errorlog = "-"
loglevel = (os.environ.get("FAZHI_LOG_LEVEL") or "info").strip().lower()
if loglevel not in ("debug", "info", "warning", "error", "critical"):
    raise SystemExit(f"FAZHI_LOG_LEVEL 必须是 DEBUG、INFO、WARNING、ERROR、CRITICAL 之一，而不是“{loglevel[:40]}”。")
if os.path.isdir("/dev/shm"):
    # Worker heartbeats in memory: a slow or full disk must not make gunicorn kill healthy workers.
    worker_tmp_dir = "/dev/shm"

# The metric files' folder must be named before any worker (or a preloaded app) imports
# prometheus_client; it is made when gunicorn starts, so merely importing this module leaves nothing.
_made_multiproc_dir = False
if not os.environ.get(MULTIPROC_ENV):
    os.environ[MULTIPROC_ENV] = os.path.join(tempfile.gettempdir(), f"fazhi-flow-metrics-{os.getpid()}")
    _made_multiproc_dir = True


def on_starting(server) -> None:
    directory = os.environ[MULTIPROC_ENV]
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _made_multiproc_dir:
        shutil.rmtree(os.environ.get(MULTIPROC_ENV, ""), ignore_errors=True)
