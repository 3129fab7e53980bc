"""The token page and the API's readable page fit a phone and a laptop, and axe-core finds no serious
problem on them (the demo district's 公安 liaison, with a live and a revoked token)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from fazhi_flow.api import tokens as token_svc
from fazhi_flow.models import User
from tests.browser.conftest import _unavailable, live_server  # noqa: F401 (fixtures)
from tests.browser.test_layout_a11y import BOTH, _report, axe_source, visit  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _needs_a_browser():
    reason = _unavailable()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


def test_token_and_api_pages_fit_and_pass_axe(demo, db, visit):  # noqa: F811
    gaj = db.session.scalar(select(User).where(User.username == "gaj"))
    token_svc.create_token(gaj, "单位执法台账系统" * 7 + "同步", "write", 365)
    old, _ = token_svc.create_token(gaj, "旧脚本", "read", 30)
    token_svc.revoke_token(gaj, old.id)
    db.session.commit()

    liaison = visit("gaj")
    liaison.check("tokens", "/account/tokens/", BOTH,
                  actions=["button:has-text('创建令牌')", "button:has-text('撤销')", "#name", "#days"])
    # Made through the form: the page showing the token once passes too.
    page = liaison.page
    page.goto("/account/tokens/")
    page.fill("#name", "数据上报")
    page.fill("#days", "90")
    page.click("button:has-text('创建令牌')")
    page.wait_for_load_state()
    shown = page.input_value("#new-token")
    assert shown.startswith(token_svc.TOKEN_PREFIX)
    page.evaluate(liaison.axe_source)
    from tests.browser.test_layout_a11y import AXE_RUN_JS

    liaison.problems += [f"gaj token shown: {v}" for v in page.evaluate(AXE_RUN_JS)]
    liaison.check("api-docs", "/api/v1/docs", BOTH, actions=["h2:has-text('接口一览')"])
    anonymous = visit(None)
    anonymous.check("api-docs", "/api/v1/docs", BOTH, actions=["h2:has-text('接口一览')"])
    _report([liaison, anonymous])
