"""Publishing, in process: the publish request (text, HTML and Word; the PDF left pending) and the PDF
job that completes it afterwards, each timed with its SQL statement count.

Builds a signed report of ``--sections`` sections (60) with ``--units`` (2) approved contributions
each (120), through the scale tests' bulk builder, then runs what the publish request runs
(``publish_report`` and its commit) and then the PDF job (``render_pending_pdfs``). For comparison it
also times rendering every format of the same document with the PDF included, which is what the
publish request did before the PDF moved to the job.

    python benchmarks/publish.py [--server postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

With ``--server`` a temporary database is created on that server and dropped afterwards; without it
a temporary SQLite file is used.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _database(server: str | None, tmp: str):
    """(url, drop) for a fresh database."""
    if not server:
        return f"sqlite:///{Path(tmp) / 'publish.db'}", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_publish_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server).set(database=name).render_as_string(hide_password=False), drop


def _render_times(svc, document) -> tuple[float, float]:
    """Seconds to render every format with the PDF, and without it."""
    started = time.perf_counter()
    svc.render_outputs(document, with_pdf=True)
    with_pdf = time.perf_counter() - started
    started = time.perf_counter()
    svc.render_outputs(document, with_pdf=False)
    return with_pdf, time.perf_counter() - started


def measure(units: int, sections: int) -> None:
    from fazhi_flow import create_app
    from fazhi_flow.extensions import db
    from fazhi_flow.models import ReportCycle, User
    from fazhi_flow.publish.document import ReportDocument
    from fazhi_flow.publish.pdf_job import render_pending_pdfs
    from fazhi_flow.services import compile as svc
    from fazhi_flow.services.cycles import compile_cycle
    from fazhi_flow.testing import count_queries
    from tests.scale.world import build_world

    app = create_app("development")
    with app.app_context():
        db.create_all()
        world = build_world(db, units=units, sections=sections, states=("approved",))
        cycle, admin_id = world.cycle, world.admin.id
        admin, leader = db.session.get(User, admin_id), db.session.get(User, world.leader.id)
        compile_cycle(cycle, admin)
        svc.request_signoff(cycle, admin)
        svc.sign_report(cycle, leader, svc.latest_version(cycle).number)
        db.session.commit()
        cycle_id = cycle.id
        # Warm, as a web worker that has served pages is: modules imported, fonts loaded.
        svc.render_outputs(svc.current_document(cycle), with_pdf=True)
        db.session.remove()

        cycle = db.session.get(ReportCycle, cycle_id)
        admin = db.session.get(User, admin_id)
        with count_queries(db.engine) as statements:
            started = time.perf_counter()
            publication = svc.publish_report(cycle, admin)
            db.session.commit()
            publish_s = time.perf_counter() - started
        publish_q = len(statements)
        document = ReportDocument.from_dict(publication.draft_version.document)
        chars = len(publication.text)
        db.session.remove()

        with count_queries(db.engine) as statements:
            started = time.perf_counter()
            run = render_pending_pdfs()
            job_s = time.perf_counter() - started
        job_q = len(statements)
        assert run.done, run.errors

        all_formats_s, without_pdf_s = _render_times(svc, document)
        db.session.remove()
        db.engine.dispose()

    print(f"report: {sections} sections, {units * sections} approved contributions, {chars:,} characters")
    print(f"publish request (PDF pending):   {publish_q:>4} statements, {publish_s:6.2f} s")
    print(f"PDF job afterwards:              {job_q:>4} statements, {job_s:6.2f} s")
    print(f"render all formats with the PDF:       {all_formats_s:6.2f} s (what the request rendered before)")
    print(f"render text, HTML and Word only:       {without_pdf_s:6.2f} s")
    print(f"load average: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=None, help="PostgreSQL server URL (a temporary database is made)")
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--sections", type=int, default=60)
    args = parser.parse_args()
    if min(args.units, args.sections) < 1:
        print("单位数和章节数都至少为 1。", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = _database(args.server, tmp)
        os.environ.update({"FAZHI_DATABASE_URL": url, "FAZHI_INSTANCE_PATH": tmp})
        try:
            measure(args.units, args.sections)
        finally:
            drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
