"""Rules guard the signature: an error-level rule that fails on the approved figures stops 提请签发, 签发
and 发布 (web, service and CLI) with the figures and the arithmetic; warnings are listed for the leader;
a figure re-approved after the merged text was edited makes that section stale."""
import pytest
from sqlalchemy import func, select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import ReportCycle, ReportDraftVersion, TransitionLog
from fazhi_flow.models.indicator import Rule
from fazhi_flow.services import compile as svc
from fazhi_flow.services import contributions as C
from fazhi_flow.services import cycles as cycle_ops
from fazhi_flow.services import figures as F

from .conftest import build_seed_world, good_values

SUM_RULE = "inspections_total = sum(inspections)"
BODIES = {("sfj", "govern"): "全区调委会{{med_total}}个。",
          ("sfj", "enforce"): "全区涉企检查{{inspections_total}}次（各单位合计{{sum(inspections)}}次）。",
          ("town_a", "enforce"): "本镇开展入企检查。", ("town_b", "enforce"): "本街道开展入企检查。"}


def approve_all(world):
    for (unit, section), body in BODIES.items():
        contribution = world.contribution_of(unit, section)
        if contribution.state == "approved":
            continue
        C.save_draft(contribution, world.liaisons[unit], body)
        C.submit_contribution(contribution, world.liaisons[unit])
        C.approve_contribution(contribution, world.reviewer)
    world.db.session.flush()


def change_after_approval(world, value):
    """龙光桥街道 changes its number after approval and is approved again (while the sum rule is away)."""
    town = world.contribution_of("town_b", "enforce")
    C.reopen_contribution(town, world.admin, comment="更正数字")
    F.save_figures(town, world.liaisons["town_b"], {"inspections": value})
    C.submit_contribution(town, world.liaisons["town_b"])
    C.approve_contribution(town, world.reviewer)
    world.db.session.flush()


def sum_rule(world):
    return world.db.session.scalar(select(Rule).where(Rule.cycle_id == world.cycle.id, Rule.expression == SUM_RULE))


def readd_rule(world):
    """A rule that reaches the cycle after the approvals (a cycle file may change rules until signing)."""
    world.db.session.add(Rule(cycle_id=world.cycle.id, section_id=world.sections["enforce"].id, expression=SUM_RULE,
                              severity="error", message="全区涉企检查次数应等于各单位之和", position=9))
    world.db.session.flush()


def counts(db):
    return (db.session.scalar(select(func.count(TransitionLog.id))),
            db.session.scalar(select(func.count(ReportDraftVersion.id))))


@pytest.fixture()
def broken(db, factory):
    """The issue's case: approved figures that no longer add up (1000 → 1001 after approval)."""
    world = build_seed_world(db, factory, values=good_values())
    approve_all(world)
    db.session.delete(sum_rule(world))
    db.session.flush()
    change_after_approval(world, "1001")
    readd_rule(world)
    return world


ARITHMETIC = ("全区涉企检查次数（3812）应等于 各单位涉企检查次数合计（区司法局1500 + 八字哨镇1312 + 龙光桥街道1001 = 3813），"
              "两者相差1")


def test_request_signoff_is_refused_with_the_arithmetic_and_nothing_changes(broken, db):
    cycle_ops.compile_cycle(broken.cycle, broken.admin)
    before = counts(db)
    with pytest.raises(DomainError) as info:
        svc.request_signoff(broken.cycle, broken.admin)
    assert "不能提请签发" in info.value.message
    assert "规则“全区涉企检查次数应等于各单位之和”未通过" in info.value.message
    assert ARITHMETIC in info.value.message
    assert broken.cycle.state == "compiling" and counts(db) == before


def test_the_compile_page_shows_the_failing_rule_before_anyone_asks_for_a_signature(broken, db, login):
    cycle_ops.compile_cycle(broken.cycle, broken.admin)
    db.session.commit()
    page = login(broken.admin).get(f"/compile/{broken.cycle.id}").get_data(as_text=True)
    assert "校验规则未通过（1项），不能提请签发、签发或发布" in page and ARITHMETIC in page


def test_sign_and_publish_are_refused_when_a_rule_fails_at_that_moment(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    approve_all(world)
    cycle_ops.compile_cycle(world.cycle, world.admin)
    svc.request_signoff(world.cycle, world.admin)
    db.session.add(Rule(cycle_id=world.cycle.id, section_id=world.sections["enforce"].id, severity="error",
                        expression="inspections_total = sum(inspections) + 1", position=9))
    db.session.flush()
    before = counts(db)
    with pytest.raises(DomainError, match="不能签发：\n1. 规则“inspections_total = sum\\(inspections\\) \\+ 1”未通过"):
        svc.sign_report(world.cycle, world.leader, svc.latest_version(world.cycle).number)
    assert world.cycle.state == "signoff" and counts(db) == before
    extra = db.session.scalar(select(Rule).where(Rule.expression.like("% + 1")))
    db.session.delete(extra)
    db.session.flush()
    svc.sign_report(world.cycle, world.leader, svc.latest_version(world.cycle).number)
    readd = Rule(cycle_id=world.cycle.id, section_id=world.sections["enforce"].id, severity="error",
                 expression="inspections_total < 3000", position=10)
    db.session.add(readd)
    db.session.flush()
    before = counts(db)
    with pytest.raises(DomainError, match="不能发布") as info:
        svc.publish_report(world.cycle, world.admin)
    assert "全区涉企检查次数（3812）小于 3000" in info.value.message or "3812" in info.value.message
    assert world.cycle.state == "signed" and counts(db) == before and svc.latest_publication(world.cycle) is None


def test_the_cli_transition_is_held_to_the_rules(broken, db, runner):
    cycle_ops.compile_cycle(broken.cycle, broken.admin)
    db.session.commit()
    out = runner.invoke(args=["fazhi", "transition", "request_signoff", "--user", broken.admin.username,
                              "--cycle", str(broken.cycle.id)])
    assert out.exit_code == 1, out.output
    assert ARITHMETIC in out.output
    db.session.expire_all()
    assert db.session.get(ReportCycle, broken.cycle.id).state == "compiling"


def test_a_passing_cycle_signs_and_publishes(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    approve_all(world)
    cycle_ops.compile_cycle(world.cycle, world.admin)
    svc.request_signoff(world.cycle, world.admin)
    svc.sign_report(world.cycle, world.leader, svc.latest_version(world.cycle).number)
    publication = svc.publish_report(world.cycle, world.admin)
    assert "全区涉企检查3812次（各单位合计3812次）" in publication.text


def test_warnings_are_listed_for_the_leader_with_the_explanation(db, factory, login):
    world = build_seed_world(db, factory, values=good_values(sfj__mediators="700"))
    govern = world.contribution_of("sfj", "govern")
    rule = db.session.scalar(select(Rule).where(Rule.cycle_id == world.cycle.id, Rule.severity == "warning"))
    F.save_figures(govern, world.liaisons["sfj"], {}, {f"rule:{rule.id}": "部分村调委会由网格员兼任调解员"})
    approve_all(world)
    cycle_ops.compile_cycle(world.cycle, world.admin)
    svc.request_signoff(world.cycle, world.admin)
    db.session.commit()
    page = login(world.leader).get(f"/compile/{world.cycle.id}/signoff").get_data(as_text=True)
    assert "人民调解员偏少" in page and "人民调解员人数（700）" in page
    assert "部分村调委会由网格员兼任调解员" in page


def test_a_figure_reapproved_after_editing_makes_the_section_stale(db, factory):
    world = build_seed_world(db, factory, values=good_values())
    approve_all(world)
    db.session.delete(sum_rule(world))
    db.session.flush()
    cycle_ops.compile_cycle(world.cycle, world.admin)
    enforce = world.sections["enforce"]
    view = next(v for v in svc.section_views(world.cycle) if v.section.id == enforce.id)
    svc.save_section_text(world.cycle, enforce, world.admin, view.prefill + "\n经汇总编辑。")
    cycle_ops.reopen_collection(world.cycle, world.admin, comment="龙光桥街道更正数字")
    change_after_approval(world, "1001")
    cycle_ops.compile_cycle(world.cycle, world.admin)
    view = next(v for v in svc.section_views(world.cycle) if v.section.id == enforce.id)
    assert view.stale
    with pytest.raises(DomainError, match="请先按最新材料重新生成"):
        svc.request_signoff(world.cycle, world.admin)
