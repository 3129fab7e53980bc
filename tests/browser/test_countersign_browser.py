"""会签 pages fit a phone and a laptop, and axe-core finds no serious problem on them (the demo
district: the section of 区人民检察院's submitted material is approved by both its reviewers)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from fazhi_flow.models import Contribution, Section, User
from fazhi_flow.services import contributions as svc

from .test_layout_a11y import BOTH, _contribution, _report, axe_source, visit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_countersign_pages_fit_and_pass_axe(demo, db, visit):  # noqa: F811
    first = db.session.scalar(select(User).where(User.username == "reviewer"))
    second = db.session.scalar(select(User).where(User.username == "reviewer2"))
    cid = _contribution(db, demo, "measures.business", "jcy")
    contribution = db.session.get(Contribution, cid)
    section = db.session.get(Section, contribution.section_id)
    section.reviewers = [first, second]
    section.review_mode = "all"
    db.session.flush()
    svc.approve_contribution(contribution, first, comment="联络站数量与统计表一致，同意。" * 30)
    db.session.commit()
    assert contribution.state == "submitted"

    approved = visit("reviewer")
    approved.check("countersign-queue", "/review/", BOTH, actions=["td:has-text('已会签，等待黄静')"])
    approved.check("countersign-waiting", f"/review/{cid}", BOTH,
                   actions=["h2:has-text('会签')", "button:has-text('退回修改')"])
    pending = visit("reviewer2")
    pending.check("countersign-last", f"/review/{cid}", BOTH,
                  actions=["h2:has-text('会签')", "button:has-text('通过')"])
    _report([approved, pending])
