"""Last year's numbers left in this year's text, flagged where a contribution's figures are checked."""
from decimal import Decimal

from sqlalchemy import select

from fazhi_flow.models import Contribution, Section
from fazhi_flow.services.clone import clone_cycle
from fazhi_flow.services.contributions import approve_contribution, submit_contribution
from fazhi_flow.services.cycles import open_cycle
from fazhi_flow.services.figures import contribution_figures, save_figures

from .conftest import build_seed_world, good_values


def test_contribution_figures_flag_last_years_number_of_the_unit(db, factory):
    old = build_seed_world(db, factory, values=good_values())
    govern = old.contribution_of("sfj", "govern")
    govern.body = "人民调解员队伍稳定。"
    submit_contribution(govern, old.liaisons["sfj"])
    approve_contribution(govern, old.reviewer)
    new = clone_cycle(old.cycle, old.admin)
    open_cycle(new, old.admin)
    current = db.session.scalar(select(Contribution).join(Section).where(
        Contribution.cycle_id == new.id, Section.code == "govern"))
    save_figures(current, old.liaisons["sfj"], {"mediators": "1200"})
    current.body = ("全区人民调解员1104人。2024年全区人民调解员1104人。人民调解员1200人，比上年增加96人。"
                    "区司法局指导的人民调解员1201人。区市场监管局调解员1250人。")
    report = contribution_figures(current)
    # Last year's number is named as such; another year's is not read; the unit's own name does not
    # hide its number, another unit's does.
    assert [(m.indicator.code, m.written, m.previous) for m in report.literals] == [
        ("mediators", Decimal(1104), Decimal(1104)), ("mediators", Decimal(1201), None)]
    assert "上年的数值" in report.literals[0].message
