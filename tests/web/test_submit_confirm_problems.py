"""The submit confirmation page lists what 确认 would refuse (SUBMIT_CHECKS) and the warnings, before the
button; with a blocking problem the button is not offered and nothing is submitted."""
from decimal import Decimal

import pytest

from fazhi_flow.models.indicator import Indicator, IndicatorValue

from .conftest import login


@pytest.fixture()
def setup(world, db):
    indicator = Indicator(cycle_id=world.cycle.id, section_id=world.section.id, code="cases",
                          name="调解案件数", measure="件", type="integer", required=True)
    db.session.add(indicator)
    world.contribution.body = "全年共调解案件数120件，调解成功率稳步提高。"
    db.session.commit()
    return world, indicator


def _page(client, world):
    return client.get(f"/tasks/{world.contribution.id}/submit")


def test_blocking_problem_listed_and_button_withheld(client, db, setup):
    world, _ = setup
    login(client, world.liaison)
    response = _page(client, world)
    page = response.get_data(as_text=True)
    assert response.status_code == 200, response.headers.get("Location")
    assert "暂不能提交审核" in page and "必填指标“调解案件数”（件）尚未填写" in page
    assert "确认提交审核</button>" not in page
    # Posting anyway shows the same page with the problem; the state does not change.
    response = client.post(f"/tasks/{world.contribution.id}/submit", data={"version": world.contribution.version})
    assert response.status_code == 409
    assert "必填指标“调解案件数”" in response.get_data(as_text=True)
    db.session.refresh(world.contribution)
    assert world.contribution.state == "draft"


def test_warnings_listed_with_button(client, db, setup):
    world, indicator = setup
    db.session.add(IndicatorValue(contribution_id=world.contribution.id, indicator_id=indicator.id,
                                  value=Decimal(100)))
    db.session.commit()
    login(client, world.liaison)
    page = _page(client, world).get_data(as_text=True)
    assert "暂不能提交审核" not in page
    assert "不影响提交" in page and "120" in page and "100" in page
    assert "确认提交审核</button>" in page
    response = client.post(f"/tasks/{world.contribution.id}/submit", data={"version": world.contribution.version})
    assert response.status_code == 302
    db.session.refresh(world.contribution)
    assert world.contribution.state == "submitted"
