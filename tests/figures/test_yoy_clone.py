"""Cloning a cycle to the next year, and the year-over-year checks against last year's material."""
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from fazhi_flow.errors import DomainError, PermissionDenied
from fazhi_flow.figures.yoy import is_jump, mostly_unchanged, similarity
from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section
from fazhi_flow.models.indicator import Indicator, Rule
from fazhi_flow.services.clone import clone_cycle, shift_year
from fazhi_flow.services.contributions import approve_contribution, submit_contribution
from fazhi_flow.services.cycles import open_cycle
from fazhi_flow.services.figures import (
    NeedsConfirmation, contribution_figures, save_figures, start_from_last_year,
)

from .conftest import build_seed_world, good_values

LAST_YEAR_TEXT = ("今年我们把调委会建设作为基层治理的基础工程，镇、村两级调委会实现全覆盖，"
                  "行业性专业性调委会在医疗、交通、物业等领域陆续设立，调解员培训每季度开展一次。")


@pytest.mark.parametrize("previous, current, expected", [
    (100, 301, True), (100, 300, False), (100, 33, True), (100, 34, False), (100, 0, True),
    (0, 5, False), (None, 5, False), (5, None, False), (7, 7, False),
])
def test_jump_thresholds(previous, current, expected):
    assert is_jump(previous, current) is expected


def test_similarity():
    edited = LAST_YEAR_TEXT.replace("每季度", "每月")
    assert mostly_unchanged(edited, LAST_YEAR_TEXT)
    assert not mostly_unchanged("今年全面推行涉企检查扫码入企，减少重复检查。", LAST_YEAR_TEXT)
    assert similarity("", LAST_YEAR_TEXT) == 0.0


def test_shift_year_handles_leap_day():
    assert shift_year(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert shift_year(date(2025, 1, 10), 1) == date(2026, 1, 10)


def _approve_last_year(world):
    for unit_key, section_key in (("sfj", "govern"), ("sfj", "enforce"), ("town_a", "enforce"), ("town_b", "enforce")):
        c = world.contribution_of(unit_key, section_key)
        c.body = LAST_YEAR_TEXT if section_key == "govern" else "全面落实涉企检查扫码留痕。"
        submit_contribution(c, world.liaisons[unit_key])
        approve_contribution(c, world.reviewer)


def test_clone_carries_everything_forward(db, factory):
    from fazhi_flow.models.reminder import ReminderPolicy

    old = build_seed_world(db, factory, values=good_values())
    old.cycle.due = date(2025, 1, 10)
    old.cycle.issue_date = date(2025, 1, 6)
    old.cycle.issuers = "中共某区委员会\n某区人民政府"
    old.sections["govern"].due = date(2025, 1, 5)
    assignment = old.contribution_of("town_a", "enforce").assignment
    assignment.due = date(2024, 12, 30)
    db.session.add(ReminderPolicy(cycle_id=old.cycle.id, before_due_days="7,2", overdue_every=3))
    db.session.flush()

    new = clone_cycle(old.cycle, old.admin)
    assert (new.year, new.state, new.cloned_from_id, new.region) == (2025, "setup", old.cycle.id, "赫山区")
    assert new.title == "赫山区2025年法治政府建设年度报告"
    assert (new.due, new.issue_date, new.issuers) == (date(2026, 1, 10), date(2026, 1, 6), old.cycle.issuers)

    def outline(cycle):
        return sorted((s.code, s.title, s.parent.code if s.parent else None, s.position,
                       tuple(r.id for r in s.reviewers)) for s in db.session.scalars(
            select(Section).where(Section.cycle_id == cycle.id)))

    assert outline(new) == outline(old.cycle)
    new_assignments = db.session.execute(
        select(Section.code, Assignment.unit_id, Assignment.role, Assignment.due).join(Section)
        .where(Section.cycle_id == new.id)).all()
    assert sorted(new_assignments, key=str) == sorted([
        ("govern", old.units["sfj"].id, "lead", None), ("enforce", old.units["sfj"].id, "lead", None),
        ("enforce", old.units["town_a"].id, "support", date(2025, 12, 30)),
        ("enforce", old.units["town_b"].id, "support", None)], key=str)
    assert db.session.get(Section, next(s.id for s in new.sections if s.code == "govern")).due == date(2026, 1, 5)

    def indicators(cycle):
        return sorted((i.code, i.name, i.measure, i.type, i.required, i.reported_by, i.section.code)
                      for i in db.session.scalars(select(Indicator).where(Indicator.cycle_id == cycle.id)))

    def rules(cycle):
        return sorted((r.expression, r.severity, r.message, r.section.code)
                      for r in db.session.scalars(select(Rule).where(Rule.cycle_id == cycle.id)))

    assert indicators(new) == indicators(old.cycle) and len(indicators(new)) == 16
    assert rules(new) == rules(old.cycle) and len(rules(new)) == 6
    policy = db.session.scalar(select(ReminderPolicy).where(ReminderPolicy.cycle_id == new.id))
    assert (policy.before_due_days, policy.overdue_every) == ("7,2", 3)
    assert db.session.scalar(select(Contribution).where(Contribution.cycle_id == new.id)) is None

    with pytest.raises(DomainError, match="已存在"):
        clone_cycle(old.cycle, old.admin)
    with pytest.raises(PermissionDenied):
        clone_cycle(old.cycle, old.liaisons["sfj"], year=2026)


def test_next_year_compares_with_last_year(db, factory):
    old = build_seed_world(db, factory, values=good_values())
    _approve_last_year(old)
    new = clone_cycle(old.cycle, old.admin)
    open_cycle(new, old.admin)
    govern = db.session.scalar(select(Contribution).join(Section).where(
        Contribution.cycle_id == new.id, Section.code == "govern"))
    liaison = old.liaisons["sfj"]

    report = contribution_figures(govern)
    assert report.previous_text == LAST_YEAR_TEXT
    assert {r.indicator.code: r.previous for r in report.rows}["med_total"] == Decimal(265)

    start_from_last_year(govern, liaison)  # the draft is empty: no confirmation needed
    assert govern.body == LAST_YEAR_TEXT
    govern.body = LAST_YEAR_TEXT.replace("每季度", "每两个月")
    report = contribution_figures(govern)
    assert report.mostly_unchanged and report.similarity > 0.8

    with pytest.raises(NeedsConfirmation):
        govern.body = "今年重点推进调解组织规范化。"
        start_from_last_year(govern, liaison)
    assert govern.body == "今年重点推进调解组织规范化。"

    save_figures(govern, liaison, {"med_total": "0", "med_town": "0", "med_park": "0", "med_village": "0",
                                   "med_trade": "0", "mediators": "4000"})
    report = contribution_figures(govern)
    jumped = {j.indicator.code: j.message for j in report.jumps}
    assert set(jumped) == {"med_total", "med_town", "med_park", "med_village", "med_trade", "mediators"}
    assert jumped["med_total"] == "“调委会总数”由上年的265个变为0，请说明原因（如统计口径变化、职能调整）。"
    assert jumped["mediators"] == "“人民调解员人数”由上年的1104人增至4000人，约为上年的3.6倍，请说明原因。"
    with pytest.raises(DomainError, match="请在说明栏填写"):
        submit_contribution(govern, liaison)
    save_figures(govern, liaison, {}, {f"yoy:{code}": "机构改革后调委会划归街道统一管理。" for code in jumped})
    assert contribution_figures(govern).pending_explanations == []
    submit_contribution(govern, liaison)
    assert govern.state == "submitted"


def test_cycle_without_last_year_has_nothing_to_compare(seed_world):
    c = seed_world.contribution_of("sfj", "govern")
    report = contribution_figures(c)
    assert report.previous is None and report.jumps == [] and not report.mostly_unchanged
    with pytest.raises(DomainError, match="没有找到本单位上年度"):
        start_from_last_year(c, seed_world.liaisons["sfj"])


def test_clone_refuses_an_earlier_year(seed_world):
    with pytest.raises(DomainError, match="新年度应晚于2024年"):
        clone_cycle(seed_world.cycle, seed_world.admin, year=2023)
    assert db_count(seed_world) == 1


def db_count(world):
    return len(world.db.session.scalars(select(ReportCycle)).all())
