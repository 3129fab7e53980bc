import time

from sqlalchemy import select

from fazhi_flow.models.reminder import OutboxMessage
from fazhi_flow.reminders.scheduler import build_scheduler, start_in_process_scheduler
from fazhi_flow.services import contributions as csvc


def test_in_process_scheduler_delivers_the_outbox(factory, db, app, smtp):
    w = factory.world()
    csvc.submit_contribution(w.contribution, w.liaison)  # queues the reviewer's e-mail now
    db.session.commit()
    scheduler = start_in_process_scheduler(app)
    try:
        assert start_in_process_scheduler(app) is scheduler  # once per app
        assert {j.id for j in scheduler.get_jobs()} == {"reminders.sweep", "outbox.deliver", "publication.pdf",
                                                        "login_throttle.prune", "scheduler.heartbeat"}
        deadline = time.time() + 15
        while not any(m["X-Fazhi-Cause"] == "transition:submit" for m in smtp.messages) \
                and time.time() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=True)
    # (The sweep also ran at the real time and may have queued reminders of its own.)
    assert [m["X-Fazhi-Cause"] for m in smtp.messages].count("transition:submit") == 1
    db.session.expire_all()
    assert db.session.scalars(select(OutboxMessage.status).where(
        OutboxMessage.cause == "transition:submit")).all() == ["sent"]


def test_blocking_scheduler_is_built_with_all_jobs(app):
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = build_scheduler(app, blocking=True)
    assert isinstance(scheduler, BlockingScheduler)
    assert sorted(j.id for j in scheduler.get_jobs()) == ["login_throttle.prune", "outbox.deliver",
                                                          "publication.pdf", "reminders.sweep",
                                                          "scheduler.heartbeat"]
