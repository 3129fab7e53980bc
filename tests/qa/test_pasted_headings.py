"""Units paste their whole paragraph from Word, heading included ("（一）标题。正文……"), often with
half-width brackets. The merged report must print each heading once, numbered by the outline."""
import pytest
import yaml
from sqlalchemy import select

from fazhi_flow.models import Contribution, ReportCycle, User
from fazhi_flow.services import contributions, cycles
from fazhi_flow.services.compile import current_document
from fazhi_flow.services.importer import import_cycle

CYCLE = {
    "cycle": {"title": "梅岭区2025年法治政府建设年度报告", "year": 2025, "region": "梅岭区",
              "issuers": ["中共梅岭区委员会", "梅岭区人民政府"], "issue_date": "2026-01-08"},
    "units": [{"code": "sfj", "name": "区司法局"}],
    "users": [{"username": "ml_admin", "name": "管理员", "roles": ["admin"]},
              {"username": "ml_rev", "name": "审核人", "roles": ["reviewer"]},
              {"username": "ml_sfj", "name": "联络员", "unit": "sfj", "roles": ["liaison"]}],
    "outline": [
        {"code": "opening", "title": None, "lead": "sfj"},
        {"code": "measures", "title": "主要举措和成效", "children": [
            {"code": "m.first", "title": "健全制度，筑牢基础", "run_in": True, "lead": "sfj"},
            {"code": "m.second", "title": "创新服务，优化环境", "run_in": True, "lead": "sfj"},
            {"code": "m.third", "title": "强化监督", "run_in": True, "lead": "sfj"},
            {"code": "m.fourth", "title": "化解纠纷", "run_in": True, "lead": "sfj"},
        ]},
        {"code": "gaps", "title": "存在的不足和原因", "lead": "sfj"},
        {"code": "plans", "title": "下一年度工作安排", "lead": "sfj"},
    ],
}

TEXTS = {
    "opening": "本年度梅岭区依法行政水平稳步提升。现将有关情况报告如下：",
    # Full-width number and brackets, as the outline prints them.
    "m.first": "（一）健全制度，筑牢基础。一是梳理权责清单。二是修订议事规则。",
    # Half-width brackets and comma, as text copied from a PDF often has.
    "m.second": "(二)创新服务,优化环境。一是推行帮办代办。二是压缩审批时限。",
    # The heading on a line of its own, the text below it.
    "m.third": "（三）强化监督\n一是开展案卷评查。二是公开投诉渠道。",
    # A paragraph that merely starts with the same words keeps them.
    "m.fourth": "化解纠纷的关键在基层，一是建强调解组织。",
    "gaps": "二、存在的不足和原因\n一是队伍力量不足。二是培训不够系统。",
    "plans": "一是加强统筹。二是压实责任。",
}


@pytest.fixture()
def compiled(db):
    result = import_cycle(yaml.safe_dump(CYCLE, allow_unicode=True))
    cycle = result.cycle
    users = {u.username: u for u in db.session.scalars(select(User))}
    cycles.open_cycle(cycle, users["ml_admin"])
    for contribution in db.session.scalars(select(Contribution).where(Contribution.cycle_id == cycle.id)):
        contributions.save_draft(contribution, users["ml_sfj"], TEXTS[contribution.section.code])
        contributions.submit_contribution(contribution, users["ml_sfj"])
        contributions.approve_contribution(contribution, users["ml_rev"])
    cycles.compile_cycle(cycle, users["ml_admin"])
    db.session.commit()
    return db.session.get(ReportCycle, cycle.id)


def test_a_pasted_heading_is_printed_once(compiled):
    assert current_document(compiled).paragraphs() == [
        "本年度梅岭区依法行政水平稳步提升。现将有关情况报告如下：",
        "一、主要举措和成效",
        "（一）健全制度，筑牢基础。一是梳理权责清单。二是修订议事规则。",
        "（二）创新服务，优化环境。一是推行帮办代办。二是压缩审批时限。",
        "（三）强化监督。一是开展案卷评查。二是公开投诉渠道。",
        "（四）化解纠纷。化解纠纷的关键在基层，一是建强调解组织。",
        "二、存在的不足和原因",
        "一是队伍力量不足。二是培训不够系统。",
        "三、下一年度工作安排",
        "一是加强统筹。二是压实责任。",
    ]
