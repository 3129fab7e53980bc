"""Units (a tree of departments, townships, courts …) and the people who use the system."""
from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..timeutil import utcnow

ROLES = ("admin", "reviewer", "liaison", "unit_head", "leader", "oversight", "sysadmin")
ROLE_LABELS = {
    "admin": "管理员",
    "reviewer": "审核人",
    "liaison": "联络员",
    "unit_head": "单位负责人",
    "leader": "签发领导",
    # Reads (never edits) the cycles, dashboards and published reports of the regions below its own.
    "oversight": "督导",
    # Manages the regions themselves (and their first admins); not an admin of any region's material.
    "sysadmin": "系统管理员",
}
REGION_LEVELS = {"province": "省", "city": "市", "county": "区县"}
# A region's level may only sit under a higher one.
LEVEL_RANK = {"province": 0, "city": 1, "county": 2}
UNIT_KINDS = {
    "party": "党委机关",
    "government": "政府部门",
    "judicial": "政法机关",
    "township": "乡镇",
    "subdistrict": "街道",
    "park": "园区",
    "other": "其他",
}


class Region(db.Model):
    """An administrative region (行政区划): the tenant that owns units, users and cycles.

    ``path`` lists the ids from the top region down to this one ("/1/4/17/"), so "is B below A" is a
    string prefix test without a query, and a parent loop cannot be stored.
    """

    __tablename__ = "region"
    __table_args__ = (CheckConstraint(f"level IN {tuple(REGION_LEVELS)}", name="level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # GB/T 2260 six-digit code, or any stable code the office chooses.
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(10), default="county")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"), index=True)
    path: Mapped[str] = mapped_column(String(400), default="", index=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Region | None] = relationship(remote_side=[id])

    @property
    def level_label(self) -> str:
        return REGION_LEVELS.get(self.level, self.level)

    def is_below(self, other: Region) -> bool:
        """Strictly below ``other`` (a child, grandchild …)."""
        return self.id != other.id and bool(other.path) and self.path.startswith(other.path)

    def __repr__(self) -> str:
        return f"<Region {self.code} {self.name}>"


class Unit(db.Model):
    __tablename__ = "unit"
    __table_args__ = (
        CheckConstraint(f"kind IN {tuple(UNIT_KINDS)}", name="kind"),
        # Two regions may both have a unit "gaj".
        UniqueConstraint("region_id", "code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default="government")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)

    region: Mapped[Region] = relationship()
    parent: Mapped[Unit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Unit]] = relationship(back_populates="parent", order_by="Unit.sort_order")

    @property
    def kind_label(self) -> str:
        return UNIT_KINDS.get(self.kind, self.kind)

    def __repr__(self) -> str:
        return f"<Unit {self.code}>"


class UserRole(db.Model):
    __tablename__ = "user_role"
    __table_args__ = (
        UniqueConstraint("user_id", "role"),
        CheckConstraint(f"role IN {tuple(ROLES)}", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))


class User(UserMixin, db.Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique over the whole system: one login page for every region.
    username: Mapped[str] = mapped_column(String(60), unique=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(256), default="!")
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Rotated at logout, password change and deactivation so that old session cookies stop working.
    session_token: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Single sign-on: the password form is refused for this person (they log in through SSO only),
    # and the identity provider's subject (OIDC "sub") once an SSO login has matched them.
    password_login_disabled: Mapped[bool] = mapped_column(default=False)
    sso_subject: Mapped[str | None] = mapped_column(String(255), unique=True)

    unit: Mapped[Unit | None] = relationship()
    region: Mapped[Region] = relationship()
    role_rows: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=UserRole.role
    )

    # Flask-Login: the id in the session cookie includes the token.
    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def roles(self) -> set[str]:
        return {r.role for r in self.role_rows}

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def set_roles(self, roles) -> None:
        wanted = set(roles)
        unknown = wanted - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles: {sorted(unknown)}")
        self.role_rows = [r for r in self.role_rows if r.role in wanted]
        for role in sorted(wanted - self.roles):
            self.role_rows.append(UserRole(role=role))

    @property
    def role_labels(self) -> str:
        return "、".join(ROLE_LABELS[r] for r in ROLES if r in self.roles)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)  # scrypt by default
        self.rotate_session_token()

    def check_password(self, password: str) -> bool:
        if not self.password_hash or self.password_hash == "!":
            return False
        return check_password_hash(self.password_hash, password)

    def rotate_session_token(self) -> None:
        self.session_token = secrets.token_hex(16)

    @property
    def display(self) -> str:
        return f"{self.name}（{self.unit.name}）" if self.unit else self.name

    def __repr__(self) -> str:
        return f"<User {self.username}>"


# ---------------------------------------------------------------- the region a new row belongs to

DEFAULT_REGION_CODE = "000000"
DEFAULT_REGION_NAME = "本地区"


def _sole_region(session) -> Region:
    """The region of an installation that has one: created on first use in an empty one. With
    several, a row that names none is a programming error, never a guess (a guess is how a second
    district's file once rewrote the first's units)."""
    from sqlalchemy import select

    from ..errors import DomainError

    cached = session.info.get("fazhi_sole_region")
    if cached is not None and cached in session:
        return cached
    with session.no_autoflush:
        found = list(session.scalars(select(Region).limit(2)))
        pending = [obj for obj in session.new if isinstance(obj, Region)]
    found += [r for r in pending if r not in found]
    if len(found) > 1:
        raise DomainError("系统中有多个地区，新建单位、用户或年度报告时必须指明所属地区。")
    region = found[0] if found else Region(code=DEFAULT_REGION_CODE, name=DEFAULT_REGION_NAME, level="county")
    if not found:
        session.add(region)
    session.info["fazhi_sole_region"] = region
    return region


@event.listens_for(Session, "before_flush")
def _assign_regions(session, _flush_context, _instances) -> None:
    from ..errors import DomainError

    session.info.pop("fazhi_sole_region", None)
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Unit):
            if not _touched(obj, "region", "region_id", "parent", "parent_id"):
                continue
            if obj.region_id is None and obj.region is None:
                obj.region = obj.parent.region if obj.parent is not None else _sole_region(session)
            if obj.parent is not None and not _same_region(obj.parent, obj):
                raise DomainError(f"单位“{obj.name}”与上级单位“{obj.parent.name}”不属于同一地区。")
        elif isinstance(obj, User):
            if not _touched(obj, "region", "region_id", "unit", "unit_id"):
                continue
            if obj.region_id is None and obj.region is None:
                obj.region = obj.unit.region if obj.unit is not None else _sole_region(session)
            if obj.unit is not None and not _same_region(obj.unit, obj):
                # Last line of defence; the services refuse this earlier with the unit named.
                raise DomainError(f"用户“{obj.username}”不能属于其他地区的单位“{obj.unit.name}”。")
        elif obj.__class__.__name__ == "ReportCycle" and obj in session.new:
            if obj.region_id is None and obj.owner is None:
                obj.owner = _sole_region(session)


def _touched(obj, *attrs) -> bool:
    """New, or one of ``attrs`` changed: a user saved at login is not re-checked each time."""
    state = inspect(obj)
    return state.pending or any(state.attrs[name].history.has_changes() for name in attrs)


def _same_region(a, b) -> bool:
    ra, rb = a.region, b.region
    if ra is not None and rb is not None:
        return ra is rb or (ra.id is not None and ra.id == rb.id)
    return (ra.id if ra is not None else a.region_id) == (rb.id if rb is not None else b.region_id)


@event.listens_for(Region, "after_insert")
def _region_path(_mapper, connection, target) -> None:
    # The id is known only now; the parent (if new too) was inserted first by the unit of work.
    parent_path = target.parent.path if target.parent is not None else "/"
    path = f"{parent_path}{target.id}/"
    connection.execute(Region.__table__.update().where(Region.__table__.c.id == target.id).values(path=path))
    set_committed_value(target, "path", path)
