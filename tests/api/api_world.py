"""What the API tests of both counties share: the isolation world, personal access tokens of each role,
the ids of every object of a county, and the app as a WSGI callable that serves each request in its own
application context (as in production: the test's session and ``g`` are not the request's).
"""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from fazhi_flow.models import Attachment, Contribution, ReportDraftVersion, Revision
from tests.regions.isolation_world import build_world

# The roles whose tokens the tests use: (label, person of a county, scope).
COUNTY_ROLES = (
    ("管理员", "admin", "write"), ("审核人", "reviewer", "write"), ("联络员", "liaison", "write"),
    ("单位负责人", "unit_head", "write"), ("签发领导", "leader", "write"), ("督导", "oversight", "write"),
    ("联络员只读", "liaison", "read"),
)


def make_token(db, user, scope: str, name: str = "接口测试") -> str:
    """A real token through the service the token page uses; returns its text (committed)."""
    from fazhi_flow.api.tokens import create_token

    _, text = create_token(user, f"{name}（{scope}）", scope, 30)
    db.session.commit()
    return text


def revoked_token(db, user) -> str:
    """A token of ``user`` revoked through the service the token page uses; returns its text."""
    from fazhi_flow.api.tokens import create_token, revoke_token

    row, text = create_token(user, "已撤销的令牌", "write", 30)
    revoke_token(user, row.id)
    db.session.commit()
    return text


def county_tokens(db, county) -> dict[str, str]:
    """{label: token text} for every role of ``county``."""
    return {label: make_token(db, getattr(county.people, attr), scope) for label, attr, scope in COUNTY_ROLES}


def county_ids(db, county) -> dict[str, list[int]]:
    """Every id of ``county``'s objects, by kind (the kind is what a path or field names: cycle, unit …)."""
    w, pub, aux = county.work, county.published, county.aux
    cycles = [w.cycle.id, pub.cycle.id]
    # Every unit's material of both cycles (the township's support draft and last year's too).
    contributions = list(db.session.scalars(select(Contribution.id).where(Contribution.cycle_id.in_(cycles))
                                            .order_by(Contribution.id)))
    sections = [w.top.id] + [s.id for s in w.sections.values()] + [s.id for s in pub.sections.values()]
    ids = {
        "cycle": cycles,
        "section": sections,
        "contribution": contributions,
        "assignment": list(db.session.scalars(select(Contribution.assignment_id).where(Contribution.id.in_(contributions)))),
        "unit": [u.id for u in county.units],
        "user": [getattr(county.people, attr).id for _, attr, _ in COUNTY_ROLES],
        "indicator": [s.indicators[0].id for s in w.sections.values()],
        "rule": [r.id for s in w.sections.values() for r in s.rules],
        "publication": [pub.publication.id],
        "region": [county.region.id],
        "attachment": list(db.session.scalars(select(Attachment.id).where(Attachment.contribution_id.in_(contributions)))),
        "revision": list(db.session.scalars(select(Revision.id).where(Revision.contribution_id.in_(contributions)))),
        "version": list(db.session.scalars(select(ReportDraftVersion.id).where(ReportDraftVersion.cycle_id.in_(cycles)))),
        "webhook": [aux.unit_robot.id, aux.cycle_robot.id],
        "request": [aux.request.id],
        "notification": [aux.notice.id],
        "message": [aux.outbox.id, aux.robot_outbox.id],
    }
    db.session.commit()  # end the read: on SQLite an open transaction would hold up the requests' writes
    return ids


def build_api_world(db) -> SimpleNamespace:
    """The two counties of the isolation world with tokens for every role of each, and the city's."""
    world = build_world(db)
    for county in (world.a, world.b):
        county.tokens = county_tokens(db, county)
        county.ids = county_ids(db, county)
    world.city_tokens = {"市管理员": make_token(db, world.city_people.admin, "write"),
                         "系统管理员": make_token(db, world.city_people.sysadmin, "write")}
    return world


def per_request_context(app):
    """``app`` as a WSGI callable whose every request runs in a new application context.

    The tests hold an application context open for their whole run; a request inside it would share
    the test's database session and ``g`` with every other request, which production never does.
    """
    def wsgi(environ, start_response):
        with app.app_context():
            return list(app.wsgi_app(environ, start_response))

    return wsgi
