"""Roll-up figures (汇总指标): a city's and a province's indicators taken from the regions below.

湖南省 (province) → 益阳市 (赫山区, 资阳区, 沅江市) and 长沙市 (芙蓉区, 天心区, 岳麓区 without a report).
Every district has a unit "gaj" and a unit "sfj" entering 行政执法案件数 (``cases``); the cities roll it
up (益阳市 in the way under test, 长沙市 by maximum) and the province sums the cities. Every expected
number below is computed in the test from the table of units' values, not by the code under test.
"""
from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from fazhi_flow.models.indicator import ROLLUPS

YEAR = 2024
# district: (city, code, cycle state, {unit code: (value, contribution state, approved value)})
DISTRICTS = {
    "赫山区": ("益阳市", "430903", "collecting", {"gaj": (120, "approved", 120), "sfj": (35, "approved", 35)}),
    # 资阳区司法局's 20 is a draft: not counted until approved.
    "资阳区": ("益阳市", "430902", "collecting", {"gaj": (80, "approved", 80), "sfj": (20, "draft", None)}),
    "沅江市": ("益阳市", "430981", "compiling", {"gaj": (60, "approved", 60), "sfj": (15, "approved", 15)}),
    # A published report: its approved values count.
    "芙蓉区": ("长沙市", "430102", "published", {"gaj": (200, "approved", 200), "sfj": (50, "approved", 50)}),
    # Nothing approved yet: no value, left out of every way (and of the count).
    "天心区": ("长沙市", "430103", "collecting", {"gaj": (90, "submitted", None), "sfj": (10, "draft", None)}),
}
NO_REPORT = {"岳麓区": ("长沙市", "430104")}
CITIES = {"益阳市": "430900", "长沙市": "430100"}
# The longest indicator name allowed (200 characters).
LONG_NAME = ("全省各级行政执法机关办理的行政处罚、行政许可、行政强制、行政检查等行政执法案件总数（含线上办理" + "、线下办理" * 40)[:199] + "）"


def counted(district: str) -> Decimal | None:
    """A district's value as the rule says: its units' approved values, or None."""
    _, _, state, units = DISTRICTS[district]
    values = [Decimal(approved if approved is not None else value) for value, cstate, approved in units.values()
              if cstate == "approved" or (state == "published" and approved is not None)]
    return sum(values, Decimal(0)) if values else None


def way(how: str, values) -> Decimal | None:
    present = [v for v in values if v is not None]
    if how == "count":
        return Decimal(len(present))
    if not present:
        return None
    return {
        "sum": lambda: sum(present, Decimal(0)),
        "avg": lambda: (sum(present, Decimal(0)) / len(present)).quantize(Decimal("0.01"), ROUND_HALF_UP),
        "min": lambda: min(present),
        "max": lambda: max(present),
    }[how]()


def city_districts(city: str) -> list[str]:
    return [d for d, info in DISTRICTS.items() if info[0] == city]


def _cycle(db, region, state="collecting", rollup=None, name="行政执法案件数"):
    from fazhi_flow.models import ReportCycle, Section
    from fazhi_flow.models.indicator import Indicator

    cycle = ReportCycle(year=YEAR, region=region.name, owner=region, title=f"{region.name}{YEAR}年法治政府建设年度报告",
                        state=state, due=date(YEAR + 1, 1, 10))
    db.session.add(cycle)
    db.session.flush()
    section = Section(cycle=cycle, code="enforce", title="严格规范公正文明执法", position=1)
    db.session.add(section)
    db.session.flush()
    cases = Indicator(cycle_id=cycle.id, section_id=section.id, code="cases", name=name, measure="件",
                      rollup=rollup, position=0)
    db.session.add(cases)
    db.session.flush()
    return cycle, section, cases


def _contribution(db, section, unit, role, state, body):
    from fazhi_flow.models import Assignment, Contribution

    assignment = Assignment(section=section, unit=unit, role=role)
    db.session.add(assignment)
    db.session.flush()
    contribution = Contribution(assignment=assignment, cycle_id=section.cycle_id, section_id=section.id,
                                unit_id=unit.id, body=body, state=state)
    db.session.add(contribution)
    db.session.flush()
    return contribution


def add_district(db, city, name, code, state, units):
    """A district with its report, units gaj and sfj and their values."""
    from fazhi_flow.models import Region, Unit
    from fazhi_flow.models.indicator import IndicatorValue

    region = Region(code=code, name=name, level="county", parent=city)
    db.session.add(region)
    db.session.flush()
    cycle, section, cases = _cycle(db, region, state)
    unit_names = {"gaj": f"{name[:-1]}公安分局", "sfj": f"{name}司法局"}
    for n, (unit_code, (value, cstate, approved)) in enumerate(units.items()):
        unit = Unit(region=region, code=unit_code, name=unit_names[unit_code], sort_order=n)
        db.session.add(unit)
        db.session.flush()
        c = _contribution(db, section, unit, "lead" if n == 0 else "support", cstate,
                          f"{unit.name}全年办理行政执法案件{{{{cases}}}}件。")
        db.session.add(IndicatorValue(contribution_id=c.id, indicator_id=cases.id, value=value,
                                      approved_value=approved))
    db.session.flush()
    return SimpleNamespace(region=region, cycle=cycle, section=section, cases=cases)


def build(db, factory, city_way="sum", leave_out=()):
    from fazhi_flow.models import Region, Unit
    from fazhi_flow.models.indicator import Indicator, IndicatorValue, Rule

    province = Region(code="430000", name="湖南省", level="province")
    db.session.add(province)
    db.session.flush()
    cities = {}
    for name, code in CITIES.items():
        cities[name] = Region(code=code, name=name, level="city", parent=province)
        db.session.add(cities[name])
    db.session.flush()
    districts = {name: add_district(db, cities[city], name, code, state, units)
                 for name, (city, code, state, units) in DISTRICTS.items() if name not in leave_out}
    for name, (city, code) in NO_REPORT.items():
        db.session.add(Region(code=code, name=name, level="county", parent=cities[city]))
    # The province rolls up the cities, which roll up their districts.
    p_cycle, _, p_cases = _cycle(db, province, rollup="sum", name=LONG_NAME)
    cs_cycle, _, cs_cases = _cycle(db, cities["长沙市"], rollup="max")
    yy_cycle, yy_section, yy_cases = _cycle(db, cities["益阳市"], rollup=city_way)
    # The city's own police bureau, also "gaj" (as in every district), enters a figure of its own.
    own = Indicator(cycle_id=yy_cycle.id, section_id=yy_section.id, code="own_cases", name="市本级行政执法案件数",
                    measure="件", position=1)
    db.session.add(own)
    db.session.add(Rule(cycle_id=yy_cycle.id, section_id=yy_section.id, expression="cases >= own_cases",
                        severity="warning", message="全市案件数不应少于市本级案件数", position=0))
    office = Unit(region=cities["益阳市"], code="yfzsb", name="市委依法治市办", kind="party")
    gaj = Unit(region=cities["益阳市"], code="gaj", name="益阳市公安局")
    db.session.add_all([office, gaj])
    db.session.flush()
    body = "全市行政执法案件{{cases}}件，其中市本级办理{{own_cases}}件。"
    yy_contribution = _contribution(db, yy_section, gaj, "lead", "draft", body)
    db.session.add(IndicatorValue(contribution_id=yy_contribution.id, indicator_id=own.id, value=40))
    db.session.flush()
    world = SimpleNamespace(
        province=province, cities=cities, districts=districts, p_cycle=p_cycle, p_cases=p_cases,
        cs_cycle=cs_cycle, cs_cases=cs_cases, yy_cycle=yy_cycle, yy_section=yy_section, yy_cases=yy_cases,
        own=own, yy_gaj=gaj, yy_contribution=yy_contribution,
        admin=factory.user("admin", unit=office, username="yy_admin", name="益阳市管理员"),
        liaison=factory.user("liaison", unit=gaj, username="yy_gaj", name="市公安局联络员"),
        hs_liaison=None,
    )
    p_office = Unit(region=province, code="yfzsb", name="省委依法治省办", kind="party")
    db.session.add(p_office)
    db.session.flush()
    world.p_admin = factory.user("admin", unit=p_office, username="hn_admin", name="湖南省管理员")
    hs_gaj = db.session.scalar(select(Unit).where(Unit.region_id == districts["赫山区"].region.id, Unit.code == "gaj"))
    world.hs_liaison = factory.user("liaison", unit=hs_gaj, username="hs_gaj", name="赫山公安联络员")
    db.session.commit()
    return world


def expected_city(city: str, how: str) -> Decimal | None:
    return way(how, [counted(d) for d in city_districts(city)])


# ---------------------------------------------------------------- the values


@pytest.mark.parametrize("how", list(ROLLUPS))
def test_each_way_over_the_districts_and_the_province_over_the_cities(db, factory, how):
    from fazhi_flow.figures.evaluate import FigureBook

    w = build(db, factory, city_way=how)
    yy = FigureBook(w.yy_cycle).rollup(w.yy_cases)
    assert yy.value == expected_city("益阳市", how)
    assert [(p.region_name, p.value) for p in yy.parts] == [(d, counted(d)) for d in ("资阳区", "赫山区", "沅江市")]
    assert yy.counted == 3
    cs = FigureBook(w.cs_cycle).rollup(w.cs_cases)
    assert cs.value == expected_city("长沙市", "max") == 250
    assert [(p.region_name, p.value, p.note) for p in cs.parts] == [
        ("芙蓉区", Decimal(250), "审核通过的数值"), ("天心区", None, "尚无审核通过的数值"), ("岳麓区", None, "尚无本年度报告")]
    province = FigureBook(w.p_cycle).rollup(w.p_cases)
    # The province sums the cities' own roll-ups, each made its own way.
    assert province.value == way("sum", [expected_city("益阳市", how), expected_city("长沙市", "max")])
    assert [p.rolled_up for p in province.parts] == [True, True]


def test_the_numbers_themselves(db, factory):
    """The fixed table, spelled out once: a wrong rule of counting cannot hide behind a shared helper."""
    from fazhi_flow.figures.evaluate import FigureBook

    w = build(db, factory, city_way="avg")
    # 赫山区 120+35, 资阳区 80 (its draft 20 left out), 沅江市 60+15.
    assert FigureBook(w.yy_cycle).rollup_value(w.yy_cases) == Decimal("103.33")  # (155+80+75)/3
    assert FigureBook(w.p_cycle).rollup_value(w.p_cases) == Decimal("353.33")  # 103.33 + max(250)


def test_a_draft_is_not_counted_until_approved(db, factory):
    from fazhi_flow.figures.evaluate import FigureBook
    from fazhi_flow.models import Contribution, Unit
    from fazhi_flow.models.indicator import IndicatorValue

    w = build(db, factory)
    zy = w.districts["资阳区"]
    assert {p.region_name: p.value for p in FigureBook(w.yy_cycle).rollup(w.yy_cases).parts}["资阳区"] == 80
    sfj = db.session.scalar(select(Unit).where(Unit.region_id == zy.region.id, Unit.code == "sfj"))
    draft = db.session.scalar(select(Contribution).where(Contribution.unit_id == sfj.id))
    draft.state = "approved"
    db.session.scalar(select(IndicatorValue).where(IndicatorValue.contribution_id == draft.id)).approved_value = 20
    db.session.commit()
    book = FigureBook(w.yy_cycle)
    assert {p.region_name: p.value for p in book.rollup(w.yy_cases).parts}["资阳区"] == 100
    assert book.rollup_value(w.yy_cases) == 155 + 100 + 75


def test_a_value_approved_earlier_counts_in_a_published_report_and_a_never_approved_one_never(db, factory):
    from fazhi_flow.figures.evaluate import FigureBook
    from fazhi_flow.models import Contribution

    w = build(db, factory, city_way="sum")
    fr = w.districts["芙蓉区"]
    contributions = list(db.session.scalars(select(Contribution).where(Contribution.cycle_id == fr.cycle.id)))
    contributions[0].state = "returned"  # reopened after approval: its approved value stands (published)
    db.session.commit()
    assert FigureBook(w.cs_cycle).rollup_value(w.cs_cases) == 250
    fr.cycle.state = "collecting"  # not published: only approved contributions count
    db.session.commit()
    assert FigureBook(w.cs_cycle).rollup_value(w.cs_cases) == 250 - 200


# ---------------------------------------------------------------- citations, rules, compile


def test_a_text_citing_the_rollup_prints_the_number_everywhere(db, factory):
    from fazhi_flow.figures.evaluate import FigureBook, evaluate_contribution
    from fazhi_flow.figures.scoped import ScopedFigureBook
    from fazhi_flow.figures.summary import appendix_rows
    from fazhi_flow.publish.numbers import ApprovedFigureBook, ApprovedTexts
    from fazhi_flow.services import figures as F

    w = build(db, factory)
    total = expected_city("益阳市", "sum")
    assert total == 310
    c = w.yy_contribution
    assert F.render_contribution_text(c) == "全市行政执法案件310件，其中市本级办理40件。"
    assert ScopedFigureBook(w.yy_cycle).values_for(c, ["cases"])["cases"] == total
    # As the liaison sees it (a restricted reader): the roll-up is the same for everyone.
    assert "全市行政执法案件<span class=\"bound-number\" title=\"cases\">310</span>件" in str(
        F.rendered_for(c, FigureBook(w.yy_cycle), w.liaison))
    result = evaluate_contribution(FigureBook(w.yy_cycle), c, detail=True)[0]
    assert result.status == "ok" and "行政执法案件数（下级地区合计：310）" in result.message
    # The compile pipeline prints the approved figures through the same resolution.
    c.state = "approved"
    db.session.commit()
    assert ApprovedTexts(w.yy_cycle).text(c) == "全市行政执法案件310件，其中市本级办理【市本级行政执法案件数：未填报】件。"
    assert F.render_contribution_text(c) == "全市行政执法案件310件，其中市本级办理40件。"
    appendix = {row["code"]: row["value"] for row in appendix_rows(w.yy_cycle, ApprovedFigureBook(w.yy_cycle))}
    assert appendix == {"cases": "310", "own_cases": "—"}  # own_cases was never approved
    # And a sum over a roll-up is the roll-up itself (no unit enters it).
    assert FigureBook(w.yy_cycle).values_for(c, ["cases"])["sum(cases)"] == total


# ---------------------------------------------------------------- pages


def _get(as_user, user, url):
    response = as_user(user).get(url)
    return response, response.get_data(as_text=True)


def test_summary_definitions_and_entry_form_show_the_breakdown(db, factory, as_user):
    from openpyxl import load_workbook
    import io

    w = build(db, factory)
    response, page = _get(as_user, w.admin, f"/figures/cycle/{w.yy_cycle.id}/summary")
    assert response.status_code == 200
    assert "赫山区155（征集中）" in page and "资阳区80（征集中）" in page and "沅江市75（汇总编辑中）" in page
    assert ">310<" in page and "3/3" in page
    response = as_user(w.admin).get(f"/figures/cycle/{w.yy_cycle.id}/summary.xlsx")
    book = load_workbook(io.BytesIO(response.data))
    rows = list(book["下级地区汇总"].iter_rows(values_only=True))[1:]
    assert [(r[0], r[4], r[5], r[6]) for r in rows] == [
        ("cases", "资阳区", 80, "征集中"), ("cases", "赫山区", 155, "征集中"), ("cases", "沅江市", 75, "汇总编辑中")]
    response, page = _get(as_user, w.p_admin, f"/figures/cycle/{w.p_cycle.id}/summary")
    assert response.status_code == 200 and LONG_NAME in page
    assert "益阳市310（征集中）" in page and "长沙市250（征集中）" in page and ">560<" in page
    response, page = _get(as_user, w.admin, f"/figures/cycle/{w.yy_cycle.id}/definitions")
    assert response.status_code == 200 and "下级地区合计（汇总，不由单位填报）" in page
    assert 'id="rollup-cases"' in page and "沅江市" in page
    response, page = _get(as_user, w.liaison, f"/figures/contribution/{w.yy_contribution.id}")
    assert response.status_code == 200
    assert 'name="value-own_cases"' in page and 'name="value-cases"' not in page
    assert 'id="rollup-cases"' in page and "赫山区" in page and "全市行政执法案件" in page


def test_the_entry_form_refuses_a_posted_rollup_value_and_writes_nothing(db, factory, as_user):
    from fazhi_flow.models.indicator import IndicatorValue

    w = build(db, factory)
    client = as_user(w.liaison)
    response = client.post(f"/figures/contribution/{w.yy_contribution.id}",
                           data={"value-own_cases": "41", "value-cases": "999"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "“行政执法案件数”（cases）是汇总指标" in page and "不能填报" in page
    db.session.expire_all()
    rows = {r.indicator_id: r.value for r in db.session.scalars(
        select(IndicatorValue).where(IndicatorValue.contribution_id == w.yy_contribution.id))}
    assert rows == {w.own.id: 40}  # neither the roll-up nor the valid own value was written


def test_defining_a_rollup_checks_the_way_and_the_regions_below(db, factory, as_user):
    from fazhi_flow.models.indicator import Indicator

    w = build(db, factory)
    client = as_user(w.admin)
    form = {"form": "indicator", "section_id": str(w.yy_section.id), "code": "trainings", "name": "法治培训次数",
            "measure": "次", "type": "integer", "reported_by": "all"}
    response = client.post(f"/figures/cycle/{w.yy_cycle.id}/definitions", data={**form, "rollup": "median"})
    assert response.status_code == 422 and "汇总方式“median”无效" in response.get_data(as_text=True)
    assert db.session.scalar(select(Indicator).where(Indicator.code == "trainings")) is None
    response = client.post(f"/figures/cycle/{w.yy_cycle.id}/definitions", data={**form, "rollup": "count"})
    assert response.status_code == 302
    saved = db.session.scalar(select(Indicator).where(Indicator.code == "trainings"))
    assert saved.rollup == "count" and not saved.required
    # A unit has entered own_cases: it cannot become a roll-up.
    response = client.post(f"/figures/cycle/{w.yy_cycle.id}/definitions", data={
        **form, "code": "own_cases", "name": "市本级行政执法案件数", "measure": "件", "rollup": "sum"})
    assert response.status_code == 422 and "不能改为汇总指标" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Indicator, w.own.id).rollup is None


def test_a_district_has_no_regions_below_to_roll_up(db, factory):
    from fazhi_flow.services import figures as F

    w = build(db, factory)
    hs = w.districts["赫山区"]
    from fazhi_flow.models import User

    admin = User(username="hs_admin", name="赫山区管理员", region=hs.region)
    admin.set_roles(["admin"])
    db.session.add(admin)
    db.session.flush()
    with pytest.raises(F.FigureFormError) as info:
        F.define_indicator(hs.cycle, admin, hs.section, {"code": "trainings", "name": "法治培训次数", "measure": "次",
                                                         "rollup": "sum"})
    assert info.value.errors["rollup"].startswith("本地区没有下级地区")


def test_figures_pages_of_another_region_are_not_found(db, factory, as_user):
    w = build(db, factory)
    hs = w.districts["赫山区"]
    client = as_user(w.admin)
    for url in (f"/figures/cycle/{hs.cycle.id}/summary", f"/figures/cycle/{hs.cycle.id}/summary.xlsx",
                f"/figures/cycle/{w.cs_cycle.id}/definitions", f"/figures/cycle/{w.p_cycle.id}/summary"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/figures/cycle/{hs.cycle.id}/definitions",
                       data={"form": "delete_indicator", "indicator_id": str(hs.cases.id)}).status_code == 404
    # A section of another region's report named in this city's form.
    assert client.post(f"/figures/cycle/{w.yy_cycle.id}/definitions", data={
        "form": "indicator", "section_id": str(hs.section.id), "code": "x", "name": "x", "measure": "件"}
    ).status_code == 404
    # 赫山's liaison of "gaj" and the city's liaison of "gaj": each other's material does not exist.
    from fazhi_flow.models import Contribution

    hs_material = db.session.scalar(select(Contribution).where(Contribution.cycle_id == hs.cycle.id)
                                    .order_by(Contribution.id).limit(1))
    assert as_user(w.liaison).get(f"/figures/contribution/{hs_material.id}").status_code == 404
    assert as_user(w.hs_liaison).get(f"/figures/contribution/{w.yy_contribution.id}").status_code == 404
    assert as_user(w.hs_liaison).post(f"/figures/contribution/{w.yy_contribution.id}",
                                      data={"value-own_cases": "1"}).status_code == 404


def test_statements_of_the_pages_do_not_grow_with_the_regions_below(db, factory, as_user):
    from fazhi_flow.testing import count_queries

    w = build(db, factory, leave_out=("沅江市",))  # 益阳市 over 2 districts, then 5
    yy = w.cities["益阳市"]
    pages = {
        "summary": (w.admin, f"/figures/cycle/{w.yy_cycle.id}/summary"),
        "definitions": (w.admin, f"/figures/cycle/{w.yy_cycle.id}/definitions"),
        "entry": (w.liaison, f"/figures/contribution/{w.yy_contribution.id}"),
    }

    def measure() -> dict:
        found = {}
        for key, (user, url) in pages.items():
            client = as_user(user)
            assert client.get(url).status_code == 200  # warm: settings and the like
            db.session.expire_all()
            with count_queries(db.engine) as statements:
                response = client.get(url)
            assert response.status_code == 200
            found[key] = len(statements)
        return found

    two = measure()
    for n in range(3):
        add_district(db, yy, f"新增{n}区", f"43099{n}", "collecting",
                     {"gaj": (10 + n, "approved", 10 + n), "sfj": (1, "approved", 1)})
    db.session.commit()
    from fazhi_flow.figures.evaluate import FigureBook

    assert FigureBook(w.yy_cycle).rollup(w.yy_cases).counted == 5
    assert measure() == two


def _file(rollup) -> str:
    import yaml

    indicator = {"code": "cases", "name": "行政执法案件数", "unit": "件"}
    if rollup is not None:
        indicator["rollup"] = rollup
    return yaml.safe_dump({
        "cycle": {"title": "益阳市2024年法治政府建设年度报告", "year": YEAR, "region": "益阳市"},
        "units": [{"code": "gaj", "name": "益阳市公安局"}],
        "outline": [{"code": "enforce", "title": "严格规范公正文明执法", "lead": "gaj", "indicators": [indicator]}],
    }, allow_unicode=True)


@pytest.mark.parametrize("bad", ["median", ["sum"], 1])
def test_a_cycle_file_names_a_wrong_rollup_key_and_writes_nothing(db, bad):
    from fazhi_flow.models.indicator import Indicator
    from fazhi_flow.services.importer import CycleFileError, import_cycle

    with pytest.raises(CycleFileError) as info:
        import_cycle(_file(bad))
    assert any(e.startswith("outline[0].indicators[0].rollup：") for e in info.value.errors), info.value.errors
    db.session.rollback()
    assert db.session.scalar(select(Indicator.id)) is None


def test_a_cycle_file_sets_the_rollup(db):
    from fazhi_flow.models.indicator import Indicator
    from fazhi_flow.services.importer import import_cycle

    import_cycle(_file("avg"))
    assert db.session.scalar(select(Indicator.rollup).where(Indicator.code == "cases")) == "avg"
    import_cycle(_file(None))  # the key left out: units enter it again
    assert db.session.scalar(select(Indicator.rollup).where(Indicator.code == "cases")) is None


def test_a_city_entering_the_figure_itself_and_an_inactive_district(db, factory):
    """A child city whose indicator is entered by its own units counts with their approved sum; a
    district no longer active is not among the regions below."""
    from fazhi_flow.figures.evaluate import FigureBook
    from fazhi_flow.models import Section, Unit
    from fazhi_flow.models.indicator import IndicatorValue

    w = build(db, factory)
    w.cs_cases.rollup = None
    section = db.session.get(Section, w.cs_cases.section_id)
    unit = Unit(region=w.cities["长沙市"], code="gaj", name="长沙市公安局")
    db.session.add(unit)
    db.session.flush()
    c = _contribution(db, section, unit, "lead", "approved", "市本级办理行政执法案件{{cases}}件。")
    db.session.add(IndicatorValue(contribution_id=c.id, indicator_id=w.cs_cases.id, value=7, approved_value=7))
    w.districts["沅江市"].region.active = False
    db.session.commit()
    province = FigureBook(w.p_cycle).rollup(w.p_cases)
    assert [(p.region_name, p.value, p.rolled_up) for p in province.parts] == [
        ("长沙市", Decimal(7), False), ("益阳市", Decimal(155 + 80), True)]
    assert province.value == 7 + 155 + 80
