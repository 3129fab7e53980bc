"""The 委托 page and a substitute's pages fit a phone and a laptop, and axe-core finds no serious
problem on them (the demo district: the reviewer delegates to 公安's liaison)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import User
from fazhi_flow.services import delegations as dsvc
from fazhi_flow.timeutil import utcnow

from .test_layout_a11y import BOTH, WIDE, _report, axe_source, visit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_delegation_pages_fit_and_pass_axe(demo, db, visit):  # noqa: F811
    reviewer = db.session.scalar(select(User).where(User.username == "reviewer"))
    gaj = db.session.scalar(select(User).where(User.username == "gaj"))
    start = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    dsvc.create(reviewer, reviewer, gaj, dsvc.Period(start, start + timedelta(days=90)), "参加全市执法培训" * 20)
    db.session.commit()

    substitute = visit("gaj")
    substitute.check("delegations", "/delegations/", BOTH, actions=["a:has-text('待审核')", "#substitute"])
    substitute.check("queue-as-substitute", "/review/", BOTH, actions=["tbody a:has-text('审核')"])
    delegator = visit("reviewer")
    delegator.check("delegations", "/delegations/", BOTH, actions=["button:has-text('撤销')"])
    admin = visit("admin")
    admin.check("delegations", "/delegations/", WIDE, actions=["#delegator", "button:has-text('设置委托')"])
    _report([substitute, delegator, admin])
