"""Merging approved material into the report: order, numbering, run-in headings, opening, closing."""
from datetime import date
from pathlib import Path

from fazhi_flow.publish.document import Block, ReportDocument, format_issue_date
from fazhi_flow.publish.merge import assemble, prefill
from fazhi_flow.publish.text import render_text

GOLDEN = Path(__file__).parent / "golden"


def test_merged_text_matches_golden(report):
    text = render_text(assemble(report.cycle))
    assert text == (GOLDEN / "small_report.txt").read_text(encoding="utf-8")


def test_only_approved_material_lead_first(report):
    merged = prefill(report.sections["rules"])
    assert "尚未通过审核" not in merged
    lines = merged.splitlines()
    assert lines[0].startswith("一是把牢决策法制审查关口")      # the lead unit (区司法局) first
    assert lines[-1].startswith("三是推动普法宣传走深走实")      # then the support unit


def test_support_units_in_unit_order(report):
    lines = prefill(report.sections["business"]).splitlines()
    assert [line[:2] for line in lines] == ["一是", "二是", "三是"]
    assert "区纪委监委" not in lines[0]
    assert lines[1].startswith("二是严查") and lines[2].startswith("三是以司法服务")


def test_numbering_run_in_opening_and_closing(report):
    document = assemble(report.cycle)
    assert document.opening and document.opening[0].startswith("2024年，全区围绕")
    heads = [(b.level, b.number, b.heading, b.run_in) for b in document.blocks]
    assert heads == [
        (1, "一、", "法治政府建设主要举措和成效", False),
        (2, "（一）", "夯实制度根基，提升依法决策水平", True),
        (2, "（二）", "优化法治化营商环境", True),
        (2, "（三）", "规范公正文明执法", True),
        (1, "二、", "主要负责人履行法治建设第一责任人职责情况", False),
        (2, "（一）", "加强对法治政府建设的领导", True),
        (1, "三、", "存在的不足和原因", False),
        (1, "四、", "下一年度工作安排", False),
    ]
    paragraphs = document.paragraphs()
    # A run-in heading and its text share one paragraph, closed by a full stop.
    assert "（一）夯实制度根基，提升依法决策水平。一是把牢决策法制审查关口。" in paragraphs[2]
    assert paragraphs[1] == "一、法治政府建设主要举措和成效"
    assert document.closing_lines() == ["中共示例区委员会", "示例区人民政府", "2025年1月6日"]


def test_edited_text_replaces_prefill(report):
    section = report.sections["plans"]
    document = assemble(report.cycle, {section.id: "一是改写后的安排。\n\n二是新增的安排。"})
    block = next(b for b in document.blocks if b.code == "plans")
    assert block.paragraphs == ["一是改写后的安排。", "二是新增的安排。"]


def test_levels_three_and_four_are_numbered_arabic(factory, db):
    cycle = factory.cycle()
    top = factory.section(cycle, "主要举措")
    mid = factory.section(cycle, "制度建设", parent=top)
    low = factory.section(cycle, "决策机制", parent=mid)
    factory.section(cycle, "法律顾问", parent=low)
    factory.section(cycle, "合法性审查", parent=low)
    factory.section(cycle, "文件备案", parent=mid)
    db.session.expire_all()
    document = assemble(cycle)
    assert [b.heading_text for b in document.blocks] == [
        "一、主要举措", "（一）制度建设", "1.决策机制", "（1）法律顾问", "（2）合法性审查", "2.文件备案",
    ]


def test_run_in_heading_keeps_its_own_punctuation():
    block = Block(level=2, number="（二）", heading="问题在哪里？", paragraphs=["正文。"], run_in=True)
    assert block.lines() == [("run_in", "（二）问题在哪里？", "正文。")]


def test_issue_date_has_no_zero_padding():
    assert format_issue_date(date(2025, 1, 6)) == "2025年1月6日"
    assert format_issue_date(date(2024, 12, 30)) == "2024年12月30日"


def test_document_round_trips_through_dict(report):
    document = assemble(report.cycle)
    again = ReportDocument.from_dict(document.to_dict())
    assert again == document
    assert render_text(again) == render_text(document)
