"""Turn due reminders into Reminder rows and their messages, in bulk, in the caller's transaction.

Reminder rows are written with ``INSERT … ON CONFLICT (key) DO NOTHING … RETURNING``: only the keys
this transaction inserted come back, and only those get in-app notifications and outbox rows. A
concurrent sweep inserting the same key waits for this transaction (PostgreSQL) or for the write
lock (SQLite) and then inserts nothing, so each reminder is queued exactly once.

Everything a batch needs is read up front in a fixed number of statements (the people, their
channel choices, the group robots, the outline), so the work grows with the number of reminders
due, never with the number of contributions, and the rows are written a batch at a time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from sqlalchemy import String, and_, exists, func, literal, or_, select, union_all

from ..extensions import db
from ..limits import fit
from ..models import Assignment, Contribution, ReportCycle, Section, Unit, User, UserRole
from ..models.cycle import ASSIGNMENT_ROLES
from ..models.notification import Notification
from ..models.reminder import REMINDER_KINDS, OutboxMessage, Reminder, UserChannelPreference, WebhookTarget
from ..notify import messages as M
from ..timeutil import local_zone, utcnow
from ..workflow.states import CONTRIBUTION_STATE_LABELS
from ..workdays import current_calendar, due_status
from .policy import REMINDABLE_STATES, DueReminder, PolicySettings, is_unit_review

logger = logging.getLogger(__name__)

# Kinds addressed to the unit (its liaisons and its group robots).
UNIT_KINDS = ("before_due", "due_today", "overdue", "manual")
# Reminders written per batch: bounds the memory of a sweep queuing tens of thousands.
BATCH_SIZE = 1000


def end_of_local_day_utc(day: date) -> datetime:
    local = datetime.combine(day + timedelta(days=1), time(), tzinfo=local_zone())
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def start_of_local_day_utc(day: date) -> datetime:
    local = datetime.combine(day, time(), tzinfo=local_zone())
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def _local_day(value: datetime | None) -> date | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc).astimezone(local_zone()).date()


# ------------------------------------------------------------------ contribution facts in SQL


def section_due(cycle_ids):
    """A recursive CTE (section_id, due): each section's effective due date, as
    ``Section.effective_due`` computes it (its own, else the nearest ancestor's, else the cycle's)."""
    s, rc = Section.__table__, ReportCycle.__table__
    top = (select(s.c.id.label("section_id"), func.coalesce(s.c.due, rc.c.due).label("due"))
           .join(rc, rc.c.id == s.c.cycle_id)
           .where(s.c.parent_id.is_(None), s.c.cycle_id.in_(list(cycle_ids)))
           .cte("section_due", recursive=True))
    child = s.alias("child")
    return top.union_all(select(child.c.id, func.coalesce(child.c.due, top.c.due))
                         .join(top, child.c.parent_id == top.c.section_id))


def facts_select(cycle_ids):
    """SELECT of the facts the policy and the messages need, one row per contribution; the effective
    due date is column ``due`` (also returned as the second value, for filters)."""
    c, a = Contribution.__table__, Assignment.__table__
    sd = section_due(cycle_ids)
    due = func.coalesce(a.c.due, sd.c.due)
    q = (select(c.c.id, c.c.state, due.label("due"), c.c.unit_id, a.c.section_id, a.c.role,
                c.c.submitted_at, c.c.cycle_id)
         .select_from(c.join(a, a.c.id == c.c.assignment_id).outerjoin(sd, sd.c.section_id == a.c.section_id)))
    return q, due


# ------------------------------------------------------------------ light stand-ins for the messages


@dataclass(frozen=True)
class _Named:
    name: str


@dataclass(frozen=True)
class _SectionLabel:
    path_label: str


@dataclass(frozen=True)
class _AssignmentFacts:
    role: str
    due: date | None

    @property
    def role_label(self) -> str:
        return ASSIGNMENT_ROLES.get(self.role, self.role)

    def effective_due(self) -> date | None:
        return self.due


@dataclass(frozen=True)
class Facts:
    """One contribution as the messages see it (unit name, section path, role, due date, state),
    without loading its ORM object and relationships."""

    id: int
    state: str
    due: date | None
    unit_id: int
    section_id: int
    submitted_at: datetime | None
    unit: _Named
    section: _SectionLabel
    assignment: _AssignmentFacts

    @property
    def state_label(self) -> str:
        return CONTRIBUTION_STATE_LABELS[self.state]


# ------------------------------------------------------------------ who is told


@dataclass(frozen=True)
class _Person:
    """The columns of an active user that addressing needs."""

    id: int
    active: bool
    email: str | None
    phone: str | None
    unit_id: int | None
    region_id: int | None = None


class Directory:
    """The people, channel choices, robots and outline of the cycles of a sweep, read once for all of
    them in a fixed number of statements (however many regions and cycles).

    Only the people of the cycles' regions are read, and every selection is made per region: the
    admins told about a cycle are that cycle's region's, a reviewer of another region is never a
    reviewer here, whatever a section names."""

    def __init__(self, cycles, now: datetime | None = None):
        """``now`` (naive UTC): the sweep's moment, at which delegations (委托) are in force or not."""
        session = db.session
        cycles = list(cycles) if isinstance(cycles, (list, tuple, set)) else [cycles]
        self.cycle = cycles[0] if len(cycles) == 1 else None
        self.cycle_region = {c.id: c.region_id for c in cycles}
        regions = sorted(set(self.cycle_region.values()))
        cycle_ids = sorted(self.cycle_region)
        people = select(User.id).where(User.active.is_(True), User.region_id.in_(regions))
        roles: dict[int, set[str]] = {}
        for uid, role in session.execute(select(UserRole.user_id, UserRole.role).where(UserRole.user_id.in_(people))):
            roles.setdefault(uid, set()).add(role)
        users = [_Person(*row) for row in session.execute(
            select(User.id, User.active, User.email, User.phone, User.unit_id, User.region_id)
            .where(User.active.is_(True), User.region_id.in_(regions)).order_by(User.id))]
        self.users = {u.id: u for u in users}
        self.roles = {u.id: roles.get(u.id, set()) for u in users}
        self.by_role: dict[tuple[int, str], list[_Person]] = {}
        self.by_role_unit: dict[tuple[str, int | None], list[_Person]] = {}
        for u in users:
            for role in sorted(self.roles[u.id]):
                self.by_role.setdefault((u.region_id, role), []).append(u)
                self.by_role_unit.setdefault((role, u.unit_id), []).append(u)
        # 委托: an active delegation's substitute is told what their delegator is told (of the
        # delegable work: a liaison's, unit head's or reviewer's, not an admin's digest).
        from ..models import Delegation
        from ..services.delegations import active_clause

        self.substitutes: dict[int, list[_Person]] = {}
        for delegator_id, substitute_id in session.execute(
                select(Delegation.delegator_id, Delegation.substitute_id)
                .where(Delegation.delegator_id.in_(people), active_clause(now)).order_by(Delegation.id)):
            if substitute_id in self.users:
                self.substitutes.setdefault(delegator_id, []).append(self.users[substitute_id])
        self.prefs = {p.user_id: (p.email, p.inapp) for p in session.scalars(
            select(UserChannelPreference).where(UserChannelPreference.user_id.in_(people)))}
        # The robots of the cycles and of their regions' units (a robot belongs to one of them).
        self.webhooks = session.scalars(select(WebhookTarget).where(
            WebhookTarget.active.is_(True),
            or_(WebhookTarget.cycle_id.in_(cycle_ids),
                WebhookTarget.unit_id.in_(select(Unit.id).where(Unit.region_id.in_(regions)))))
            .order_by(WebhookTarget.id)).all()
        # Every cycle's outline with children and named reviewers: path labels (which number a
        # section among its siblings) then need no query per cycle.
        from ..pages import preload_sections

        self._outline = preload_sections(cycle_ids)
        self.sections = {s.id: s for s in self._outline if isinstance(s, Section)}
        self.named: dict[int, list[int]] = {
            s.id: sorted(u.id for u in s.reviewers) for s in self.sections.values() if s.reviewers}
        self.unit_names = dict(session.execute(select(Unit.id, Unit.name).where(Unit.region_id.in_(regions))).all())
        self._labels: dict[int, _SectionLabel] = {}
        self._units: dict[int, _Named] = {}
        # Digest messages made for all cycles at once (``load_digests``), by cycle id.
        self.digests: dict[int, M.Message] = {}
        # Tens of thousands of reminders share a few due dates and submission days: each count of
        # working days is made once per sweep, not once per message.
        self.calendar = current_calendar()
        self._statuses: dict[tuple, object] = {}
        self._between: dict[tuple, int] = {}

    def due_status(self, due: date | None, day: date):
        found = self._statuses.get((due, day))
        if found is None:
            found = self._statuses[(due, day)] = due_status(due, today=day, calendar=self.calendar)
        return found

    def working_days_between(self, start: date, end: date) -> int:
        found = self._between.get((start, end))
        if found is None:
            found = self._between[(start, end)] = self.calendar.working_days_between(start, end)
        return found

    # The same choices as notify.preferences.wants, from the rows read above.
    def wants(self, user, channel: str) -> bool:
        pref = self.prefs.get(user.id)
        if channel == "email":
            return bool(user.email) and (pref is None or pref[0])
        return pref is None or pref[1]

    def facts(self, row) -> Facts:
        """Facts from a ``facts_select`` row."""
        label = self._labels.get(row.section_id)
        if label is None:
            label = self._labels[row.section_id] = _SectionLabel(self.sections[row.section_id].path_label)
        unit = self._units.get(row.unit_id)
        if unit is None:
            unit = self._units[row.unit_id] = _Named(self.unit_names.get(row.unit_id, ""))
        return Facts(row.id, row.state, row.due, row.unit_id, row.section_id, row.submitted_at, unit, label,
                     _AssignmentFacts(row.role, row.due))

    def liaisons(self, unit_id: int) -> list[_Person]:
        return self.with_substitutes(self.by_role_unit.get(("liaison", unit_id), []))

    def unit_heads(self, unit_id: int) -> list[_Person]:
        return self.with_substitutes(self.by_role_unit.get(("unit_head", unit_id), []))

    def with_substitutes(self, people: list[_Person]) -> list[_Person]:
        """``people`` and after each their active substitutes (委托); repeats are dropped by the sender."""
        if not self.substitutes:
            return people
        return [p for person in people for p in (person, *self.substitutes.get(person.id, ()))]

    def admins(self, region_id: int) -> list[_Person]:
        """The admins of ``region_id`` (a cycle's digest and escalations go to its own region's)."""
        return self.by_role.get((region_id, "admin"), [])

    def reviewers_of(self, facts: Facts, region_id: int) -> list[_Person]:
        """As notify.outbox.reviewers_of: named for the section (or its nearest ancestor naming
        some), else every reviewer of the region; never one of the contribution's own unit, never
        one of another region."""
        named: list[int] = []
        node = self.sections.get(facts.section_id)
        while node is not None:
            named = self.named.get(node.id, [])
            if named:
                break
            node = self.sections.get(node.parent_id)
        pool = [self.users[i] for i in named if i in self.users] if named \
            else self.by_role.get((region_id, "reviewer"), [])
        return self.with_substitutes([u for u in pool if "reviewer" in self.roles[u.id]
                                      and u.unit_id != facts.unit_id and u.region_id == region_id])

    def webhooks_for(self, unit_id: int, cycle_id: int) -> list[WebhookTarget]:
        return [t for t in self.webhooks if t.unit_id == unit_id or t.cycle_id == cycle_id]

    def load_digests(self, wanted: list[tuple]) -> None:
        """Make the digests of ``wanted`` ((cycle, day, settings) …) in one go (``digests_for``)."""
        self.digests.update(digests_for(wanted, self.sections, self.unit_names))


# ------------------------------------------------------------------ rows


_SUBJECT = OutboxMessage.__table__.c.subject.type.length
_CAUSE = OutboxMessage.__table__.c.cause.type.length


class _Rows:
    """Notification and outbox rows of one batch, each tagged with its reminder's key."""

    def __init__(self, directory: Directory, now: datetime):
        self.d = directory
        self.now = now
        self.notifications: list[tuple[str, dict]] = []
        self.outbox: list[tuple[str, dict]] = []

    def _mail(self, key, channel, message, cause, contribution_id, expires_at, **kw) -> dict:
        row = dict(channel=channel, user_id=None, webhook_id=None, address="", subject=fit(
            OutboxMessage.subject, message.subject), body=message.body, payload=None,
            cause=fit(OutboxMessage.cause, cause), reminder_id=None, contribution_id=contribution_id,
            status="pending", attempts=0, next_attempt_at=self.now, claimed_at=None,
            expires_at=expires_at, last_error=None, created_at=self.now, sent_at=None)
        row.update(kw)
        self.outbox.append((key, row))
        return row

    def send_to_users(self, key: str, users, message, contribution_id=None, expires_at=None) -> int:
        """As notify.outbox.send_to_users with ``inapp_kind="reminder"``: each user once, in-app
        and by e-mail as each prefers; the number of users told by at least one channel."""
        told, seen = 0, set()
        for user in users:
            if user.id in seen or not user.active:
                continue
            seen.add(user.id)
            note = mail = False
            if self.d.wants(user, "inapp"):
                self.notifications.append((key, dict(
                    user_id=user.id, kind="reminder", title=fit(Notification.title, message.subject),
                    body=message.short, link=fit(Notification.link, message.path), created_at=utcnow(),
                    read_at=None)))
                note = True
            if self.d.wants(user, "email"):
                self._mail(key, "email", message, "reminder", contribution_id, expires_at,
                           user_id=user.id, address=user.email.strip())
                mail = True
            told += note or mail
        return told

    def queue_webhook(self, key, target, message, contribution_id, mobiles, expires_at) -> int:
        if not target.active:
            return 0
        mobiles = sorted({m for m in mobiles if m})
        self._mail(key, "webhook", message, "reminder", contribution_id, expires_at, webhook_id=target.id,
                   address=target.name, body=message.short, payload={"mobiles": mobiles} if mobiles else None)
        return 1


def _messages(rows: _Rows, key: str, kind: str, occurrence: str, cycle, facts: Facts | None, day: date,
              settings: PolicySettings, note: str | None) -> int:
    """Queue the in-app notifications, e-mails and robot messages of one reminder; the count told."""
    d = rows.d
    region_id = cycle.region_id
    if kind in UNIT_KINDS:
        status = d.due_status(facts.due, day)
        msg = M.reminder_message(kind, facts, status, note=note)
        expires = end_of_local_day_utc(status.due) if kind in ("before_due", "due_today") and status.due \
            else None
        people = d.liaisons(facts.unit_id)
        told = rows.send_to_users(key, people, msg, facts.id, expires)
        mobiles = [u.phone for u in people if u.phone]
        for target in d.webhooks_for(facts.unit_id, cycle.id):
            told += rows.queue_webhook(key, target, msg, facts.id, mobiles, expires)
        return told
    if kind == "escalation":
        msg = M.escalation_message(facts, d.due_status(facts.due, day))
        return rows.send_to_users(key, d.unit_heads(facts.unit_id) + d.admins(region_id), msg, facts.id)
    if kind == "backlog":
        waited = d.working_days_between(_local_day(facts.submitted_at), day)
        if is_unit_review(kind, occurrence):
            # A unit without an active unit head: the admins, who may decide in its place, instead.
            people = d.unit_heads(facts.unit_id)
            stand_in = not people
            if stand_in:
                people = [u for u in d.admins(region_id)
                          if not (u.unit_id == facts.unit_id and "liaison" in d.roles[u.id])]
            msg = M.unit_review_message(facts, waited, stand_in=stand_in)
        else:
            msg, people = M.backlog_message(facts, waited), d.reviewers_of(facts, region_id)
        return rows.send_to_users(key, people, msg, facts.id)
    if kind == "digest":
        msg = d.digests.get(cycle.id) or digest_for(cycle, day, settings)
        # A digest per region: each cycle's to its own region's admins only.
        return rows.send_to_users(key, d.admins(region_id), msg)
    return 0


@dataclass
class QueuedReminder:
    key: str
    kind: str
    kind_label: str
    cycle: str
    unit: str
    section: str
    recipients: int
    id: int | None = None
    region_id: int | None = None

    def line(self) -> str:
        where = f"{self.unit} {self.section}".strip() or self.cycle
        return f"{self.kind_label}\t{where}\t收件{self.recipients}个\t{self.key}"


@dataclass
class Queued:
    queued: list[QueuedReminder] = field(default_factory=list)
    skipped: int = 0


def _insert_new(table, rows: list[dict]) -> dict[str, int]:
    """Insert ``rows`` skipping keys that exist; {key: id} of the rows this statement inserted."""
    if not rows:
        return {}
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the supported databases are SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database: {dialect}")
    # One order for every writer, so two concurrent sweeps wait on each other's keys in the same order.
    rows = sorted(rows, key=lambda r: r["key"])
    stmt = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id, table.c.key)
    return {key: id_ for id_, key in db.session.execute(stmt, rows)}


def _pg_columns(table, skip=("id",)) -> list[tuple[str, str]]:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    # Strings travel as TEXT[]: a cast to VARCHAR(n)[] would cut a longer value silently, where the
    # assignment to the column refuses it (as every other insert path does).
    return [(c.name, "TEXT" if isinstance(c.type, String) else c.type.compile(dialect=dialect))
            for c in table.c if c.name not in skip]


def _unnest(prefix: str, columns: list[tuple[str, str]]) -> str:
    """``unnest`` of one typed array parameter per column, in the order given (WITH ORDINALITY)."""
    arrays = ", ".join(f"%({prefix}{name})b::{type_}[]" for name, type_ in columns)
    names = ", ".join(f'"{name}"' for name, _ in columns)
    return f"unnest({arrays}) WITH ORDINALITY AS x({names}, ord)"


@lru_cache(maxsize=1)
def _pg_batch_sql() -> str:
    """One statement writing a batch on PostgreSQL: the reminders (ON CONFLICT (key) DO NOTHING …
    RETURNING), then the notifications and outbox rows of the reminders it inserted, joined on the
    key. Each column travels as one array parameter: no per-row placeholders to parse or bind."""
    rem = _pg_columns(Reminder.__table__)
    note = [("rkey", "VARCHAR")] + _pg_columns(Notification.__table__)
    out = [("rkey", "VARCHAR")] + _pg_columns(OutboxMessage.__table__, skip=("id", "reminder_id"))

    def names(cols, alias=""):
        return ", ".join(f'{alias}"{n}"' for n, _ in cols if n != "rkey")

    return (
        f"WITH r AS (INSERT INTO reminder ({names(rem)}) SELECT {names(rem, 'x.')} FROM {_unnest('r_', rem)} "
        f"ORDER BY x.ord ON CONFLICT (key) DO NOTHING RETURNING id, key), "
        f"n AS (INSERT INTO notification ({names(note)}) SELECT {names(note, 'x.')} FROM {_unnest('n_', note)} "
        f"JOIN r ON r.key = x.rkey ORDER BY x.ord), "
        f"o AS (INSERT INTO outbox_message ({names(out)}, reminder_id) SELECT {names(out, 'x.')}, r.id "
        f"FROM {_unnest('o_', out)} JOIN r ON r.key = x.rkey ORDER BY x.ord) "
        f"SELECT id, key FROM r"
    )


def _arrays(prefix: str, columns, rows: list[dict], key=None) -> dict[str, list]:
    out = {f"{prefix}{name}": [row.get(name) for row in rows] for name, _ in columns if name != "rkey"}
    if key is not None:
        out[f"{prefix}rkey"] = key
    return out


def _write_pg(reminders: list[dict], notes: list[tuple[str, dict]], outbox: list[tuple[str, dict]]) -> dict[str, int]:
    """The batch in one statement (``_pg_batch_sql``); {key: id} of the reminders it inserted."""
    import json

    reminders = sorted(reminders, key=lambda r: r["key"])  # one lock order for every writer
    params = _arrays("r_", _pg_columns(Reminder.__table__), reminders)
    params.update(_arrays("n_", _pg_columns(Notification.__table__), [row for _, row in notes],
                          key=[k for k, _ in notes]))
    o_rows = [row for _, row in outbox]
    params.update(_arrays("o_", _pg_columns(OutboxMessage.__table__, skip=("id", "reminder_id")), o_rows,
                          key=[k for k, _ in outbox]))
    # As the JSON column type writes it everywhere else (None as JSON null).
    params["o_payload"] = [json.dumps(p) for p in params["o_payload"]]
    result = db.session.connection().exec_driver_sql(_pg_batch_sql(), params)
    return {key: id_ for id_, key in result}


def _write_batch(reminders: list[dict], notes: list[tuple[str, dict]],
                 outbox: list[tuple[str, dict]]) -> dict[str, int]:
    """Write a batch's reminders that do not exist yet, and the notifications and outbox rows (each
    tagged with its reminder's key) of those only; {key: id} of the reminders inserted."""
    if not reminders:
        return {}
    if db.session.get_bind().dialect.name == "postgresql":
        return _write_pg(reminders, notes, outbox)
    new = _insert_new(Reminder.__table__, reminders)
    if not new:
        return new
    _executemany(Notification.__table__, [row for key, row in notes if key in new])
    _executemany(OutboxMessage.__table__, [dict(row, reminder_id=new[key]) for key, row in outbox if key in new])
    return new


def _executemany(table, rows: list[dict]) -> None:
    """INSERT ``rows`` in one executemany of plain tuples, each value converted as the column type
    would (dates and times, JSON); a sweep queues tens of thousands and SQLAlchemy's per-row parameter
    handling would cost more than the database."""
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    columns = [c for c in table.c if c.name != "id"]
    convert = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in columns)
    marks = ", ".join("?" for _ in columns)
    params = [tuple(row.get(c.name) if f is None else f(row.get(c.name)) for c, f in zip(columns, convert))
              for row in rows]
    connection.exec_driver_sql(f"INSERT INTO {dialect.identifier_preparer.quote(table.name)} ({names}) "
                               f"VALUES ({marks})", params)


def queue(cycle, specs: list[DueReminder], facts: dict[int, Facts], directory: Directory, day: date,
          now_utc: datetime, settings: PolicySettings | None = None, note: str | None = None,
          actor_id: int | None = None, batch_size: int = BATCH_SIZE) -> Queued:
    """Write the Reminder rows of ``specs`` (all of ``cycle``) that do not exist yet, with their
    messages; batch by batch (``queue_many``). Nothing is committed here."""
    plan = {cycle.id: (day, settings or PolicySettings())}
    return queue_many([(cycle, spec) for spec in specs], facts, directory, plan, now_utc, note=note,
                      actor_id=actor_id, batch_size=batch_size)


def queue_many(entries: list[tuple], facts: dict[int, Facts], directory: Directory, plan: dict[int, tuple],
               now_utc: datetime, note: str | None = None, actor_id: int | None = None,
               batch_size: int = BATCH_SIZE) -> Queued:
    """Write the Reminder rows of ``entries`` ((cycle, spec) …, of any number of cycles and regions)
    that do not exist yet, with their messages, ``batch_size`` reminders per statement (a batch may
    mix cycles: the statements grow with the reminders due, never with the regions).

    ``facts`` holds the contributions the specs are about; ``plan`` maps each cycle id to its
    (sweep day, PolicySettings). Nothing is committed here.
    """
    out = Queued()
    for start in range(0, len(entries), max(1, batch_size)):
        chunk = entries[start:start + batch_size]
        keys = [spec.key for _cycle, spec in chunk]  # computed once: a key is a few string operations
        rows = _Rows(directory, now_utc)
        reminders = []
        for (cycle, spec), key in zip(chunk, keys):
            day, settings = plan[cycle.id]
            subject = facts.get(spec.contribution_id) if spec.contribution_id is not None else None
            told = _messages(rows, key, spec.kind, spec.occurrence, cycle, subject, day, settings, note)
            reminders.append(dict(key=key, cycle_id=cycle.id, contribution_id=spec.contribution_id,
                                  kind=spec.kind, occurrence=spec.occurrence, due=spec.due, day=day,
                                  message=note, actor_id=actor_id, recipients=told, created_at=now_utc))
        new = _write_batch(reminders, rows.notifications, rows.outbox)
        out.skipped += len(chunk) - len(new)
        if not new:
            continue
        for (cycle, spec), key, row in zip(chunk, keys, reminders):
            if key not in new:
                continue
            subject = facts.get(spec.contribution_id) if spec.contribution_id is not None else None
            label = "待单位审核提醒" if is_unit_review(spec.kind, spec.occurrence) else REMINDER_KINDS[spec.kind]
            out.queued.append(QueuedReminder(
                key=key, kind=spec.kind, kind_label=label, cycle=cycle.title,
                unit=subject.unit.name if subject else "", section=subject.section.path_label if subject else "",
                recipients=row["recipients"], id=new[key], region_id=cycle.region_id))
    return out


# ------------------------------------------------------------------ the daily digest


class _Counted(list):
    """The first rows of a longer list; ``len`` is the length of the whole list (for the digest's
    "另有N份" line, which only prints the first 50)."""

    def __init__(self, head, total: int):
        super().__init__(head)
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __bool__(self) -> bool:
        return self.total > 0


def _waiting_before(day: date, backlog_days: int, calendar) -> date:
    """The latest local day d with more than ``backlog_days`` working days in (d, ``day``]."""
    d, count = day, 0
    for _ in range(11_000):  # bounded as workdays.py bounds its walks (about 30 years)
        if count > backlog_days:
            break
        count += calendar.is_working_day(d)
        d -= timedelta(days=1)
    return d


def digest_for(cycle, day: date, settings: PolicySettings):
    """The digest message of one cycle (``digests_for``)."""
    return digests_for([(cycle, day, settings)])[cycle.id]


def _by_day(pairs) -> dict:
    """{value: [cycle ids]} of (cycle id, value) pairs: cycles sharing a day (or a bound) share one
    condition, so a statement stays the same size however many regions sweep the same day."""
    out: dict = {}
    for cid, value in pairs:
        out.setdefault(value, []).append(cid)
    return out


def digests_for(wanted: list[tuple], sections: dict | None = None, unit_names: dict | None = None) -> dict:
    """{cycle id: digest message} of ``wanted`` ((cycle, day, settings) …), counted in SQL (no
    contribution is loaded) in a fixed number of statements for any number of cycles: the states,
    the overdue drafts (the first 50 of each cycle listed), the submissions waiting more than
    ``backlog_days`` and the messages that stopped since the cycle's previous digest.

    ``sections`` and ``unit_names`` (by id): the outline and names already read (a sweep's
    ``Directory``); read here when not given."""
    if not wanted:
        return {}
    session = db.session
    calendar = current_calendar()
    c = Contribution.__table__
    ids = [cycle.id for cycle, _day, _settings in wanted]
    counts: dict[int, dict] = {cid: {} for cid in ids}
    for cid, state, n in session.execute(select(c.c.cycle_id, c.c.state, func.count()).where(c.c.cycle_id.in_(ids))
                                         .group_by(c.c.cycle_id, c.c.state)):
        counts[cid][state] = n
    q, due = facts_select(ids)
    late = and_(c.c.state.in_(REMINDABLE_STATES), or_(*(
        and_(c.c.cycle_id.in_(cids), due < day) for day, cids in _by_day((cy.id, d) for cy, d, _s in wanted).items())))
    late_rows = q.where(late).subquery()
    totals = dict(session.execute(select(late_rows.c.cycle_id, func.count()).group_by(late_rows.c.cycle_id)).all())
    heads = _late_heads(q, late, totals, calendar, {cy.id: d for cy, d, _s in wanted}, sections, unit_names)
    waiting = _waiting(wanted, calendar)
    dead = dead_since_last_digests({cy.id: d for cy, d, _s in wanted}, {cy.id: cy.region_id for cy, _d, _s in wanted})
    return {cycle.id: M.digest_message(cycle, day, counts[cycle.id], _Counted(heads.get(cycle.id, []),
                                                                              totals.get(cycle.id, 0)),
                                       waiting.get(cycle.id, 0), dead.get(cycle.id, 0))
            for cycle, day, _settings in wanted}


def _late_heads(q, late, totals: dict, calendar, days: dict, sections: dict | None,
                unit_names: dict | None) -> dict[int, list]:
    """The first 50 overdue drafts of each cycle with any (by id), as (unit, section, label)."""
    if not any(totals.values()):
        return {}
    session = db.session
    c = Contribution.__table__
    ranked = q.add_columns(func.row_number().over(partition_by=c.c.cycle_id, order_by=c.c.id).label("rn")) \
        .where(late).subquery()
    rows = session.execute(select(ranked).where(ranked.c.rn <= 50).order_by(ranked.c.cycle_id, ranked.c.id)).all()
    if sections is None or any(r.section_id not in sections for r in rows):
        sections = {s.id: s for s in session.scalars(select(Section).where(Section.cycle_id.in_(list(totals))))}
    if unit_names is None or any(r.unit_id not in unit_names for r in rows):
        unit_names = dict(session.execute(select(Unit.id, Unit.name).where(Unit.id.in_({r.unit_id for r in rows}))))
    heads: dict[int, list] = {}
    for row in rows:
        st = due_status(row.due, today=days[row.cycle_id], calendar=calendar)
        heads.setdefault(row.cycle_id, []).append(
            (unit_names.get(row.unit_id, ""), sections[row.section_id].path_label, st.label))
    return heads


def _waiting(wanted: list[tuple], calendar) -> dict[int, int]:
    """{cycle id: submissions waiting more than the cycle's ``backlog_days``}, in one statement."""
    c = Contribution.__table__
    bounds = [(cycle.id, start_of_local_day_utc(_waiting_before(day, settings.backlog_days, calendar)
                                                + timedelta(days=1)))
              for cycle, day, settings in wanted if settings.backlog_days]
    if not bounds:
        return {}
    by_bound = _by_day(bounds)
    return dict(db.session.execute(select(c.c.cycle_id, func.count()).where(
        c.c.state == "submitted", c.c.submitted_at.is_not(None),
        or_(*(and_(c.c.cycle_id.in_(cids), c.c.submitted_at < bound) for bound, cids in by_bound.items())))
        .group_by(c.c.cycle_id)).all())


def dead_since_last_digest(cycle, day: date) -> int:
    """Outbox messages of the cycle's region that stopped as dead since ``cycle``'s previous
    delivered digest (``dead_since_last_digests``)."""
    return dead_since_last_digests({cycle.id: day}, {cycle.id: cycle.region_id}).get(cycle.id, 0)


def _message_region():
    """The region an outbox message belongs to, as SQL: its person's, else its robot's unit's or
    cycle's (the outbox page shows an admin exactly these); None for a bare address."""
    o = OutboxMessage.__table__
    person, robot = User.__table__.alias("person"), WebhookTarget.__table__.alias("robot")
    robot_unit, robot_cycle = Unit.__table__.alias("robot_unit"), ReportCycle.__table__.alias("robot_cycle")
    region = func.coalesce(person.c.region_id, robot_unit.c.region_id, robot_cycle.c.region_id)
    joined = (o.outerjoin(person, person.c.id == o.c.user_id).outerjoin(robot, robot.c.id == o.c.webhook_id)
              .outerjoin(robot_unit, robot_unit.c.id == robot.c.unit_id)
              .outerjoin(robot_cycle, robot_cycle.c.id == robot.c.cycle_id))
    return region, joined


def dead_since_last_digests(days: dict[int, date], regions: dict[int, int]) -> dict[int, int]:
    """For each cycle id of ``days`` ({cycle id: digest day}; ``regions``: {cycle id: region id}):
    the outbox messages of the cycle's region (to its people or by its robots: what its admins see
    on the outbox page; another region's failures are none of theirs) that stopped as dead (failed,
    or expired unsent) since this cycle's previous digest that was actually delivered (else since
    the day before): the deliverer stamps next_attempt_at with that moment. A digest cancelled or
    dead unsent told nobody, so the count goes back past it. A digest counts as delivered when one
    of its e-mails or robot messages was sent, or it had none (in-app).

    Two statements for any number of cycles and regions: the previous digests, then the dead
    messages counted by region, once per distinct starting moment (cycles swept together share it)."""
    if not days:
        return {}
    session = db.session
    o = OutboxMessage.__table__
    delivered = or_(
        exists().where(o.c.reminder_id == Reminder.id, o.c.status == "sent"),
        ~exists().where(o.c.reminder_id == Reminder.id))
    previous = dict(session.execute(
        select(Reminder.cycle_id, func.max(Reminder.created_at)).where(
            Reminder.kind == "digest", delivered,
            or_(*(and_(Reminder.cycle_id.in_(cids), Reminder.day < day) for day, cids in _by_day(days.items()).items())))
        .group_by(Reminder.cycle_id)).all())
    since = {cid: previous.get(cid) or start_of_local_day_utc(day - timedelta(days=1)) for cid, day in days.items()}
    moments = sorted(set(since.values()))
    region, joined = _message_region()
    wanted_regions = sorted(set(regions.values()))
    counted = [select(literal(i).label("moment"), region.label("region_id"), func.count().label("n"))
               .select_from(joined).where(o.c.status == "dead", o.c.next_attempt_at >= moment,
                                          region.in_(wanted_regions))
               .group_by(region) for i, moment in enumerate(moments)]
    found = {(i, rid): n for i, rid, n in session.execute(union_all(*counted) if len(counted) > 1 else counted[0])}
    index = {moment: i for i, moment in enumerate(moments)}
    return {cid: found.get((index[moment], regions[cid]), 0) for cid, moment in since.items()}
