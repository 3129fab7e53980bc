"""A month of reminders with the mail server and the group robots both down for 24 hours in the middle.

April 2025 (清明 on Friday 4 April, Sunday 27 April a working day), one collecting cycle of 15 units
(one contribution each, due dates spread over the month, units that submit early, on time, late,
after a return, or never; a reviewer who approves or returns), the default reminder policy, one
liaison and one unit head per unit, a robot per unit and one for the whole cycle. The scheduler's
jobs (``sweep`` then ``deliver``) run with a moving ``now`` against a real aiosmtpd server and a
real HTTP robot endpoint. Both are stopped (connections refused) from Tuesday 15 April 08:30 to
Wednesday 16 April 08:30 Beijing time.

The runs come at the scheduler's real delivery interval (every 30 seconds) from an hour before the
servers' return to two hours after it, and every 30 minutes of simulated time elsewhere (the rest
of the month only needs the sweeps). The 30-second runs fall one second before each half minute of
the return (08:29:59, 08:30:29 …): the servers come back just after a run, the worst moment, so the
time until the first run that finds them is a whole interval less one second. Within that window
the sweep runs at its own interval (REMINDER_SWEEP_SECONDS, 300 s) as the scheduler runs it, its
first after 09:00 at 09:04:59, after the day's first delivery (``--sweep-seconds 0``: every run).

Printed: messages delivered / expected, duplicates, stale texts, and how long after the servers'
return (in seconds) the last message held back by the outage arrived, and how long after the
first moment it could go out (a reminder not before 09:00).

- Expected: every e-mail and robot message queued in the month that is still relevant at the first
  run that may send it (the first run at or after the queuing moment, or for a message queued
  during the outage the servers' return, and for a reminder the next working day's 09:00 at or
  after that; a run's sweep comes before its delivery). A reminder to submit is void once the
  material is submitted, a reminder to review once it is decided, a reminder before or on the due
  date once that day is over, a digest once its day is over, a reminder or digest once a newer one
  of the same kind about the same material (or cycle) was queued by then; a reminder to the unit
  held from an earlier day also once the day's own reminder about that material is queued that day
  (delivery lets the held one wait for the day's sweep rather than tell the unit twice).
- Duplicates: arrivals beyond the first of one outbox message (e-mails by their outbox id, robot
  messages matched to the robot's rows sent in the same delivery run).
- Repeats: two reminders of one kind about one material reaching the same person or group on one
  day (an older one held back by the outage, then the next stage's).
- Stale: an arrival whose "还剩N个工作日", "今天截止", "已逾期N个工作日" or "已等待审核N个工作日" is wrong
  on the (Beijing) day it arrives, counted independently with ``chinese_calendar``.

    python benchmarks/outage_month.py                    # temporary SQLite database
    python benchmarks/outage_month.py --probe-max-seconds 3600   # failing channels probed at most hourly
    python benchmarks/outage_month.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    FAZHI_BENCH_DATABASE_URL=postgresql+psycopg://… python benchmarks/outage_month.py

With a PostgreSQL URL a private database is created on that server for the run and dropped after.
Runs in a few minutes.
"""
from __future__ import annotations

import argparse
import bisect
import email
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 4, 1, 0, 0, tzinfo=SH)
END = datetime(2025, 5, 1, 0, 0, tzinfo=SH)
STEP = timedelta(minutes=30)
OUTAGE = (datetime(2025, 4, 15, 8, 30, tzinfo=SH), datetime(2025, 4, 16, 8, 30, tzinfo=SH))
# The scheduler's delivery interval, stepped at around the servers' return.
INTERVAL = timedelta(seconds=30)
FINE = (OUTAGE[1] - timedelta(hours=1), OUTAGE[1] + timedelta(hours=2))
SEND_HOUR = 9  # the default policy's send time, 09:00

UNITS = ["区司法局", "区公安分局", "区财政局", "区人社局", "区自然资源局", "区生态环境分局", "区住建局",
         "区交通运输局", "区农业农村局", "区商务局", "区文旅广体局", "区卫健局", "区应急管理局",
         "区市场监管局", "区城管局"]
SECTIONS = ["依法全面履行政府职能", "完善依法行政制度体系", "推进行政决策科学化民主化法治化",
            "坚持严格规范公正文明执法", "强化对行政权力的制约和监督"]
DUES = [date(2025, 4, d) for d in (3, 8, 10, 11, 14, 15, 16, 16, 17, 18, 21, 22, 23, 25, 28)]


class Clock:
    """The simulated moment; the servers stamp what they receive with it."""

    now: datetime = START


# ------------------------------------------------------------------ working days, counted here


def _workday(day: date) -> bool:
    import chinese_calendar

    return chinese_calendar.is_workday(day)


def workdays(after: date, upto: date) -> int:
    """Working days d with after < d <= upto."""
    return sum(1 for i in range(1, (upto - after).days + 1) if _workday(after + timedelta(days=i)))


def next_workday(day: date, n: int = 1) -> date:
    while n:
        day += timedelta(days=1)
        n -= _workday(day)
    return day


def prev_workday(day: date, n: int = 1) -> date:
    while n:
        day -= timedelta(days=1)
        n -= _workday(day)
    return day


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SH)


def due_label(today: date, due: date) -> str:
    """What a message arriving on ``today`` should say about ``due``."""
    if today <= due:
        n = workdays(today, due)
        if n:
            return f"还剩{n}个工作日"
        if today < due:
            return "截止日为节假日" + ("，今天是截止前最后一个工作日" if _workday(today) else "，截止前已没有工作日")
        return "今天截止"
    n = workdays(due, today)
    return f"已逾期{n}个工作日" if n else "已逾期"


def first_send(moment: datetime) -> datetime:
    """The first moment at or after ``moment`` when a reminder may go out (working day, 09:00)."""
    day = moment.astimezone(SH).date()
    if _workday(day) and moment < at(day, SEND_HOUR):
        return at(day, SEND_HOUR)
    if _workday(day):
        return moment
    return at(next_workday(day), SEND_HOUR)


def run_moments() -> list[datetime]:
    """Every 30 minutes, and every delivery interval within FINE (a second before each half minute
    of the return, so that the servers come back just after a run)."""
    coarse = []
    moment = START
    while moment < END:
        if not FINE[0] <= moment < FINE[1]:
            coarse.append(moment)
        moment += STEP
    fine = []
    moment = OUTAGE[1] - timedelta(seconds=1)
    while moment - INTERVAL >= FINE[0]:
        moment -= INTERVAL
    while moment < FINE[1]:
        fine.append(moment)
        moment += INTERVAL
    return sorted(coarse + fine)


# ------------------------------------------------------------------ the servers


class MailServer:
    def __init__(self, port: int):
        from aiosmtpd.controller import Controller

        self.port, self.received, self.lock = port, [], threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=email_policy.default)
                with outer.lock:
                    outer.received.append((Clock.now, msg))
                return "250 Message accepted for delivery"

        self._controller_class, self._handler, self.controller = Controller, Handler(), None

    def start(self):
        self.controller = self._controller_class(self._handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class RobotServer:
    """Every robot's endpoint: records (moment, path, text) of each POST and answers errcode 0."""

    def __init__(self, port: int):
        self.port, self.received, self.server, self.thread = port, [], None, None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append((Clock.now, self.path.split("?")[0], json.loads(raw)["text"]["content"]))
                data = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._handler = Handler

    def start(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the world and its script


@dataclass
class World:
    cycle_id: int
    contributions: dict[int, dict] = field(default_factory=dict)  # id -> unit, section, due
    by_unit: dict[str, int] = field(default_factory=dict)
    robots: dict[int, str] = field(default_factory=dict)  # webhook id -> path
    # contribution id -> [(moment, state)] as the script changes it
    timeline: dict[int, list] = field(default_factory=lambda: defaultdict(list))


def build(db, robot_port: int) -> World:
    from fazhi_flow.models import Assignment, Contribution, ReportCycle, Section, Unit, User
    from fazhi_flow.models.reminder import ReminderPolicy, WebhookTarget

    session = db.session
    office = Unit(code="yfzqb", name="区委依法治区办", kind="party")
    session.add(office)
    password_hash = None

    def person(username, name, role, unit):
        nonlocal password_hash
        user = User(username=username, name=name, unit=unit, email=f"{username}@heshan.example.gov.cn")
        user.set_roles((role,))
        if password_hash is None:
            user.set_password("Bench-Pass-2025")
            password_hash = user.password_hash
        else:
            user.password_hash = password_hash
        session.add(user)
        return user

    reviewer = person("shenhe", "审核人", "reviewer", office)
    person("guanli", "依法治区办管理员", "admin", office)
    person("lingdao", "签发领导", "leader", office)
    cycle = ReportCycle(year=2024, region="益阳市赫山区", title="2024年法治政府建设年度报告", due=date(2025, 4, 30),
                        unit_head_review=False, issuers="中共益阳市赫山区委员会\n益阳市赫山区人民政府",
                        issue_date=date(2025, 5, 20), state="collecting")
    session.add(cycle)
    session.flush()
    session.add(ReminderPolicy(cycle_id=cycle.id))  # the defaults: 5/3/1 before, due day, overdue, 09:00
    sections = []
    for i, title in enumerate(SECTIONS):
        section = Section(cycle=cycle, code=f"s{i + 1}", title=title, position=i + 1)
        section.reviewers = [reviewer]
        session.add(section)
        sections.append(section)
    session.flush()
    world = World(cycle_id=cycle.id)
    cycle_robot = WebhookTarget(cycle_id=cycle.id, name="报告编写工作群", kind="wecom",
                                url=f"http://127.0.0.1:{robot_port}/robot/cycle?key=bench", active=True)
    session.add(cycle_robot)
    for i, (name, due) in enumerate(zip(UNITS, DUES)):
        unit = Unit(code=f"u{i + 1:02d}", name=name, kind="government")
        session.add(unit)
        person(f"lly{i + 1:02d}", f"{name}联络员", "liaison", unit).phone = f"1380000{i + 1:04d}"
        person(f"fzr{i + 1:02d}", f"{name}负责人", "unit_head", unit)
        section = sections[i % len(sections)]
        assignment = Assignment(section=section, unit=unit, role="lead", due=due)
        session.add(assignment)
        session.flush()
        c = Contribution(assignment=assignment, cycle_id=cycle.id, section_id=section.id, unit_id=unit.id,
                         body=f"{name}2024年度推进法治政府建设情况。", state="draft")
        session.add(c)
        kind = "dingtalk" if i % 3 == 0 else "wecom"
        session.add(WebhookTarget(unit_id=unit.id, name=f"{name}工作群", kind=kind,
                                  url=f"http://127.0.0.1:{robot_port}/robot/{unit.code}?key=bench", active=True))
        session.flush()
        world.contributions[c.id] = {"unit": name, "section": section.title, "due": due}
        world.by_unit[name] = c.id
        world.timeline[c.id].append((START, "draft"))
    session.commit()
    world.robots = {t.id: t.url.split("?")[0].split(str(robot_port))[1]
                    for t in session.scalars(db.select(WebhookTarget))}
    return world


def script(world: World) -> list[tuple[datetime, int, str]]:
    """(moment, contribution id, event) for the month, by the unit's habit (index mod 5)."""
    events = []
    for i, (cid, info) in enumerate(sorted(world.contributions.items())):
        due, habit = info["due"], i % 5
        if habit == 0:
            continue  # never submits: overdue reminders and an escalation
        if habit == 1:  # on the due day, approved the next working day
            events += [(at(due, 10, 30), cid, "submit"), (at(next_workday(due), 10, 30), cid, "approve")]
        elif habit == 2:  # early, returned, submitted again, approved
            first = prev_workday(due, 2)
            events += [(at(first, 15), cid, "submit"), (at(next_workday(first), 10), cid, "return"),
                       (at(next_workday(first, 3), 16), cid, "submit"),
                       (at(next_workday(first, 4), 11), cid, "approve")]
        elif habit == 3:  # three working days late (after the escalation)
            late = next_workday(due, 3)
            events += [(at(late, 14), cid, "submit"), (at(next_workday(late), 10, 30), cid, "approve")]
        else:  # the day before, then waits for the reviewer a week (reminders to review)
            day = prev_workday(due)
            events += [(at(day, 11, 30), cid, "submit"), (at(next_workday(day, 5), 15, 30), cid, "approve")]
    return sorted((m, cid, e) for m, cid, e in events if m < END)


def act(db, world: World, moment: datetime, cid: int, event: str) -> None:
    """Do ``event`` as the liaison or the reviewer; what it queued is dated at the simulated moment."""
    from sqlalchemy import select

    from unittest import mock

    from fazhi_flow import timeutil
    from fazhi_flow.models import Contribution, User, UserRole
    from fazhi_flow.models.reminder import OutboxMessage
    from fazhi_flow.services import contributions as csvc
    from fazhi_flow.timeutil import utcnow

    session = db.session
    c = session.get(Contribution, cid)
    role = "liaison" if event == "submit" else "reviewer"
    q = select(User).join(UserRole).where(UserRole.role == role)
    if role == "liaison":
        q = q.where(User.unit_id == c.unit_id)
    actor = session.scalars(q.order_by(User.id)).first()
    sim = moment.astimezone(timezone.utc).replace(tzinfo=None)
    real = utcnow()
    # The notices count working days from "today": the simulated one.
    with mock.patch.object(timeutil, "local_today", lambda: moment.date()):
        if event == "submit":
            csvc.submit_contribution(c, actor)
            c.submitted_at = sim
        elif event == "approve":
            csvc.approve_contribution(c, actor)
            c.decided_at = sim
        else:
            csvc.return_contribution(c, actor, comment="请补充本年度行政复议和行政诉讼案件数据。")
            c.decided_at = sim
        session.flush()
    # Services date what they queue by the real clock; move it to the simulated moment.
    shift = real - sim
    for row in session.scalars(select(OutboxMessage).where(OutboxMessage.created_at >= real - timedelta(minutes=5))):
        row.created_at -= shift
        row.next_attempt_at -= shift
        if row.expires_at is not None:
            row.expires_at -= shift
    session.commit()
    world.timeline[cid].append((moment, c.state))


# ------------------------------------------------------------------ running the month


def sweeps_at(moment: datetime, sweep_seconds: int) -> bool:
    """Whether the run at ``moment`` sweeps too: every run, or with ``sweep_seconds`` (the
    scheduler's REMINDER_SWEEP_SECONDS) within FINE only every that many seconds, on the runs a
    whole number of sweep intervals from the one just before the return (08:29:59, 08:34:59 …, so
    the first sweep after 09:00 comes at 09:04:59, after the first delivery of the day)."""
    if not sweep_seconds or not FINE[0] <= moment < FINE[1]:
        return True
    return int((moment - (OUTAGE[1] - timedelta(seconds=1))).total_seconds()) % sweep_seconds == 0


def run(app, db, world: World, mail: MailServer, robots: RobotServer, sweep_seconds: int = 0) -> dict:
    from sqlalchemy import select

    from fazhi_flow.models.reminder import OutboxMessage
    from fazhi_flow.reminders.jobs import deliver, sweep

    events = script(world)
    sent_in_run = []  # (moment, {webhook id: [outbox ids newly sent]}, robot receipts before, after)
    robot_sent = set()
    errors = 0
    started = time.perf_counter()
    for moment in run_moments():
        Clock.now = moment
        down = OUTAGE[0] <= moment < OUTAGE[1]
        if down and mail.controller is not None:
            mail.stop()
            robots.stop()
        elif not down and mail.controller is None:
            mail.start()
            robots.start()
        while events and events[0][0] <= moment:
            _m, cid, event = events.pop(0)
            act(db, world, moment, cid, event)
        if sweeps_at(moment, sweep_seconds):
            sweep(moment)
        before = len(robots.received)
        result = deliver(moment)
        errors += len(result.errors)
        newly = defaultdict(list)
        for oid, wid in db.session.execute(select(OutboxMessage.id, OutboxMessage.webhook_id).where(
                OutboxMessage.channel == "webhook", OutboxMessage.status == "sent")).all():
            if oid not in robot_sent:
                robot_sent.add(oid)
                newly[wid].append(oid)
        db.session.rollback()
        sent_in_run.append((moment, newly, before, len(robots.received)))
    return {"runs": sent_in_run, "seconds": time.perf_counter() - started, "errors": errors}


# ------------------------------------------------------------------ judging


LABEL = re.compile(r"截止日期：(\d{4})年(\d{1,2})月(\d{1,2})日（星期.）(?:，([^\n（]+?))?(?:\n|$)")
WAITED = re.compile(r"已等待(单位)?审核(\d+)个工作日")
UNIT_LINE = re.compile(r"单位：([^\n]+)")
HEAD_UNIT = re.compile(r"】(区[^“\s]+?)“")


def stale_reasons(text: str, day: date, world: World, submitted: dict) -> list[str]:
    wrong = []
    for y, m, d, label in LABEL.findall(text):
        if not label or label.strip() in ("—", ""):
            continue
        due = date(int(y), int(m), int(d))
        truth = due_label(day, due)
        if label.strip() != truth:
            wrong.append(f"{label.strip()}（应为{truth}，截止{due}）")
    for _unit_head, n in WAITED.findall(text):
        unit = (UNIT_LINE.findall(text) or HEAD_UNIT.findall(text) or [None])[0]
        cid = world.by_unit.get(unit)
        since = submitted.get(cid)
        if since is not None:
            truth = workdays(since, day)
            if int(n) != truth:
                wrong.append(f"已等待审核{n}个工作日（应为{truth}）")
    return wrong


def state_at(world: World, cid: int, moment: datetime) -> str:
    state = "draft"
    for t, s in world.timeline[cid]:
        if t <= moment:
            state = s
    return state


class Relevance:
    """Which outbox rows are still worth delivering at the first run that may send them."""

    def __init__(self, rows, reminders: dict, world: World):
        self.reminders, self.world = reminders, world
        self.runs = run_moments()
        self.by_family = defaultdict(list)
        for row in rows:
            if self.family(row) is not None:
                self.by_family[self.family(row)].append(row)

    @staticmethod
    def created(row) -> datetime:
        return row.created_at.replace(tzinfo=timezone.utc).astimezone(SH)

    def held(self, row) -> bool:
        return OUTAGE[0] <= self.created(row) < OUTAGE[1]

    def earliest(self, row) -> datetime:
        """The first moment ``row`` may go out: its queuing or the servers' return, a reminder not
        before 09:00 of a working day."""
        base = OUTAGE[1] if self.held(row) else self.created(row)
        return first_send(base) if row.cause == "reminder" else base

    def first_moment(self, row) -> datetime:
        """The first run at or after ``earliest``."""
        earliest = self.earliest(row)
        return self.runs[bisect.bisect_left(self.runs, earliest)] if earliest <= self.runs[-1] else earliest

    def family(self, row):
        r = self.reminders.get(row.reminder_id)
        if r is None:
            return None
        kind = "liaison" if r.kind in ("before_due", "due_today", "overdue", "manual") else r.kind
        return (kind, r.contribution_id, r.cycle_id if r.contribution_id is None else None, row.channel,
                row.address, row.webhook_id)

    def relevant(self, row) -> bool:
        when = self.first_moment(row)
        r = self.reminders.get(row.reminder_id)
        if r is None:
            return True
        day = when.astimezone(SH).date()
        if r.kind == "digest" and r.day < day:
            return False  # one day's progress, not sent on its day
        if r.kind in ("before_due", "due_today") and r.due is not None and r.due < day:
            return False  # its stage has passed
        if r.contribution_id is not None:
            state = state_at(self.world, r.contribution_id, when)
            if r.kind == "backlog" and state != "submitted":
                return False
            if r.kind != "backlog" and state not in ("draft", "returned"):
                return False
        # Superseded by a newer one of its kind, queued by the time it may go out; a reminder to the
        # unit held from an earlier day waits for the day's own (the sweep's, minutes later), so one
        # queued any time that day supersedes it.
        horizon = when
        if r.kind in ("before_due", "due_today", "overdue") and r.day < day:
            horizon = datetime.combine(day, datetime.max.time(), tzinfo=SH)
        return not any(self.created(row) < self.created(o) <= horizon for o in self.by_family[self.family(row)])


def received(world: World, mail: MailServer, robots: RobotServer, outcome: dict):
    """({outbox id: [arrival moments]}, {outbox id: {Message-ID}}, [(moment, text)], robot duplicates)."""
    arrivals, message_ids, texts = defaultdict(list), defaultdict(set), []
    for moment, msg in mail.received:
        oid = int(msg["X-Fazhi-Outbox-Id"])
        arrivals[oid].append(moment)
        message_ids[oid].add(msg["Message-ID"])
        texts.append((moment, f"{msg['Subject']}\n{msg.get_content()}"))
    # Robots: each delivery run's arrivals on a robot are the robot's rows that run marked sent.
    robot_dups = 0
    for moment, newly, lo, hi in outcome["runs"]:
        got = defaultdict(list)
        for _t, path, text in robots.received[lo:hi]:
            got[path].append(text)
            texts.append((moment, text))
        for wid, ids in newly.items():
            for oid in ids[:len(got[world.robots[wid]])]:
                arrivals[oid].append(moment)
        for path, items in got.items():
            sent = sum(len(oids) for wid, oids in newly.items() if world.robots[wid] == path)
            robot_dups += max(0, len(items) - sent)
    return arrivals, message_ids, texts, robot_dups


def stale_texts(world: World, texts) -> list:
    stale = []
    for moment, text in texts:
        # The material's last submission before the moment (for 已等待审核N个工作日).
        submitted_day = {}
        for cid, line in world.timeline.items():
            subs = [t for t, s in line if s == "submitted" and t <= moment]
            if subs:
                submitted_day[cid] = subs[-1].date()
        reasons = stale_reasons(text, moment.date(), world, submitted_day)
        if reasons:
            stale.append((moment, text.splitlines()[0], reasons))
    return stale


def judge(db, world: World, mail: MailServer, robots: RobotServer, outcome: dict) -> dict:
    from sqlalchemy import select

    from fazhi_flow.models.reminder import OutboxMessage, Reminder

    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel.in_(("email", "webhook")))
                              .order_by(OutboxMessage.id)).all()
    judged = Relevance(rows, {r.id: r for r in db.session.scalars(select(Reminder))}, world)
    by_id = {row.id: row for row in rows}
    expected = {row.id for row in rows if judged.relevant(row)}
    arrivals, message_ids, texts, robot_dups = received(world, mail, robots, outcome)
    delivered = {oid for oid in expected if arrivals.get(oid)}
    unwanted = {oid for oid in arrivals if oid not in expected}
    # Held back by the outage: queued while the servers were down, still relevant, and arrived.
    held = [by_id[oid] for oid in expected if judged.held(by_id[oid])]
    first = {row.id: min(arrivals[row.id]) for row in held if arrivals.get(row.id)}
    # How long each held message waited past the first moment it could go out (the return, or for a
    # reminder 09:00 of a working day), by channel and by whether it is a reminder.
    late_by = defaultdict(list)
    for row in held:
        if row.id in first:
            late = first[row.id] - judged.earliest(row)
            late_by[row.channel].append(late)
            late_by["reminder" if row.cause == "reminder" else "other"].append(late)
    lateness = [first[row.id] - judged.earliest(row) for row in held if row.id in first]
    # Two reminders of one kind about one material reaching the same person or group on one day
    # (an older one held back, then the next stage's): each is relevant, together they are noise.
    per_day = Counter((judged.family(by_id[oid]), min(times).astimezone(SH).date())
                      for oid, times in arrivals.items() if times and judged.family(by_id[oid]) is not None
                      and by_id[oid].cause == "reminder")
    repeats = sum(n - 1 for n in per_day.values() if n > 1)
    repeat_heads = Counter((by_id[oid].channel, by_id[oid].subject[:40], min(times).astimezone(SH).strftime("%m-%d %H:%M:%S"))
                           for oid, times in arrivals.items() if times and by_id[oid].cause == "reminder"
                           and per_day.get((judged.family(by_id[oid]), min(times).astimezone(SH).date()), 0) > 1)
    last_by_kind = {}
    for row in held:
        if row.id in first:
            kind = "reminder" if row.cause == "reminder" else "other"
            last_by_kind[kind] = max(last_by_kind.get(kind, START), first[row.id])
    return {
        "expected": len(expected), "delivered": len(delivered),
        "expected_by_channel": Counter(by_id[o].channel for o in expected),
        "delivered_by_channel": Counter(by_id[o].channel for o in delivered),
        "email_duplicates": sum(len(v) - 1 for oid, v in arrivals.items() if by_id[oid].channel == "email"),
        "robot_duplicates": robot_dups,
        "message_id_changes": sum(1 for v in message_ids.values() if len(v) > 1),
        "unwanted": len(unwanted), "repeats": repeats, "repeat_heads": repeat_heads,
        "unwanted_heads": Counter((by_id[oid].channel, by_id[oid].subject[:40]) for oid in unwanted),
        "stale": stale_texts(world, texts), "arrivals": len(texts),
        "held": len(held), "held_delivered": len(first),
        "last_held": max(first.values()) if first else None, "last_by_kind": last_by_kind,
        "max_lateness": max(lateness) if lateness else None,
        "max_late_by": {k: max(v) for k, v in late_by.items()},
        "held_by": Counter("reminder" if row.cause == "reminder" else "other" for row in held),
        "statuses": Counter((row.channel, row.status) for row in rows),
        "lost": Counter((by_id[oid].channel, by_id[oid].status, (by_id[oid].last_error or "")[:40])
                        for oid in expected - delivered),
    }


def report(figures: dict, outcome: dict, dialect: str, sweep_seconds: int) -> None:
    back = OUTAGE[1]
    print()
    swept = f"扫描每{sweep_seconds}秒一次" if sweep_seconds else "每次投递前都扫描"
    print(f"模拟一个月（2025年4月，{len(UNITS)}个单位，{dialect}；扫描和投递每30分钟一次，服务器恢复前1小时到"
          f"恢复后2小时按实际投递间隔每{INTERVAL.seconds}秒投递一次、{swept}），邮件服务器和群机器人同时中断24小时"
          f"（{OUTAGE[0]:%m月%d日 %H:%M} 至 {back:%m月%d日 %H:%M}，北京时间）")
    e, d = figures["expected"], figures["delivered"]
    ec, dc = figures["expected_by_channel"], figures["delivered_by_channel"]
    held_by = figures["held_by"]
    print("| 指标 | 结果 |\n|---|---|")
    print(f"| 送达/应送达 | {d}/{e}（邮件 {dc['email']}/{ec['email']}，群机器人 {dc['webhook']}/{ec['webhook']}） |")
    print(f"| 其中中断期间积压的 | {figures['held_delivered']}/{figures['held']}"
          f"（催报提醒和汇总 {held_by['reminder']} 条，其他通知 {held_by['other']} 条） |")
    print(f"| 重复送达 | 邮件 {figures['email_duplicates']}，群机器人 {figures['robot_duplicates']}"
          f"（同一邮件换了邮件编号：{figures['message_id_changes']}） |")
    print(f"| 不应再送达却送达（已提交、已处理或已被新提醒取代） | {figures['unwanted']} |")
    print(f"| 过时文字（送达当天“还剩N个工作日”等不对） | {len(figures['stale'])}/{figures['arrivals']} |")
    print(f"| 同一天就同一材料收到两条同类提醒 | {figures['repeats']} |")
    if figures["last_held"] is not None:
        last = figures["last_held"]
        kinds = figures["last_by_kind"]
        parts = [f"其他通知 {_seconds(kinds['other'] - back)}" if "other" in kinds else "",
                 f"催报提醒和汇总 {_seconds(kinds['reminder'] - back)}（09:00 起才发送）" if "reminder" in kinds else ""]
        print(f"| 服务器恢复到积压消息最后一条送达 | {_seconds(last - back)}（{last:%m月%d日 %H:%M:%S}；"
              + "，".join(p for p in parts if p) + "） |")
        by = figures["max_late_by"]
        print(f"| 积压消息从最早可发送时刻到送达，最长 | {_seconds(figures['max_lateness'])}（"
              + "，".join(f"{label} {_seconds(by[k])}" for k, label in
                         (("email", "邮件"), ("webhook", "群机器人"), ("other", "其他通知"), ("reminder", "催报提醒和汇总"))
                         if k in by) + "） |")
    else:
        print("| 服务器恢复到积压消息最后一条送达 | 积压消息一条也未送达 |")
    print(f"（墙钟时间 {outcome['seconds']:.0f} 秒；投递记录的失败 {outcome['errors']} 次。）")
    if figures["lost"]:
        print("\n未送达的应送达消息（渠道、状态、原因）：")
        for (channel, status, error), n in figures["lost"].most_common(10):
            print(f"  {n:4d}  {channel} {status} {error}")
    if figures["unwanted"]:
        print("\n不应再送达却送达的消息：")
        for (channel, subject), n in figures["unwanted_heads"].most_common(10):
            print(f"  {n:4d}  {channel} {subject}")
    if figures["repeats"]:
        print("\n同一天就同一材料收到两条同类提醒（渠道、标题、送达时刻）：")
        for (channel, subject, when), n in sorted(figures["repeat_heads"].items(), key=lambda x: (x[0][1], x[0][2]))[:12]:
            print(f"  {n:4d}  {channel} {when} {subject}")
    if figures["stale"]:
        print("\n过时文字举例：")
        for moment, head, reasons in figures["stale"][:8]:
            print(f"  {moment:%m-%d %H:%M} {head[:40]}：{'；'.join(reasons)}")
    print("\n待发消息最终状态：" + "，".join(f"{c}/{s} {n}" for (c, s), n in sorted(figures["statuses"].items())))


def _seconds(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    return f"{int(delta.total_seconds())} 秒"


class Database:
    """A SQLite file in ``tmp``, or a private database created on a PostgreSQL server and dropped after."""

    def __init__(self, server_url: str | None, tmp: str):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        self.admin = self.name = None
        if not server_url:
            self.url = f"sqlite:///{Path(tmp) / 'month.db'}"
            return
        try:
            server = make_url(server_url)
        except Exception:  # noqa: BLE001 - one clear message for a malformed URL
            raise SystemExit(f"--database-url 无法解析：{server_url}") from None
        self.name = f"fazhi_bench_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        except Exception as exc:  # noqa: BLE001
            raise SystemExit(f"无法在 {server.render_as_string(hide_password=True)} 上创建临时数据库：{exc}") from None
        self.url = server.set(database=self.name).render_as_string(hide_password=False)

    def drop(self):
        from sqlalchemy import text

        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            self.admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("FAZHI_BENCH_DATABASE_URL"),
                        help="a PostgreSQL server (a private database is created on it); default: SQLite")
    parser.add_argument("--retry-max-seconds", type=int, default=None,
                        help="OUTBOX_RETRY_MAX_SECONDS for the run (the longest backoff of a message that "
                             "failed on its own); default: the application's setting")
    parser.add_argument("--sweep-seconds", type=int, default=None,
                        help="around the return, sweep only every this many seconds; default: the "
                             "application's REMINDER_SWEEP_SECONDS (300); 0: every run")
    parser.add_argument("--probe-max-seconds", type=int, default=None,
                        help="OUTBOX_PROBE_MAX_SECONDS for the run (the longest wait between probes of a "
                             "failing channel); default: the application's setting")
    args = parser.parse_args()
    import logging

    with tempfile.TemporaryDirectory() as tmp:
        database = Database(args.database_url, tmp)
        os.environ.update(FAZHI_INSTANCE_PATH=tmp, FAZHI_DATABASE_URL=database.url)
        mail, robots = MailServer(free_port()), RobotServer(free_port())
        try:
            from fazhi_flow import create_app
            from fazhi_flow.extensions import db

            app = create_app("testing")
            app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=mail.port, MAIL_SECURITY="none", MAIL_USERNAME="",
                              MAIL_TIMEOUT=5, WEBHOOK_TIMEOUT=5, BASE_URL="https://fazhi.heshan.example.gov.cn")
            if args.retry_max_seconds is not None:
                app.config["OUTBOX_RETRY_MAX_SECONDS"] = args.retry_max_seconds
            if args.probe_max_seconds is not None:
                app.config["OUTBOX_PROBE_MAX_SECONDS"] = args.probe_max_seconds
            logging.getLogger("fazhi_flow").setLevel(logging.ERROR)
            with app.app_context():
                db.create_all()
                world = build(db, robots.port)
                mail.start()
                robots.start()
                sweep_seconds = int(app.config.get("REMINDER_SWEEP_SECONDS", 300)) \
                    if args.sweep_seconds is None else args.sweep_seconds
                outcome = run(app, db, world, mail, robots, sweep_seconds)
                report(judge(db, world, mail, robots, outcome), outcome, db.engine.dialect.name, sweep_seconds)
                print(f"（OUTBOX_PROBE_MAX_SECONDS = {app.config.get('OUTBOX_PROBE_MAX_SECONDS', '—')}：故障渠道两次"
                      "试探之间最长的间隔，也是服务器恢复后最长要等多久才被发现；OUTBOX_RETRY_MAX_SECONDS = "
                      f"{app.config.get('OUTBOX_RETRY_MAX_SECONDS', 3600)}：单条消息失败后最长的重试间隔。）")
                db.session.remove()
                db.engine.dispose()
        finally:
            mail.stop()
            robots.stop()
            database.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
