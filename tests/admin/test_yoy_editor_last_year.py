"""The editor shows last year's approved material of the same section beside the draft: every unit on
the section, numbers printed as approved (not raw codes), and nothing of other sections."""
from decimal import Decimal

import pytest

from fazhi_flow.models.indicator import Indicator, IndicatorValue
from fazhi_flow.services.contributions import approve_contribution, submit_contribution

from .conftest import login


def _approved(factory, db, section, unit, liaison, reviewer, body, role="lead", values=()):
    contribution = factory.contribution(factory.assignment(section, unit, role=role), body=body)
    for indicator, value in values:
        db.session.add(IndicatorValue(contribution_id=contribution.id, indicator_id=indicator.id, value=value))
    db.session.flush()
    submit_contribution(contribution, liaison)
    approve_contribution(contribution, reviewer)
    return contribution


@pytest.fixture()
def years(factory, db):
    office = factory.unit("区委依法治区办", code="yfzqb", kind="party")
    lead, support = factory.unit("区司法局", code="sfj"), factory.unit("某某镇", code="mmz", kind="township")
    reviewer = factory.user("reviewer", unit=office, name="审核人")
    liaisons = {u.code: factory.user("liaison", unit=u, name=f"{u.name}联络员") for u in (lead, support)}
    old = factory.cycle(state="collecting", year=2023, region="甲区")
    govern = factory.section(old, "化解矛盾纠纷", code="govern", reviewers=[reviewer])
    other = factory.section(old, "其他章节", code="other", reviewers=[reviewer])
    cases = Indicator(cycle_id=old.id, section_id=govern.id, code="cases", name="调解案件数", measure="件")
    db.session.add(cases)
    db.session.flush()
    _approved(factory, db, govern, lead, liaisons["sfj"], reviewer, "全年共调解案件{{cases}}件，调解成功率98%。",
              values=[(cases, Decimal(410))])
    _approved(factory, db, govern, support, liaisons["mmz"], reviewer, "配合开展普法宣传进村入户。", role="support")
    _approved(factory, db, other, lead, liaisons["sfj"], reviewer, "另一章节的上年内容。")
    old.state = "published"
    new = factory.cycle(state="collecting", year=2024, region="甲区")
    new.cloned_from_id = old.id
    section = factory.section(new, "化解矛盾纠纷", code="govern", reviewers=[reviewer])
    drafts = {"sfj": factory.contribution(factory.assignment(section, lead), body="今年的草稿。"),
              "mmz": factory.contribution(factory.assignment(section, support, role="support"), body="")}
    db.session.commit()
    return liaisons, drafts


def test_lead_sees_every_unit_with_numbers(client, db, years):
    liaisons, drafts = years
    login(client, liaisons["sfj"])
    page = client.get(f"/tasks/{drafts['sfj'].id}").get_data(as_text=True)
    panel = page.split('id="last-year"')[1].split('<div class="card">')[0]
    assert "2023年" in panel
    assert "全年共调解案件410件" in panel and "{{cases}}" not in panel
    assert "配合开展普法宣传进村入户" in panel  # the support unit's material too
    assert "调解案件数" in panel and "410件" in panel  # own values as approved
    assert "另一章节的上年内容" not in page  # nothing of other sections
    assert panel.index("区司法局") < panel.index("某某镇")  # lead first


def test_support_unit_sees_the_section_too(client, db, years):
    liaisons, drafts = years
    login(client, liaisons["mmz"])
    page = client.get(f"/tasks/{drafts['mmz'].id}").get_data(as_text=True)
    assert "全年共调解案件410件" in page and "配合开展普法宣传进村入户" in page  # published last year: public
    assert "{{cases}}" not in page and "另一章节的上年内容" not in page


def test_no_panel_without_last_year(client, db, factory):
    world = factory.world()
    db.session.commit()
    login(client, world.liaison)
    assert 'id="last-year"' not in client.get(f"/tasks/{world.contribution.id}").get_data(as_text=True)


def test_figures_page_prints_last_years_numbers(client, db, years):
    liaisons, drafts = years
    login(client, liaisons["sfj"])
    page = client.get(f"/figures/contribution/{drafts['sfj'].id}").get_data(as_text=True)
    assert "全年共调解案件410件" in page and "{{cases}}" not in page
