"""A small report cycle shaped like a district's annual report: an opening paragraph, parts 一、 with
run-in level-two parts, parts without sub-parts, lead and support units, and the closing block."""
from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

# Every sentence below is written for these tests; the figures follow a published district report.
MATERIAL = {
    "opening": [("lead", "区委依法治区办", "approved",
                 "2024年，全区围绕法治政府建设年度目标，统筹推进依法决策、严格执法和矛盾化解，"
                 "法治建设考核连续三年位居全市前列。现将主要情况报告如下：")],
    "rules": [
        ("lead", "区司法局", "approved",
         "一是把牢决策法制审查关口。法律顾问全程参与重大事项论证，各类决策事项法制审查率保持100%。\n"
         "二是抓实文件合法性审查。全年备案审查规范性文件16件，审核政府合同10件，"
         "办理其他法制事务160余件，清理废止妨碍公平竞争的文件5件。"),
        ("support", "区人民政府办公室", "approved",
         "三是推动普法宣传走深走实。依托“法律明白人”和普法志愿者队伍，组织各类宣传活动500余场次。"),
        ("support", "区发展和改革局", "submitted",
         "这段材料尚未通过审核，不应出现在合并稿中。"),
    ],
    "business": [
        ("lead", "区发展和改革局", "approved",
         "一是提升涉企服务质效。对纳入白名单的92家企业实行“无事不扰”，部门联合检查合并开展8次。"),
        ("support", "区纪委监委", "approved",
         "二是严查破坏营商环境行为。全年查处相关线索44条，对38人党纪政务立案。"),
        ("support", "区人民法院", "approved",
         "三是以司法服务护航企业发展。全年办结商事类案件7926件，标的额合计12.3亿元。"),
    ],
    "enforcement": [
        ("lead", "区司法局", "approved",
         "一是落实执法公示和法制审核。公示执法结果信息521项，法制审核执法决定482项。\n"
         "二是推行涉企检查扫码入企。全年涉企检查3812次，扫码率达到100%。"),
    ],
    "duty": [
        ("lead", "区人民政府办公室", "approved",
         "区委、区政府主要负责同志定期研究法治建设重大事项，审议年度法治建设工作要点，"
         "对3个重点领域开展驻点督察。"),
    ],
    "shortcomings": [
        ("lead", "区委依法治区办", "approved",
         "一是部分单位学法形式较为单一，研讨交流偏少。二是基层综合执法衔接还不够顺畅。"),
    ],
    "plans": [
        ("lead", "区委依法治区办", "approved",
         "一是压实法治建设第一责任人职责。二是提升行政决策质量。三是持续规范行政执法。"),
    ],
}

OUTLINE = [
    ("opening", None, None, False),
    ("measures", None, "法治政府建设主要举措和成效", False),
    ("rules", "measures", "夯实制度根基，提升依法决策水平", True),
    ("business", "measures", "优化法治化营商环境", True),
    ("enforcement", "measures", "规范公正文明执法", True),
    ("responsibility", None, "主要负责人履行法治建设第一责任人职责情况", False),
    ("duty", "responsibility", "加强对法治政府建设的领导", True),
    ("shortcomings", None, "存在的不足和原因", False),
    ("plans", None, "下一年度工作安排", False),
]


def build_report_cycle(factory, db):
    """Build the cycle in the ``collecting`` state with its contributions in the listed states."""
    from fazhi_flow.models import Revision

    office = factory.unit("区委依法治区办", code="yfzqb", kind="party")
    units = {"区委依法治区办": office}
    order = ["区人民政府办公室", "区司法局", "区纪委监委", "区人民法院", "区发展和改革局"]
    for position, name in enumerate(order, start=1):
        unit = factory.unit(name, code=f"unit{position}")
        unit.sort_order = position
        units[name] = unit
    reviewer = factory.user("reviewer", unit=None, name="审核人")
    cycle = factory.cycle(state="collecting", region="示例区")
    cycle.title = "示例区2024年法治政府建设年度报告"
    cycle.issuers = "中共示例区委员会\n示例区人民政府"
    cycle.issue_date = date(2025, 1, 6)
    sections = {}
    for position, (code, parent, title, run_in) in enumerate(OUTLINE, start=1):
        sections[code] = factory.section(cycle, title, parent=sections.get(parent), code=code,
                                         position=position, run_in=run_in, reviewers=[reviewer])
    contributions = {}
    for code, items in MATERIAL.items():
        for role, unit_name, state, body in items:
            assignment = factory.assignment(sections[code], units[unit_name], role=role)
            contribution = factory.contribution(assignment, state=state, body=body)
            if state in ("approved", "submitted"):
                db.session.add(Revision(contribution=contribution, number=1, body=body))
            contributions[(code, unit_name)] = contribution
    db.session.flush()
    db.session.expire_all()
    return SimpleNamespace(
        cycle=cycle, sections=sections, units=units, contributions=contributions, reviewer=reviewer,
        admin=factory.user("admin", unit=office, name="管理员"),
        leader=factory.user("leader", unit=office, name="签发领导"),
        liaison=factory.user("liaison", unit=units["区发展和改革局"], name="发改联络员"),
    )


@pytest.fixture()
def report(factory, db):
    return build_report_cycle(factory, db)


@pytest.fixture()
def compiling(report, db):
    """The report cycle moved to compiling (the unapproved material is forced past)."""
    from fazhi_flow.services.cycles import compile_cycle

    compile_cycle(report.cycle, report.admin, force_reason="发改局材料仍在审核，先行汇总")
    db.session.flush()
    return report
