"""Shared fixtures of the region tests: one city and two sibling counties that both have a unit "gaj"."""
from types import SimpleNamespace

import pytest


def _county(factory, db, city, code, name, prefix, gaj_name):
    from fazhi_flow.models import Region, Unit

    region = Region(code=code, name=name, level="county", parent=city)
    db.session.add(region)
    db.session.flush()
    office = Unit(region=region, code="yfzqb", name=f"{name}委依法治区办", kind="party", sort_order=1)
    gaj = Unit(region=region, code="gaj", name=gaj_name, sort_order=2)
    db.session.add_all([office, gaj])
    db.session.flush()
    return SimpleNamespace(
        region=region, office=office, gaj=gaj,
        admin=factory.user("admin", unit=office, username=f"{prefix}_admin", name=f"{name}管理员"),
        reviewer=factory.user("reviewer", unit=office, username=f"{prefix}_reviewer", name=f"{name}审核人"),
        leader=factory.user("leader", unit=office, username=f"{prefix}_leader", name=f"{name}签发领导"),
        liaison=factory.user("liaison", unit=gaj, username=f"{prefix}_gaj", name=f"{name}公安联络员"),
    )


@pytest.fixture()
def two_regions(factory, db):
    """益阳市 (430900, city) above 赫山区 (430903) and 资阳区 (430902); each county has units "yfzqb" and
    "gaj" and an admin, a reviewer, a leader and a liaison of "gaj"; the city has an office unit, an
    admin and an oversight user (督导), and a system administrator (the city is the top region). Committed."""
    from fazhi_flow.models import Region, Unit

    city = Region(code="430900", name="益阳市", level="city")
    db.session.add(city)
    db.session.flush()
    city_office = Unit(region=city, code="yfzsb", name="市委依法治市办", kind="party", sort_order=1)
    db.session.add(city_office)
    db.session.flush()
    world = SimpleNamespace(
        city=city, city_office=city_office,
        hs=_county(factory, db, city, "430903", "赫山区", "hs", "赫山公安分局"),
        zy=_county(factory, db, city, "430902", "资阳区", "zy", "资阳公安分局"),
        city_admin=factory.user("admin", unit=city_office, username="ys_admin", name="市管理员"),
        oversight=factory.user("oversight", unit=city_office, username="ys_duban", name="市督导"),
        sysadmin=factory.user("sysadmin", unit=city_office, username="sysadmin", name="系统管理员"),
    )
    db.session.commit()
    return world
