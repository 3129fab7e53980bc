"""A cycle with the figures of a real district report (赫山区, 2024), some of them deliberately broken.

The sentences here are written for the tests; only the figures come from the published report.
"""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

# code: (name, measure, type, reported_by, section key, required)
INDICATORS = {
    "med_total": ("调委会总数", "个", "integer", "all", "govern", True),
    "med_town": ("镇级调委会数", "个", "integer", "all", "govern", True),
    "med_park": ("园区调委会数", "个", "integer", "all", "govern", True),
    "med_village": ("村级调委会数", "个", "integer", "all", "govern", True),
    "med_trade": ("行业性专业性调委会数", "个", "integer", "all", "govern", True),
    "mediators": ("人民调解员人数", "人", "integer", "all", "govern", False),
    "suit_total": ("行政诉讼案件数", "件", "integer", "all", "govern", False),
    "suit_closed": ("行政诉讼结案数", "件", "integer", "all", "govern", False),
    "appear_rate": ("行政负责人出庭应诉率", "%", "percent", "all", "govern", False),
    "lenient_total": ("涉企柔性执法次数", "次", "integer", "lead", "enforce", True),
    "no_penalty": ("不予处罚次数", "次", "integer", "lead", "enforce", True),
    "reduced": ("减轻处罚次数", "次", "integer", "lead", "enforce", True),
    "lighter": ("从轻处罚次数", "次", "integer", "lead", "enforce", True),
    "no_coercion": ("不予行政强制措施次数", "次", "integer", "lead", "enforce", True),
    "inspections_total": ("全区涉企检查次数", "次", "integer", "lead", "enforce", False),
    "inspections": ("涉企检查次数", "次", "integer", "all", "enforce", False),
}

RULES = [
    ("govern", "med_total = med_town + med_park + med_village + med_trade", "error", "调委会总数应等于各类调委会之和"),
    ("govern", "suit_closed <= suit_total", "error", ""),
    ("govern", "appear_rate <= 100", "error", ""),
    ("enforce", "lenient_total = no_penalty + reduced + lighter + no_coercion", "error", ""),
    ("enforce", "inspections_total = sum(inspections)", "error", "全区涉企检查次数应等于各单位之和"),
    ("govern", "mediators >= med_total * 3", "warning", "人民调解员偏少"),
]

GOOD = {
    "sfj": {"med_total": "265", "med_town": "18", "med_park": "1", "med_village": "242", "med_trade": "4",
            "mediators": "1104", "suit_total": "42", "suit_closed": "23", "appear_rate": "100",
            "lenient_total": "175", "no_penalty": "52", "reduced": "92", "lighter": "29", "no_coercion": "2",
            "inspections_total": "3812", "inspections": "1500"},
    "town_a": {"inspections": "1312"},
    "town_b": {"inspections": "1000"},
}


@pytest.fixture()
def login(client):
    def do(user):
        from flask import g

        from fazhi_flow.auth_loader import stamp_login

        # Requests share the test's app context, where Flask-Login caches the previous user.
        g.pop("_login_user", None)
        with client.session_transaction() as session:
            session["_user_id"] = user.get_id()
            session["_fresh"] = True
            stamp_login(session)  # a session without its login time counts as timed out
        return client

    return do


def quick_user(db, *roles, unit=None, name=None):
    """A user without a password hash (hashing costs a quarter second; these tests log in by session)."""
    from fazhi_flow.models import User

    quick_user.n = getattr(quick_user, "n", 0) + 1
    user = User(username=f"fig{quick_user.n}_{roles[0]}", name=name or f"用户{quick_user.n}", unit=unit,
                email=f"fig{quick_user.n}@example.test")
    user.set_roles(roles)
    db.session.add(user)
    db.session.flush()
    return user


class SeedWorld(SimpleNamespace):
    def contribution_of(self, unit_key, section_key):
        from fazhi_flow.models import Contribution

        unit = self.units[unit_key]
        section = self.sections[section_key]
        return self.db.session.query(Contribution).filter_by(unit_id=unit.id, section_id=section.id).one()


def build_seed_world(db, factory, values=None, year=2024, state="collecting", region="赫山区"):
    from fazhi_flow.models import ReportCycle
    from fazhi_flow.models.indicator import Indicator, Rule
    from fazhi_flow.services.cycles import ensure_contributions

    units = {
        "sfj": factory.unit("区司法局", code=f"sfj{year}"),
        "town_a": factory.unit("八字哨镇", code=f"bzs{year}", kind="township"),
        "town_b": factory.unit("龙光桥街道", code=f"lgq{year}", kind="subdistrict"),
        "office": factory.unit("区委依法治区办", code=f"office{year}", kind="party"),
    }
    reviewer = quick_user(db, "reviewer", unit=units["office"], name="审核人甲")
    cycle = ReportCycle(year=year, region=region, title=f"{region}{year}年法治政府建设年度报告", state=state)
    db.session.add(cycle)
    db.session.flush()
    top = factory.section(cycle, "推进法治政府建设的主要举措和成效", code="measures", position=1)
    enforce = factory.section(cycle, "规范行政执法", parent=top, code="enforce", position=1,
                              reviewers=[reviewer])
    govern = factory.section(cycle, "化解社会矛盾", parent=top, code="govern", position=2, reviewers=[reviewer])
    sections = {"enforce": enforce, "govern": govern, "measures": top}
    factory.assignment(govern, units["sfj"])
    factory.assignment(enforce, units["sfj"])
    factory.assignment(enforce, units["town_a"], role="support")
    factory.assignment(enforce, units["town_b"], role="support")
    for n, (code, (name, measure, kind, by, key, required)) in enumerate(INDICATORS.items()):
        db.session.add(Indicator(cycle_id=cycle.id, section_id=sections[key].id, code=code, name=name,
                                 measure=measure, type=kind, reported_by=by, required=required, position=n))
    for n, (key, expression, severity, message) in enumerate(RULES):
        db.session.add(Rule(cycle_id=cycle.id, section_id=sections[key].id, expression=expression,
                            severity=severity, message=message or None, position=n))
    db.session.flush()
    if state == "collecting":
        ensure_contributions(cycle)
    liaisons = {k: quick_user(db, "liaison", unit=u, name=f"{u.name}联络员") for k, u in units.items() if k != "office"}
    world = SeedWorld(db=db, cycle=cycle, units=units, sections=sections, reviewer=reviewer, liaisons=liaisons,
                      admin=quick_user(db, "admin", unit=units["office"], name="管理员"),
                      leader=quick_user(db, "leader", unit=units["office"], name="领导"))
    if values is not None and state == "collecting":
        enter_values(world, values)
    return world


def enter_values(world, values):
    """Enter values the way liaisons do: through the service, per contribution."""
    from fazhi_flow.figures.evaluate import FigureBook
    from fazhi_flow.services.figures import save_figures

    for unit_key, figures in values.items():
        for section_key in ("govern", "enforce"):
            try:
                contribution = world.contribution_of(unit_key, section_key)
            except Exception:  # noqa: BLE001 - the unit has no assignment in this section
                continue
            book = FigureBook(world.cycle)
            own = {i.code for i in book.indicators_for(contribution)}
            mine = {k: v for k, v in figures.items() if k in own}
            if mine:
                save_figures(contribution, world.liaisons[unit_key], mine)
    world.db.session.flush()


@pytest.fixture()
def seed_world(db, factory):
    return build_seed_world(db, factory, values=GOOD)


def good_values(**changes):
    values = {k: dict(v) for k, v in GOOD.items()}
    for dotted, value in changes.items():
        unit, code = dotted.split("__")
        values[unit][code] = value
    return values


D = Decimal
