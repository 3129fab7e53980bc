"""Cloning moves the years in titles and guidance and every date, after a preview the admin confirms."""
from datetime import date

from sqlalchemy import func, select

from fazhi_flow.models import ReportCycle, Section
from fazhi_flow.services.clone import clone_cycle, clone_preview, shift_text_years


def test_shift_text_years_moves_only_the_cycle_year_and_the_next():
    text = "2023年推进依法行政，2024年工作安排；对照2021年规划，20231件不是年份。"
    assert shift_text_years(text, 2023, 1) == "2024年推进依法行政，2025年工作安排；对照2021年规划，20231件不是年份。"
    assert shift_text_years(text, 2023, 2).startswith("2025年推进依法行政，2026年工作安排")
    assert shift_text_years(None, 2023, 1) is None


def test_shift_text_years_keeps_document_numbers():
    text = "依据湘政发〔2024〕3号、国办发[2023]12号和【2024】5号文件，2023年完成。"
    assert shift_text_years(text, 2023, 1) == "依据湘政发〔2024〕3号、国办发[2023]12号和【2024】5号文件，2024年完成。"
    assert shift_text_years("〔2023〕第2023号之外，2023年", 2023, 1) == "〔2023〕第2024号之外，2024年"


def test_shift_text_years_keeps_both_ends_of_a_span():
    for joiner in ("—", "–", "-", "~", "～", "至", "到", "——", " — "):
        text = f"（2021{joiner}2025年）规划，2024{joiner}2026年目标，2024年安排"
        assert shift_text_years(text, 2024, 1) == text.replace("，2024年安排", "，2025年安排"), joiner
    assert shift_text_years("2023年至2024年", 2023, 1) == "2023年至2024年"
    assert shift_text_years("2023年度到2024年度", 2023, 1) == "2023年度到2024年度"
    assert shift_text_years("截止日期2024-01-10", 2023, 1) == "截止日期2025-01-10"  # a date, not a span


def _source(factory, db, office):
    office.cycle.year = 2022  # a region has one report a year: 2024 is left free for the clone
    cycle = factory.cycle(year=2023, region="甲区")
    cycle.title = "某某区2023年法治政府建设年度报告"
    cycle.due = date(2024, 2, 29)
    top = factory.section(cycle, "2023年推进法治政府建设的主要举措和成效", code="measures", position=0,
                          guidance="写明2023年的做法。\n与2021年相比的变化可以简述。\n"
                                   "落实〔2023〕5号文件和《规划（2020—2024年）》的情况。", due=date(2024, 1, 10))
    plan = factory.section(cycle, "2024年工作安排", code="plan", position=1)
    factory.assignment(top, office.units[0], due=date(2024, 2, 29))
    factory.assignment(plan, office.units[0])
    db.session.commit()
    return cycle


def test_preview_lists_every_change_and_clone_writes_them(db, factory, office):
    source = _source(factory, db, office)
    changes = {(c.where, c.what, c.old, c.new) for c in clone_preview(source, 2024, "某某区2024年法治政府建设年度报告")}
    assert ("报告", "截止日期", date(2024, 2, 29), date(2025, 2, 28)) in changes
    assert ("一、2023年推进法治政府建设的主要举措和成效", "标题", "2023年推进法治政府建设的主要举措和成效",
            "2024年推进法治政府建设的主要举措和成效") in changes
    assert ("二、2024年工作安排", "标题", "2024年工作安排", "2025年工作安排") in changes
    assert any(c[1] == "填报说明" and c[2] == "写明2023年的做法。" and c[3] == "写明2024年的做法。" for c in changes)
    assert not any("2021" in str(c[2]) for c in changes)  # older years and fixed years are not touched
    assert any(c[1] == "区司法局的截止日期" and c[3] == date(2025, 2, 28) for c in changes)

    with db.session.no_autoflush:
        clone = clone_cycle(source, office.admin, year=2024, title="某某区2024年法治政府建设年度报告")
    db.session.commit()
    titles = {s.code: (s.title, s.guidance, s.due) for s in clone.sections}
    assert titles["measures"] == ("2024年推进法治政府建设的主要举措和成效",
                                  "写明2024年的做法。\n与2021年相比的变化可以简述。\n"
                                  "落实〔2023〕5号文件和《规划（2020—2024年）》的情况。", date(2025, 1, 10))
    assert titles["plan"][0] == "2025年工作安排"
    assert clone.due == date(2025, 2, 28)


def test_web_clone_previews_then_saves(admin_client, db, factory, office):
    source = _source(factory, db, office)
    data = {"c-source": str(source.id), "c-year": "2024", "c-title": "某某区2024年法治政府建设年度报告"}
    page = admin_client.post("/admin/cycles/new/clone", data=data).get_data(as_text=True)
    assert "2024年工作安排" in page and "2025年工作安排" in page and "2025年2月28日" in page
    count = db.session.scalar(select(func.count(ReportCycle.id)))
    assert count == 2  # office.cycle and the source: nothing saved by the preview
    response = admin_client.post("/admin/cycles/new/clone", data={**data, "confirm": "1"})
    assert response.status_code == 303
    clone = db.session.scalar(select(ReportCycle).where(ReportCycle.year == 2024, ReportCycle.region == "甲区"))
    plan = db.session.scalar(select(Section).where(Section.cycle_id == clone.id, Section.code == "plan"))
    assert plan.title == "2025年工作安排"


def test_clone_keeps_the_figure_sharing_setting(db, factory, office):
    source = _source(factory, db, office)
    source.share_approved_figures = True
    db.session.commit()
    with db.session.no_autoflush:
        clone = clone_cycle(source, office.admin, year=2024)
    db.session.commit()
    assert clone.share_approved_figures is True
