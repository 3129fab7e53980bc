"""搜索 (/search/): what each person finds is exactly what they may read, decided in SQL; the page
escapes what it shows; bad queries get a Chinese message; the statement count does not grow with data.

The scope test walks every person of a city and two counties that both have a unit "gaj" (the
isolation world of tests/regions) and compares the material found with an independent computation:
``policy.can(user, "contribution.view", c)`` asked of every contribution in the database.
"""
from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from fazhi_flow import policy
from fazhi_flow.models import Contribution, Section, TransitionLog, User
from fazhi_flow.services import search as svc
from fazhi_flow.testing import FreshUserClient, count_queries, login

from tests.regions.isolation_world import A_MARK, B_LOGIN, B_MARK, _assign, _user, build_world

WORD = "执法"


@pytest.fixture()
def iso(db):
    """The isolation world plus what the scope rules hinge on, in 赫山区: a leaf naming its own
    reviewer (overriding the top section's), a section naming nobody (any reviewer of the region), a
    reviewer of the unit "gaj" (never its own unit's material), one without a unit, and material
    whose body lacks the word while a review comment has it."""
    world = build_world(db)
    a = world.a
    cycle = a.work.cycle
    extra = {
        "named_reviewer": _user(db, a.region, a.office, "hsdy_reviewer2", f"{A_MARK}李娜", "reviewer"),
        "gaj_reviewer": _user(db, a.region, a.gaj, "hsdy_gaj_reviewer", f"{A_MARK}公安审核人", "reviewer"),
        "free_reviewer": _user(db, a.region, None, "hsdy_free_reviewer", f"{A_MARK}无单位审核人", "reviewer"),
        "plain": _user(db, a.region, a.sfj, "hsdy_sfj_plain", f"{A_MARK}无角色用户"),
    }
    own_leaf = Section(cycle=cycle, parent=a.work.top, code="m.own", title=f"{A_MARK}行政复议", position=9)
    own_leaf.reviewers = [extra["named_reviewer"]]
    nobody = Section(cycle=cycle, code="free", title=f"{A_MARK}其他工作", position=10)
    deep = Section(cycle=cycle, parent=own_leaf, code="m.own.deep", title=f"{A_MARK}复议纠错", position=1)
    db.session.add_all([own_leaf, nobody, deep])
    db.session.flush()
    body = f"{A_MARK}规范{WORD}行为，{{{{cases_1}}}}件案件全部法制审核，100%_完成。"
    for section in (own_leaf, nobody, deep):
        for unit in (a.gaj, a.sfj):
            _assign(db, cycle, section, unit, body=body)
    quiet = _assign(db, cycle, nobody, a.office, body="无关的文字")
    db.session.add(TransitionLog(contribution_id=quiet.id, event="return", from_state="submitted",
                                 to_state="returned", actor_id=a.people.reviewer.id,
                                 comment=f"请写明{WORD}依据。"))
    db.session.commit()
    world.extra = extra
    world.quiet = quiet
    return world


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _readable(user, word: str) -> set[int]:
    """The independent answer: every contribution whose text or a comment has ``word`` and that
    ``can`` lets ``user`` view, asked one by one."""
    found = set()
    for c in db_all(Contribution):
        comments = [t.comment or "" for t in db_session().scalars(
            select(TransitionLog).where(TransitionLog.contribution_id == c.id))]
        if (word in (c.body or "") or any(word in text for text in comments)) \
                and policy.can(user, "contribution.view", c):
            found.add(c.id)
    return found


def db_session():
    from fazhi_flow.extensions import db

    return db.session


def db_all(model):
    return list(db_session().scalars(select(model).order_by(model.id)))


def _found_ids(group) -> set[int]:
    return {hit.link[1]["contribution_id"] for hit in group.hits}


def _group(results, key):
    return next(g for g in results.groups if g.key == key)


def test_material_found_is_exactly_what_can_allows_for_every_person(iso, db):
    people = db_all(User)
    assert len(people) >= 25
    seen_by = {}
    for user in people:
        results = svc.search(user, WORD)
        material = _group(results, "material")
        expected = _readable(user, WORD)
        assert material.total == len(expected) <= svc.LIMIT, user.username
        assert _found_ids(material) == expected, user.username
        seen_by[user.username] = expected
    a, b = iso.a.people, iso.b.people
    # The comparison means something: the roles see different, non-empty slices.
    assert seen_by[a.admin.username] and seen_by[a.admin.username] == seen_by[a.leader.username]
    assert not seen_by[a.admin.username] & seen_by[b.admin.username]
    assert seen_by[a.liaison.username] < seen_by[a.admin.username]
    assert seen_by[a.liaison.username] == seen_by[a.unit_head.username]
    assert iso.quiet.id in seen_by[a.admin.username] and iso.quiet.id in seen_by[a.reviewer.username]
    assert iso.quiet.id in seen_by[iso.extra["free_reviewer"].username]
    assert seen_by[iso.extra["named_reviewer"].username] - seen_by[a.reviewer.username]
    assert seen_by[a.reviewer.username] - seen_by[iso.extra["named_reviewer"].username]
    gaj_reviewer = seen_by[iso.extra["gaj_reviewer"].username]
    gaj_material = {c.id for c in db_all(Contribution) if c.unit_id == iso.a.gaj.id}
    assert gaj_reviewer & gaj_material == gaj_material & seen_by[a.liaison.username]  # only as its unit's person
    for nobody in (iso.city_people.oversight, iso.city_people.sysadmin, iso.city_people.admin):
        assert not seen_by[nobody.username], nobody.username
    # A county's 督导 works in the office: that unit's own material, nothing more.
    assert seen_by[a.oversight.username] == {iso.quiet.id}


def test_a_comment_hit_is_shown_as_the_comment(iso, app):
    html = _client(app, iso.a.people.admin).get(f"/search/?q={WORD}").get_data(as_text=True)
    assert f"请写明<mark>{WORD}</mark>依据。" in html and "审核意见" in html
    assert f'href="/review/{iso.quiet.id}"' in html
    liaison_html = _client(app, iso.a.people.liaison).get(f"/search/?q={WORD}").get_data(as_text=True)
    assert f'href="/tasks/{iso.a.work.contributions["draft"].id}"' in liaison_html
    assert B_MARK not in liaison_html and B_MARK not in html


def test_sections_units_people_stay_in_the_region(iso, app):
    a, b = iso.a.people, iso.b.people
    # The same unit code "gaj" in both counties: each finds its own unit.
    results = svc.search(a.liaison, "gaj")
    units = _group(results, "units")
    assert [h.title for h in units.hits] == [f"{A_MARK}公安分局"] and units.hits[0].link is None
    assert [h.title for h in _group(svc.search(b.admin, "GAJ"), "units").hits] == [f"{B_MARK}公安分局"]
    sections = _group(svc.search(a.reviewer, "严格规范"), "sections")
    assert sections.total == 5 and all(A_MARK in h.title for h in sections.hits)
    # The longest title (300 characters) is cut to the hit and its context.
    longest = _group(svc.search(a.admin, "持续深化行政执法体制改革"), "sections").hits[0]
    assert longest.snippet.hit == "持续深化行政执法体制改革" and len(longest.snippet.before) <= svc.CONTEXT
    # People: an admin finds the region's accounts, by username too; others only their unit's, by name.
    admin_people = _group(svc.search(a.admin, "hsdy_"), "people")
    assert admin_people.total >= 10 and not any(B_LOGIN in (h.note or "") for h in admin_people.hits)
    assert _group(svc.search(a.admin, B_LOGIN), "people").total == 0
    assert _group(svc.search(a.liaison, "hsdy_"), "people").total == 0
    mine = _group(svc.search(a.liaison, A_MARK), "people")
    assert {h.title for h in mine.hits} == {a.liaison.name, a.unit_head.name, iso.extra["gaj_reviewer"].name}
    assert _group(svc.search(a.liaison, B_MARK), "people").total == 0
    assert _group(svc.search(iso.extra["free_reviewer"], A_MARK), "people").total == 0


def test_publications_own_region_and_below_for_oversight(iso):
    a, b = iso.a, iso.b
    word = "行政案件812件"
    titles = lambda user: {h.title for h in _group(svc.search(user, word), "publications").hits}  # noqa: E731
    assert titles(a.people.liaison) == {a.published.publication.title}
    assert titles(b.people.admin) == {b.published.publication.title}
    assert titles(iso.city_people.oversight) == {a.published.publication.title, b.published.publication.title}
    # A county's own 督导 has no region below: a sibling is not below it.
    assert titles(a.people.oversight) == {a.published.publication.title}
    assert titles(iso.city_people.admin) == set()


def test_html_is_escaped_and_wildcards_match_themselves(app, db, world, factory):
    world.contribution.body = "<script>alert(1)</script>本单位完成率100%，编号A_1{{c1}}。"
    other = factory.contribution(factory.assignment(factory.section(world.cycle, "第二章"), world.other_unit),
                                 body="完成率100，编号AB1。")
    db.session.commit()
    client = _client(app, world.admin)
    html = client.get("/search/?q=<script>").get_data(as_text=True)
    assert "<mark>&lt;script&gt;</mark>alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    # % and _ are not wildcards; Latin letters match whatever their case.
    assert _found_ids(_group(svc.search(world.admin, "100%"), "material")) == {world.contribution.id}
    assert _found_ids(_group(svc.search(world.admin, "a_1"), "material")) == {world.contribution.id}
    assert _found_ids(_group(svc.search(world.admin, "ab1"), "material")) == {other.id}
    assert _found_ids(_group(svc.search(world.admin, "%"), "material")) == {world.contribution.id}
    assert _found_ids(_group(svc.search(world.admin, "\\"), "material")) == set()
    # A citation of a figure is found as written.
    assert _found_ids(_group(svc.search(world.admin, "{{c1}}"), "material")) == {world.contribution.id}


def test_more_than_the_limit_says_how_many_more(app, db, world, factory):
    for i in range(svc.LIMIT + 5):
        factory.section(world.cycle, f"依法决策专题{i:02d}")
    db.session.commit()
    group = _group(svc.search(world.admin, "依法决策专题"), "sections")
    assert (group.total, len(group.hits), group.more) == (svc.LIMIT + 5, svc.LIMIT, 5)
    html = _client(app, world.admin).get("/search/?q=依法决策专题").get_data(as_text=True)
    assert "还有 5 条未列出" in html


@pytest.mark.parametrize("raw, status, shown", [
    ("", 200, "输入单位名称"),
    ("   ", 200, "输入单位名称"),
    ("字" * svc.MAX_LENGTH, 200, "共找到 0 条结果"),
    ("字" * (svc.MAX_LENGTH + 1), 400, f"搜索词最多{svc.MAX_LENGTH}个字，现在是{svc.MAX_LENGTH + 1}个字"),
    ("x" * 100_000, 400, "搜索词最多"),
    # The request drops control characters (fazhi_flow/web/request.py): the rest is searched.
    ("执\x00法", 200, "“执法”共找到"),
])
def test_queries_refused_or_hinted_in_chinese(app, world, raw, status, shown):
    response = _client(app, world.liaison).get("/search/", query_string={"q": raw})
    html = response.get_data(as_text=True)
    assert response.status_code == status and shown in unescape(html)
    assert "\x00" not in html


def test_the_service_refuses_control_characters_itself(world):
    from fazhi_flow.errors import DomainError

    with pytest.raises(DomainError, match="控制字符"):
        svc.search(world.liaison, "执\x00法")
    assert svc.shown_query(" 执\x00法 ") == "执法"


def test_anonymous_is_sent_to_login(client, world):
    response = client.get("/search/?q=执法")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_header_has_the_search_box(app, world):
    html = _client(app, world.liaison).get("/tasks/").get_data(as_text=True)
    assert re.search(r'<form class="header-search" method="get" action="/search/"', html)


@pytest.mark.parametrize("who", ["admin", "reviewer", "leader", "liaison"])
def test_statement_count_does_not_grow_with_the_data(app, db, who):
    from tests.scale.world import build_world as build_scale

    counts = {}
    for size in ((3, 4), (30, 12)):
        world = build_scale(db, *size)
        user = world.liaison(0) if who == "liaison" else getattr(world, who)
        client = _client(app, user)
        client.get("/search/?q=本单位今年办理案件")
        with count_queries(db.engine) as statements:
            response = client.get("/search/?q=本单位今年办理案件")
        assert response.status_code == 200
        assert "本单位今年办理案件" in response.get_data(as_text=True)
        counts[size] = len(statements)
    assert counts[(3, 4)] == counts[(30, 12)], counts
