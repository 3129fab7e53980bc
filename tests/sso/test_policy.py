"""The password page's rule: an account sent to single sign-on has none, and a delegation (委托) never
lends the delegator's (a password is one's own)."""
from __future__ import annotations

from datetime import timedelta

from fazhi_flow import policy
from fazhi_flow.services import delegations as dsvc
from fazhi_flow.testing import FreshUserClient, login
from fazhi_flow.timeutil import utcnow

from .people import person, two_regions


def test_a_delegation_does_not_lend_the_password_page(app, db):
    hs, _zy, units = two_regions(db)
    reviewer = person(db, hs, None, "hs_reviewer", "赫山审核人")
    reviewer.set_roles(["reviewer"])
    substitute = person(db, hs, units["430903"], "hs_sso_only", "只用统一身份认证的联络员",
                        password_login_disabled=True)
    db.session.flush()
    assert policy.can(reviewer, "password.change") and not policy.can(substitute, "password.change")
    start = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    dsvc.create(reviewer, reviewer, substitute, dsvc.Period(start, start + timedelta(days=30)), "出差")
    db.session.commit()
    assert policy.acting_for(substitute), "the delegation is in force"
    assert not policy.can(substitute, "password.change")
    # And the other way round: the delegator keeps their own page whatever the substitute's account.
    assert policy.can(reviewer, "password.change")
    browser = FreshUserClient(app, app.response_class, use_cookies=True)
    login(browser, reviewer)
    assert browser.get("/password").status_code == 200
