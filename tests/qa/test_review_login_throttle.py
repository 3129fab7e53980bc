"""Failed-login counters are forgotten after a quiet day.

Many people share one address (an office behind one NAT). Without forgetting, the address counter
only grows: once it has passed its free failures — over weeks of ordinary typos — every single typo
blocks the whole office for the maximum delay, for ever.
"""
from datetime import timedelta

from fazhi_flow.models import LoginThrottle
from fazhi_flow.services import login_throttle
from fazhi_flow.testing import PASSWORD
from fazhi_flow.timeutil import utcnow


def test_old_failures_of_a_shared_address_are_forgotten(client, world, db):
    month_ago = utcnow() - timedelta(days=30)
    # Ordinary typos of many colleagues over the past weeks, all long since served.
    db.session.add(LoginThrottle(key="ip:127.0.0.1", failures=60, last_failure_at=month_ago,
                                 blocked_until=month_ago))
    db.session.commit()

    # Today one colleague mistypes once ...
    client.post("/login", data={"username": world.other_liaison.username, "password": "typo"})
    # ... and the next person at the same office can still log in at once.
    assert login_throttle.wait_seconds(world.liaison.username, "127.0.0.1") == 0
    response = client.post("/login", data={"username": world.liaison.username, "password": PASSWORD})
    assert response.status_code == 302


def test_recent_failures_still_count(client, world, db):
    recent = utcnow() - timedelta(minutes=20)
    db.session.add(LoginThrottle(key="ip:127.0.0.1", failures=60, last_failure_at=recent,
                                 blocked_until=recent))
    db.session.commit()
    client.post("/login", data={"username": world.other_liaison.username, "password": "typo"})
    assert login_throttle.wait_seconds(world.liaison.username, "127.0.0.1") > 0
