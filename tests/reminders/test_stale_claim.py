"""The stale-claim window follows the send timeouts: a live deliverer, renewing its claims every
CLAIM_REFRESH, can never be taken for a dead one however long one send may take, and a dead one's
messages come back within minutes."""
from __future__ import annotations

from datetime import timedelta

from fazhi_flow.reminders import jobs
from fazhi_flow.settings import Config


def longest_silence(config) -> timedelta:
    """The longest a live deliverer leaves a claim untouched: a refresh interval plus one send with
    every socket operation waiting its whole timeout."""
    timeout = max(float(config.get("MAIL_TIMEOUT") or 10), float(config.get("WEBHOOK_TIMEOUT") or 10))
    return jobs.CLAIM_REFRESH + timedelta(seconds=jobs.SEND_SOCKET_OPERATIONS * timeout)


def test_window_exceeds_a_live_deliverers_longest_silence_for_any_timeouts():
    for mail, robot in [(10, 10), (5, 5), (30, 10), (10, 60), (120, 120), (1, 1)]:
        config = {"MAIL_TIMEOUT": mail, "WEBHOOK_TIMEOUT": robot}
        window = jobs.stale_claim(config)
        assert window >= 2 * longest_silence(config), (mail, robot)
        # ...and not much more: a dead deliverer's messages are not held back needlessly.
        assert window <= 3 * longest_silence(config), (mail, robot)


def test_window_grows_with_either_timeout():
    base = jobs.stale_claim({"MAIL_TIMEOUT": 10, "WEBHOOK_TIMEOUT": 10})
    assert jobs.stale_claim({"MAIL_TIMEOUT": 60, "WEBHOOK_TIMEOUT": 10}) > base
    assert jobs.stale_claim({"MAIL_TIMEOUT": 10, "WEBHOOK_TIMEOUT": 60}) > base


def test_default_window_brings_a_dead_deliverers_messages_back_within_minutes():
    defaults = {"MAIL_TIMEOUT": Config.MAIL_TIMEOUT, "WEBHOOK_TIMEOUT": Config.WEBHOOK_TIMEOUT}
    assert jobs.STALE_CLAIM == jobs.stale_claim(defaults)
    assert jobs.STALE_CLAIM <= timedelta(minutes=5)
    # Claims are renewed several times within the window.
    assert jobs.CLAIM_REFRESH * 4 <= jobs.STALE_CLAIM


def test_the_deliverer_releases_claims_by_the_configured_window(app, db):
    """A claim older than the window for the configured timeouts is released; a younger one is
    kept, also when it is older than the window for shorter timeouts."""
    from sqlalchemy import insert, select

    from fazhi_flow.models.reminder import OutboxMessage
    from fazhi_flow.timeutil import utcnow

    saved = {k: app.config.get(k) for k in ("MAIL_TIMEOUT", "WEBHOOK_TIMEOUT")}
    app.config.update(MAIL_TIMEOUT=60, WEBHOOK_TIMEOUT=10)
    window = jobs.stale_claim(app.config)
    now = utcnow()
    # Far in the future: released claims go back to the queue but are not sent in this run.
    later = now + timedelta(days=1)
    db.session.execute(insert(OutboxMessage), [
        {"channel": "email", "address": f"u{i}@example.test", "subject": "退回通知", "body": "请修改。",
         "cause": "transition:return", "status": "sending", "attempts": 0, "next_attempt_at": later,
         "claimed_at": claimed}
        for i, claimed in enumerate([now - window - timedelta(seconds=30),   # a dead deliverer's
                                     now - window + timedelta(seconds=60),   # a slow live one's
                                     now - jobs.STALE_CLAIM - timedelta(seconds=30)])])  # ditto
    db.session.commit()
    try:
        jobs.deliver()
    finally:
        app.config.update(saved)
    db.session.expire_all()
    got = [r.status for r in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]
    assert got == ["pending", "sending", "sending"]
