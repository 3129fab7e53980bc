"""The PDF of a publication is rendered after the publish request by a job: pending until then, stored
with its hash in one conditional UPDATE, from the publication's own snapshot; a failure is retried
for a while; the row is otherwise immutable; of two job runs at once exactly one writes."""
import hashlib
import logging
import shutil
import subprocess
import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import JobStatus, Publication
from fazhi_flow.models.publication import PDF_COMPLETION
from fazhi_flow.publish import pdf_job
from fazhi_flow.publish.pdf import PdfUnavailable, pdf_available
from fazhi_flow.reminders.scheduler import build_scheduler, run_render_pdfs
from fazhi_flow.services import compile as svc
from fazhi_flow.testing import login
from fazhi_flow.timeutil import utcnow

from .test_pdf_html import _require


@pytest.fixture()
def published(compiling, db):
    """Version 1 published and committed; the PDF job has not run."""
    _require(pdf_available(), "WeasyPrint or pango is not installed (pip install weasyprint)")
    cycle = compiling.cycle
    svc.request_signoff(cycle, compiling.admin)
    svc.sign_report(cycle, compiling.leader, svc.latest_version(cycle).number)
    # Read before the commit: touching a row after it would open a transaction in this thread, which
    # on SQLite holds the write lock the job's threads need.
    compiling.publication_id = svc.publish_report(cycle, compiling.admin).id
    db.session.commit()
    return compiling


def _row(publication_id) -> Publication:
    _db.session.expire_all()
    return _db.session.get(Publication, publication_id)


def pdf_text(pdf: bytes) -> str:
    _require(shutil.which("pdftotext") is not None, "pdftotext is missing (apt-get install poppler-utils)")
    out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return "".join(out.decode("utf-8").split())


def test_publish_leaves_the_pdf_pending_and_the_job_stores_it_with_its_hash(published, client):
    row = _row(published.publication_id)
    assert row.pdf_status == "pending" and row.pdf is None and row.pdf_sha256 is None
    assert row.pdf_completed_at is None
    assert row.verify()  # a PDF not yet rendered is not a mismatch
    # The other formats are there at once, with their hashes.
    assert row.docx_sha256 == hashlib.sha256(row.docx).hexdigest()
    assert row.html_sha256 == hashlib.sha256(row.html.encode("utf-8")).hexdigest()

    shown = client.get(f"/reports/{row.id}").get_data(as_text=True)
    assert "PDF 生成中" in shown and row.docx_sha256 in shown
    response = client.get(f"/reports/{row.id}/report.pdf")
    assert response.status_code == 409 and "PDF 正在生成" in response.get_data(as_text=True)

    before = utcnow()
    run = pdf_job.render_pending_pdfs()
    assert run.done == [row.id] and run.failed == [] and run.taken == []
    row = _row(row.id)
    assert row.pdf_status == "done" and row.pdf.startswith(b"%PDF")
    assert row.pdf_sha256 == hashlib.sha256(row.pdf).hexdigest()
    assert before - timedelta(seconds=1) <= row.pdf_completed_at <= utcnow()
    assert row.verify()

    shown = client.get(f"/reports/{row.id}").get_data(as_text=True)
    assert "PDF 生成中" not in shown and row.pdf_sha256 in shown
    response = client.get(f"/reports/{row.id}/report.pdf")
    assert response.status_code == 200 and response.data == row.pdf
    assert response.headers["X-Content-SHA256"] == hashlib.sha256(response.data).hexdigest()
    # Nothing left to do: the next run touches nothing.
    assert pdf_job.render_pending_pdfs().summary() == {"done": 0, "failed": 0, "taken": 0}


def test_the_pdf_is_rendered_from_the_snapshot_not_the_live_draft(published, db):
    cycle = published.cycle
    view = next(v for v in svc.section_views(cycle) if v.section.code == "enforcement")
    # Edited for a correction after publishing, before the job ran.
    svc.save_section_text(cycle, view.section, published.admin, view.text.replace("3812次", "3821次"))
    db.session.commit()
    assert pdf_job.render_pending_pdfs().done == [published.publication_id]
    text = pdf_text(_row(published.publication_id).pdf)
    assert "全年涉企检查3812次" in text and "3821" not in text


def test_a_completed_pdf_is_never_written_again(published):
    publication_id = published.publication_id
    assert pdf_job.render_pending_pdfs().done == [publication_id]
    stored = _row(publication_id)
    pdf, digest, at = stored.pdf, stored.pdf_sha256, stored.pdf_completed_at
    assert pdf_job.complete(publication_id, b"%PDF-1.4 another rendering") is False
    assert pdf_job.mark_failed(publication_id) is False
    row = _row(publication_id)
    assert (row.pdf, row.pdf_sha256, row.pdf_completed_at, row.pdf_status) == (pdf, digest, at, "done")
    assert row.verify()


def test_a_failure_is_marked_logged_and_retried_for_a_while(published, client, monkeypatch, caplog):
    publication_id = published.publication_id

    def missing(_html):
        raise PdfUnavailable("libpango-1.0.so.0: cannot open shared object file")

    monkeypatch.setattr(pdf_job, "render_pdf", missing)
    with caplog.at_level(logging.WARNING, logger="fazhi_flow.publish.pdf_job"):
        run = pdf_job.render_pending_pdfs()
    assert run.failed == [publication_id] and run.done == []
    assert any("libpango" in r.getMessage() and str(publication_id) in r.getMessage() for r in caplog.records)
    row = _row(publication_id)
    assert row.pdf_status == "failed" and row.pdf is None and row.pdf_sha256 is None and row.verify()
    assert "PDF 生成中" in client.get(f"/reports/{publication_id}").get_data(as_text=True)
    assert client.get(f"/reports/{publication_id}/report.pdf").status_code == 409

    # A second failure keeps it failed; a day later the automatic retries stop ...
    assert pdf_job.render_pending_pdfs().failed == [publication_id]
    monkeypatch.undo()
    later = utcnow() + timedelta(hours=pdf_job.RETRY_HOURS, minutes=1)
    assert pdf_job.render_pending_pdfs(now=later).summary() == {"done": 0, "failed": 0, "taken": 0}
    assert _row(publication_id).pdf_status == "failed"
    # ... the next run within the window (or `render-pdfs --all` after it) stores the PDF.
    assert pdf_job.render_pending_pdfs(now=later, everything=True).done == [publication_id]
    row = _row(publication_id)
    assert row.pdf_status == "done" and row.pdf_sha256 == hashlib.sha256(row.pdf).hexdigest()


def test_the_row_is_otherwise_immutable(published, db):
    publication_id = published.publication_id
    attempts = [
        # The completion's own columns, but without the completion's marker.
        update(Publication).where(Publication.id == publication_id).values(pdf_status="done"),
        # The marker, but a column the completion never sets.
        update(Publication).where(Publication.id == publication_id).values(text="篡改", pdf_status="done")
        .execution_options(**{PDF_COMPLETION: True}),
        update(Publication.__table__).where(Publication.__table__.c.id == publication_id)
        .values(html="<p>篡改</p>"),
    ]
    for statement in attempts:
        with pytest.raises(RuntimeError, match="immutable"):
            db.session.execute(statement)
        db.session.rollback()
    with pytest.raises(RuntimeError, match="cannot be deleted"):
        db.session.execute(delete(Publication).where(Publication.id == publication_id))
    db.session.rollback()
    row = _row(publication_id)
    row.pdf_status = "done"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    assert pdf_job.render_pending_pdfs().done == [publication_id]
    row = _row(publication_id)
    row.pdf = b"%PDF-1.4 replaced"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    _db.session.delete(_row(publication_id))
    with pytest.raises(RuntimeError, match="cannot be deleted"):
        db.session.flush()
    db.session.rollback()
    assert _row(publication_id).verify()


def test_two_runs_at_once_write_once(published, app):
    """Both runs render, then both try to store: the conditional UPDATE lets exactly one through (on
    PostgreSQL the second waits for the first's commit and then finds the row done)."""
    publication_id = published.publication_id
    barrier = threading.Barrier(2, timeout=60)
    outcomes, rendered = [None, None], [None, None]

    def run(index):
        with app.app_context():
            try:
                assert pdf_job.open_publications() == [publication_id]
                rendered[index] = pdf_job.snapshot_pdf(publication_id)
                barrier.wait()
                outcomes[index] = pdf_job.complete(publication_id, rendered[index])
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == [False, True]
    winner = rendered[outcomes.index(True)]
    row = _row(publication_id)
    assert row.pdf == winner and row.pdf_sha256 == hashlib.sha256(winner).hexdigest()


def test_two_whole_job_runs_at_once_complete_it_once(published, app):
    runs = [None, None]
    barrier = threading.Barrier(2, timeout=60)

    def run(index):
        with app.app_context():
            try:
                barrier.wait()
                runs[index] = pdf_job.render_pending_pdfs()
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done = [r.done for r in runs]
    # Either both saw it pending (one stored it, the other found it taken) or the second saw it done.
    assert sorted(done) == [[], [published.publication_id]]
    assert sum(len(r.taken) for r in runs) <= 1 and not any(r.failed for r in runs)
    assert _row(published.publication_id).verify()


def test_the_scheduler_and_the_command_run_the_job(published, app, runner):
    scheduler = build_scheduler(app)
    job = scheduler.get_job("publication.pdf")
    assert job is not None and job.trigger.interval == timedelta(seconds=60)
    run_render_pdfs(app)
    status = _db.session.get(JobStatus, "pdf")
    assert status.ok is True and status.summary == {"done": 1, "failed": 0, "taken": 0}
    assert _row(published.publication_id).pdf_status == "done"
    result = runner.invoke(args=["fazhi", "render-pdfs"])
    assert result.exit_code == 0 and "已生成 PDF 0 个" in result.output


def test_publishing_through_the_page_does_not_render_the_pdf(compiling, db, client):
    _require(pdf_available(), "WeasyPrint or pango is not installed (pip install weasyprint)")
    cycle = compiling.cycle
    svc.request_signoff(cycle, compiling.admin)
    svc.sign_report(cycle, compiling.leader, svc.latest_version(cycle).number)
    db.session.commit()
    login(client, compiling.admin)
    response = client.post(f"/compile/{cycle.id}/publish", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "PDF 正在后台生成" in html
    row = _db.session.scalars(select(Publication).where(Publication.cycle_id == cycle.id)).one()
    assert row.pdf_status == "pending" and row.pdf is None
    html = client.get(f"/compile/{cycle.id}/signoff").get_data(as_text=True)
    assert "PDF 生成中" in html


def test_without_a_renderer_the_publication_says_no_pdf(compiling, db, client, monkeypatch):
    monkeypatch.setattr(svc, "pdf_available", lambda: False)
    cycle = compiling.cycle
    svc.request_signoff(cycle, compiling.admin)
    svc.sign_report(cycle, compiling.leader, svc.latest_version(cycle).number)
    publication = svc.publish_report(cycle, compiling.admin)
    db.session.commit()
    assert publication.pdf_status == "none" and publication.verify()
    assert pdf_job.render_pending_pdfs().summary() == {"done": 0, "failed": 0, "taken": 0}
    assert "未生成 PDF" in client.get(f"/reports/{publication.id}").get_data(as_text=True)
    response = client.get(f"/reports/{publication.id}/report.pdf")
    assert response.status_code == 404 and "没有 PDF" in response.get_data(as_text=True)
