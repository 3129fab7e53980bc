"""Accounts of two districts for the single sign-on tests."""
from __future__ import annotations

from sqlalchemy import func, select

from fazhi_flow.models import AuditEvent, Region, Unit, User
from fazhi_flow.testing import PASSWORD


def two_regions(db):
    """赫山区 and 资阳区, each with its 司法局 (same unit code in both)."""
    hs = Region(code="430903", name="赫山区", level="county")
    zy = Region(code="430902", name="资阳区", level="county")
    db.session.add_all([hs, zy])
    db.session.flush()
    units = {r.code: Unit(region=r, code="sfj", name=f"{r.name}司法局") for r in (hs, zy)}
    db.session.add_all(units.values())
    db.session.flush()
    return hs, zy, units


def person(db, region, unit, username, name, email=None, password=PASSWORD, **columns):
    user = User(username=username, name=name, region=region, unit=unit, email=email, **columns)
    user.set_roles(["liaison"])
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def user_count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def logged_in_id(client):
    with client.session_transaction() as session:
        raw = session.get("_user_id")
    return int(raw.split(":", 1)[0]) if raw else None


def last_audit(db, action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id.desc())).first()
