"""The scheduler's clean-up of login-throttle rows that the throttle already treats as reset."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from fazhi_flow.models import LoginThrottle
from fazhi_flow.reminders.scheduler import prune_login_throttle, run_prune_login_throttle
from fazhi_flow.services import login_throttle
from fazhi_flow.timeutil import utcnow

from .helpers import at

NOW = at(2025, 1, 7, 3, 0)  # 19:00 UTC on 6 January
NOW_UTC = datetime(2025, 1, 6, 19, 0)


def keys(db):
    db.session.expire_all()
    return sorted(db.session.scalars(select(LoginThrottle.key)))


def test_prunes_only_rows_without_a_failure_for_more_than_a_day(db):
    rows = {
        "pair:guess1|10.0.0.9": (NOW_UTC - timedelta(hours=24, seconds=1), None),   # stale
        "acct:guess2": (NOW_UTC - timedelta(days=30), None),                         # stale
        "ip:10.0.0.8": (NOW_UTC - timedelta(hours=24), None),                         # exactly a day: kept
        "pair:zhangsan|10.0.0.1": (NOW_UTC - timedelta(hours=2), NOW_UTC + timedelta(minutes=5)),
        "acct:lisi": (NOW_UTC - timedelta(minutes=1), None),
        "ip:10.0.0.7": (None, None),                                                  # never failed: not ours
        # Stale by its last failure but still blocked (not possible with today's limits): kept.
        "pair:wangwu|10.0.0.2": (NOW_UTC - timedelta(days=2), NOW_UTC + timedelta(minutes=1)),
    }
    for key, (last, blocked) in rows.items():
        db.session.add(LoginThrottle(key=key, failures=7, last_failure_at=last, blocked_until=blocked))
    db.session.commit()

    assert prune_login_throttle(NOW) == 2
    assert keys(db) == sorted(set(rows) - {"pair:guess1|10.0.0.9", "acct:guess2"})
    assert prune_login_throttle(NOW) == 0  # idempotent
    # Two days later every row with a failure goes, the once-blocked one too (its block ran out).
    assert prune_login_throttle(NOW + timedelta(days=2)) == 4
    assert keys(db) == ["ip:10.0.0.7"]


def test_pruning_changes_nothing_for_the_throttle(app, db):
    with app.test_request_context():
        for _ in range(login_throttle.POLICIES["pair"].free + 1):
            login_throttle.record_failure("guessed-name", "10.0.0.5")
        db.session.commit()
        assert login_throttle.wait_seconds("guessed-name", "10.0.0.5") > 0
        # At the real time these rows are fresh: nothing goes.
        real_now = datetime.now(timezone.utc)
        assert prune_login_throttle(real_now) == 0 and len(keys(db)) == 3
        # A little over a day later they are stale; afterwards the next failure counts from one,
        # exactly as the throttle would have counted with the rows still there.
        assert prune_login_throttle(real_now + login_throttle.FORGET_AFTER + timedelta(minutes=1)) == 3
        assert keys(db) == []
        login_throttle.record_failure("guessed-name", "10.0.0.5")
        db.session.commit()
        assert {r.failures for r in db.session.scalars(select(LoginThrottle))} == {1}
        assert login_throttle.wait_seconds("guessed-name", "10.0.0.5") == 0


def test_the_scheduled_job_prunes_at_the_real_time(app, db):
    db.session.add(LoginThrottle(key="acct:old-guess", failures=3, last_failure_at=utcnow() - timedelta(days=3)))
    db.session.add(LoginThrottle(key="acct:recent", failures=3, last_failure_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    run_prune_login_throttle(app)
    assert keys(db) == ["acct:recent"]
