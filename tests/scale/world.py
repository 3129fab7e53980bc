"""A report cycle of any size whose texts cite figures, inserted in bulk, for query-count tests.

``build_world(db, units=3, sections=4)`` makes one collecting cycle with:

- ``units`` units (with one liaison each), an office unit holding an admin, a reviewer, a leader;
- a top-level heading per four sections and ``sections`` sections under them, the reviewer named
  for every section;
- every unit assigned to every section: unit ``s % units`` leads section ``s``, the others support
  it (``units × sections`` contributions) in states rotating through ``states``;
- two indicators per section — ``c<s>`` entered by every unit, ``l<s>`` by the lead only — and one
  rule per section, ``l<s> <= sum(c<s>)``;
- a value of every indicator a unit enters (a draft leaves every third one blank);
- bodies citing the unit's own figure ``{{c<s>}}``, the section total ``{{sum(c<s>)}}``, the lead's
  ``{{l<s>}}`` and the next section's ``{{l<s+1>}}`` (a cross-section citation);
- one revision per submission (two for every submitted contribution, so the review page shows a
  difference) and the matching 提交审核 log rows.

Rows go in with bulk INSERT … RETURNING, so 300 × 60 takes seconds; the call commits.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from fazhi_flow.testing import PASSWORD

STATES = ("draft", "submitted", "approved", "returned")
_serial = itertools.count(1)


@functools.cache
def _password_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)


@dataclass
class ScaleWorld:
    cycle: object
    office: object
    admin: object
    reviewer: object
    leader: object
    unit_ids: list[int]
    section_ids: list[int]  # the assigned sections, in outline order
    liaisons: dict[int, object]  # unit id -> the unit's liaison (a User)
    contribution_ids: dict[tuple[int, int], int]  # (unit index, section index) -> contribution id
    states: dict[int, str] = field(default_factory=dict)  # contribution id -> state

    def contribution_id(self, unit: int, section: int) -> int:
        return self.contribution_ids[(unit, section)]

    def liaison(self, unit: int):
        """The liaison of the ``unit``-th unit (0-based)."""
        return self.liaisons[self.unit_ids[unit]]

    def first(self, state: str, unit: int | None = None) -> int:
        """The id of the first contribution (of the ``unit``-th unit, if given) in ``state``."""
        for (u, _s), cid in sorted(self.contribution_ids.items()):
            if self.states[cid] == state and (unit is None or u == unit):
                return cid
        raise LookupError(state)

    def ids_in(self, state: str) -> list[int]:
        return sorted(cid for cid, s in self.states.items() if s == state)


def body_for(s: int, sections: int) -> str:
    nxt = (s + 1) % sections
    return (f"本单位今年办理案件{{{{c{s}}}}}件，全区合计{{{{sum(c{s})}}}}件。\n"
            f"牵头单位统计重点事项{{{{l{s}}}}}项；相关章节牵头单位统计{{{{l{nxt}}}}}项。\n"
            "持续推进严格规范公正文明执法，依法行政水平不断提升。")


def _ids(db, model, rows: list[dict]) -> list[int]:
    """Insert ``rows`` (dicts with the same keys) with Core's batched INSERT … RETURNING; their ids in order.

    Core rather than the ORM's bulk insert: the ORM splices returned rows in quadratic time.
    """
    if not rows:
        return []
    table = model.__table__
    stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return list(db.session.connection().execute(stmt, rows).scalars())


def _insert(db, table, rows: list[dict]) -> None:
    if rows:
        db.session.connection().execute(table.insert(), rows)


def build_world(db, units: int = 3, sections: int = 4, *, states=STATES, cycle_state: str = "collecting",
                year: int = 2024, today: date | None = None) -> ScaleWorld:
    """Build and commit a world of ``units`` × ``sections``; see the module docstring."""
    from fazhi_flow.models import (
        Assignment,
        Contribution,
        ReportCycle,
        Revision,
        Section,
        TransitionLog,
        Unit,
        User,
        UserRole,
        section_reviewer,
    )
    from fazhi_flow.models.indicator import Indicator, IndicatorValue, Rule

    if units < 1 or sections < 1:
        raise ValueError("a world needs at least one unit and one section")
    n = next(_serial)
    tag = f"w{n}x{units}x{sections}"
    today = today or date.today()
    now = datetime(today.year, today.month, today.day, 9, 0)
    session = db.session

    cycle = ReportCycle(year=year, region=f"规模测试区{tag}", title=f"{year}年法治政府建设年度报告",
                        due=today + timedelta(days=20), state=cycle_state,
                        issuers="中共测试区委员会\n测试区人民政府", issue_date=date(year + 1, 1, 6))
    office = Unit(code=f"{tag}-office", name=f"区委依法治区办{tag}", kind="party", sort_order=-1)
    session.add_all([cycle, office])
    session.flush()

    # Core inserts pass no ORM listener: the rows name the region the cycle was given.
    region_id = cycle.region_id
    unit_ids = _ids(db, Unit, [{"region_id": region_id, "code": f"{tag}-u{i}", "name": f"规模单位{i + 1:03d}",
                                "kind": "township" if i % 2 else "government", "sort_order": i}
                               for i in range(units)])
    people = [{"username": f"{tag}-{role}", "name": label, "unit_id": office.id, "region_id": region_id}
              for role, label in (("admin", "管理员"), ("reviewer", "审核人"), ("leader", "签发领导"))]
    people += [{"username": f"{tag}-liaison{i}", "name": f"联络员{i + 1}", "unit_id": uid, "region_id": region_id}
               for i, uid in enumerate(unit_ids)]
    for person in people:
        person.update(password_hash=_password_hash(), email=f"{person['username']}@example.test",
                      session_token=f"{person['username']}-token"[-64:], active=True,
                      must_change_password=False, created_at=now)
    user_ids = _ids(db, User, people)
    roles = ["admin", "reviewer", "leader"] + ["liaison"] * units
    _insert(db, UserRole.__table__, [{"user_id": uid, "role": role} for uid, role in zip(user_ids, roles)])

    heads = (sections + 3) // 4
    head_ids = _ids(db, Section, [{"cycle_id": cycle.id, "parent_id": None, "code": f"h{h}",
                                   "position": h, "title": f"第{h + 1}部分工作", "guidance": None} for h in range(heads)])
    section_ids = _ids(db, Section, [{"cycle_id": cycle.id, "parent_id": head_ids[s // 4], "code": f"s{s}",
                                      "position": s % 4, "title": f"第{s + 1}项工作",
                                      "guidance": "请写明主要做法和成效。"} for s in range(sections)])
    _insert(db, section_reviewer, [{"section_id": sid, "user_id": user_ids[1]}
                                               for sid in head_ids + section_ids])

    cells = [(u, s) for s in range(sections) for u in range(units)]
    lead = {s: s % units for s in range(sections)}
    assignment_ids = _ids(db, Assignment, [
        {"section_id": section_ids[s], "unit_id": unit_ids[u], "role": "lead" if lead[s] == u else "support"}
        for u, s in cells])
    state_of = {cell: states[(cell[0] + cell[1]) % len(states)] for cell in cells}
    submitted_at = now - timedelta(days=3)
    contribution_ids = _ids(db, Contribution, [
        {"assignment_id": aid, "cycle_id": cycle.id, "section_id": section_ids[s], "unit_id": unit_ids[u],
         "body": body_for(s, sections), "state": state_of[(u, s)], "version": 1, "updated_at": now,
         "submitted_at": None if state_of[(u, s)] == "draft" else submitted_at,
         "decided_at": now - timedelta(days=1) if state_of[(u, s)] in ("approved", "returned") else None}
        for aid, (u, s) in zip(assignment_ids, cells)])
    by_cell = dict(zip(cells, contribution_ids))

    indicator_ids = _ids(db, Indicator, [
        row for s in range(sections) for row in (
            {"cycle_id": cycle.id, "section_id": section_ids[s], "code": f"c{s}", "name": f"第{s + 1}项办理案件数",
             "measure": "件", "type": "integer", "required": False, "position": 0, "reported_by": "all"},
            {"cycle_id": cycle.id, "section_id": section_ids[s], "code": f"l{s}", "name": f"第{s + 1}项重点事项数",
             "measure": "项", "type": "integer", "required": False, "position": 1, "reported_by": "lead"})])
    _insert(db, Rule.__table__, [
        {"cycle_id": cycle.id, "section_id": section_ids[s], "expression": f"l{s} <= sum(c{s})",
         "severity": "warning", "message": f"第{s + 1}项重点事项数不超过办理案件合计", "position": 0}
        for s in range(sections)])

    values = []
    for (u, s), cid in by_cell.items():
        approved = state_of[(u, s)] == "approved"
        blank = state_of[(u, s)] == "draft" and (u + s) % 3 == 0
        number = Decimal(10 + u + s)
        values.append({"contribution_id": cid, "indicator_id": indicator_ids[2 * s],
                       "value": None if blank else number, "approved_value": number if approved else None,
                       "updated_at": now})
        if lead[s] == u:
            values.append({"contribution_id": cid, "indicator_id": indicator_ids[2 * s + 1],
                           "value": Decimal(3), "approved_value": Decimal(3) if approved else None,
                           "updated_at": now})
    _insert(db, IndicatorValue.__table__, values)

    revisions, logs = [], []
    liaison_of = dict(zip(unit_ids, user_ids[3:]))
    for (u, s), cid in by_cell.items():
        state = state_of[(u, s)]
        if state == "draft":
            continue
        author = liaison_of[unit_ids[u]]
        count = 2 if state == "submitted" else 1
        for number in range(1, count + 1):
            text = body_for(s, sections) if number == count else f"上一版材料：本单位今年办理案件{{{{c{s}}}}}件。"
            revisions.append({"contribution_id": cid, "number": number, "body": text, "author_id": author,
                              "created_at": submitted_at - timedelta(days=count - number)})
            logs.append({"contribution_id": cid, "event": "submit",
                         "from_state": "draft" if number == 1 else "returned",
                         "to_state": "submitted", "actor_id": author, "comment": None,
                         "created_at": submitted_at - timedelta(days=count - number)})
            if number < count:
                logs.append({"contribution_id": cid, "event": "return", "from_state": "submitted",
                             "to_state": "returned", "actor_id": user_ids[1], "comment": "请补充数据。",
                             "created_at": submitted_at - timedelta(days=count - number, hours=-2)})
        if state in ("approved", "returned"):
            logs.append({"contribution_id": cid, "event": "approve" if state == "approved" else "return",
                         "from_state": "submitted", "to_state": state, "actor_id": user_ids[1],
                         "comment": None if state == "approved" else "请核对数字。",
                         "created_at": now - timedelta(days=1)})
    if revisions:
        _insert(db, Revision.__table__, revisions)
        _insert(db, TransitionLog.__table__, logs)
    session.commit()

    users = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_(user_ids)))}
    return ScaleWorld(
        cycle=cycle, office=office, admin=users[user_ids[0]], reviewer=users[user_ids[1]],
        leader=users[user_ids[2]], unit_ids=unit_ids, section_ids=section_ids,
        liaisons={uid: users[liaison_of[uid]] for uid in unit_ids},
        contribution_ids=by_cell, states={by_cell[cell]: state_of[cell] for cell in cells})
