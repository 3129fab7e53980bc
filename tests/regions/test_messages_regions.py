"""Messages stay inside their region: two sibling districts (静海区, 赫山区) under one city, both with a
unit "gaj", both collecting with overdue material. One sweep and one delivery tell each district's
liaisons, unit heads, reviewers and admins exactly their own reminders, escalations and digest (by
e-mail, in-app and on their own robot), and every step of the workflow (submit, return, approve,
提请签发, 退回, 签发, 发布) is announced to the acting region's people only."""
from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import Notification, Region, ReportCycle, Unit, User, WebhookTarget
from fazhi_flow.models.reminder import OutboxMessage, Reminder
from fazhi_flow.reminders.jobs import deliver, sweep
from fazhi_flow.services import compile as compile_svc
from fazhi_flow.services.contributions import (
    approve_contribution, return_contribution, submit_contribution, unit_approve_contribution,
)
from fazhi_flow.services.cycles import compile_cycle
from tests.reminders.conftest import SmtpServer, WebhookReceiver, free_port
from tests.reminders.helpers import at

# Monday 6 January 2025, 10:00 local (naive UTC): when the submitted material went in.
ENTERED = datetime(2025, 1, 6, 2, 0)
DUE = date(2025, 1, 10)  # a Friday; on Wednesday 15 January the draft is 3 working days overdue
SWEPT = at(2025, 1, 15, 9, 5)
# The longest note a section title allows is not the point here; the bodies cite figures as real ones do.
BODY = "全年办理行政复议案件{{fy_cases}}件，纠错率{{fy_fix_rate}}%。"


def _user(db, unit, username, name, *roles):
    user = User(username=username, name=name, unit=unit, email=f"{username}@example.cn", phone="13800000000")
    user.set_roles(roles)
    db.session.add(user)
    db.session.flush()
    return user


def _district(factory, db, city, code, name, login, gaj_name):
    """A district collecting its 2024 report: 公安 (gaj, with a unit head) has an overdue draft; 司法局
    (sfj, no unit head) has one submission waiting for the reviewer and one waiting in 待单位审核."""
    region = Region(code=code, name=name, level="county", parent=city)
    db.session.add(region)
    db.session.flush()
    office = Unit(region=region, code="yfzqb", name=f"{name}委依法治区办", kind="party", sort_order=1)
    gaj = Unit(region=region, code="gaj", name=gaj_name, kind="judicial", sort_order=2)
    sfj = Unit(region=region, code="sfj", name=f"{name}司法局", sort_order=3)
    db.session.add_all([office, gaj, sfj])
    db.session.flush()
    d = SimpleNamespace(region=region, office=office, gaj=gaj, sfj=sfj, name=name)
    d.admin = _user(db, office, f"{login}_admin", f"{name}管理员", "admin")
    d.reviewer = _user(db, office, f"{login}_reviewer", f"{name}审核人", "reviewer")
    d.leader = _user(db, office, f"{login}_leader", f"{name}签发领导", "leader")
    d.gaj_liaison = _user(db, gaj, f"{login}_gaj", f"{name}公安联络员", "liaison")
    d.gaj_head = _user(db, gaj, f"{login}_gaj_head", f"{name}公安负责人", "unit_head")
    d.sfj_liaison = _user(db, sfj, f"{login}_sfj", f"{name}司法局联络员", "liaison")
    d.cycle = ReportCycle(year=2024, region=name, owner=region, title=f"{name}2024年法治政府建设年度报告",
                          due=DUE, unit_head_review=True, issuers=f"中共{name}委员会\n{name}人民政府",
                          issue_date=date(2025, 1, 6), state="collecting", opened_at=datetime(2024, 12, 2, 1, 0))
    db.session.add(d.cycle)
    db.session.flush()
    d.section = factory.section(d.cycle, "严格规范公正文明执法")
    d.named = factory.section(d.cycle, "行政复议和行政应诉")
    d.overdue = factory.contribution(factory.assignment(d.section, gaj, due=DUE), body=BODY)
    d.waiting = factory.contribution(factory.assignment(d.section, sfj, due=DUE), state="submitted", body=BODY)
    d.waiting.submitted_at = ENTERED
    d.unit_review = factory.contribution(factory.assignment(d.named, sfj, due=DUE), state="unit_review",
                                         body=BODY)
    d.unit_review.submitted_at = ENTERED
    d.robot = WebhookTarget(name=f"{name}公安群", kind="wecom", url="", unit_id=gaj.id, active=True,
                            created_at=datetime(2024, 12, 1))
    db.session.add(d.robot)
    db.session.flush()
    return d


@pytest.fixture()
def districts(factory, db):
    city = Region(code="120100", name="天津市", level="city")
    db.session.add(city)
    db.session.flush()
    jh = _district(factory, db, city, "120118", "静海区", "jh", "公安静海分局")
    hs = _district(factory, db, city, "430903", "赫山区", "hs", "赫山公安分局")
    # A section naming a reviewer of the other district by mistake: never a reviewer here.
    jh.section.reviewers = [jh.reviewer, hs.reviewer]
    hs.section.reviewers = [hs.reviewer, jh.reviewer]
    db.session.commit()
    return SimpleNamespace(jh=jh, hs=hs, city=city)


@pytest.fixture()
def servers(app):
    smtp = SmtpServer(free_port())
    smtp.start()
    robots = WebhookReceiver()
    robots.thread.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=smtp.port, MAIL_SECURITY="none", MAIL_USERNAME="")
    yield SimpleNamespace(smtp=smtp, robots=robots)
    app.config.update(saved)
    smtp.stop()
    robots.server.shutdown()
    robots.server.server_close()


ROLES = ("admin", "reviewer", "leader", "gaj_liaison", "gaj_head", "sfj_liaison")


def _people(d) -> dict[int, str]:
    """{user id: which of the district's people} (the attribute names of ``_district``)."""
    return {getattr(d, role).id: role for role in ROLES}


def test_one_sweep_and_delivery_tell_each_district_only_its_own(db, districts, servers):
    jh, hs = districts.jh, districts.hs
    for d in (jh, hs):
        d.robot.url = servers.robots.url(f"/robot/send?access_token={d.region.code}")
    db.session.commit()

    result = sweep(SWEPT)
    kinds = Counter((q.cycle, q.kind_label) for q in result.queued)
    for d in (jh, hs):
        # The same material in each district gives the same reminders, each under its own cycle.
        assert {k: n for (title, k), n in kinds.items() if title == d.cycle.title} == {
            "逾期催报": 1, "逾期升级提醒": 1, "待审积压提醒": 1, "待单位审核提醒": 1, "每日进度汇总": 1}, kinds

    expected = {
        # overdue → the unit's liaisons; escalation → its unit head and the region's admins; the reviewer
        # backlog → the region's reviewer (not the other district's, named by mistake); 待单位审核 of a
        # unit without a unit head → the region's admins; the digest → the region's admins.
        "overdue": {"gaj_liaison"}, "escalation": {"gaj_head", "admin"}, "backlog": {"reviewer", "admin"},
        "digest": {"admin"},
    }
    for d in (jh, hs):
        own = _people(d)
        rows = db.session.execute(
            select(Reminder.kind, OutboxMessage.user_id, OutboxMessage.channel, OutboxMessage.webhook_id,
                   OutboxMessage.body)
            .join(OutboxMessage, OutboxMessage.reminder_id == Reminder.id).where(Reminder.cycle_id == d.cycle.id)).all()
        users = [r for r in rows if r.channel == "email"]
        assert {r.user_id for r in users} <= set(own), "a message of one district reached another's person"
        for kind, roles in expected.items():
            told = {own[r.user_id] for r in users if r.kind == kind}
            assert told == roles, (d.name, kind, told)
        assert {r.webhook_id for r in rows if r.channel == "webhook"} == {d.robot.id}
        notes = db.session.scalars(select(Notification.user_id).where(Notification.user_id.in_(own))).all()
        assert set(notes) <= set(own) and notes

    assert deliver(at(2025, 1, 15, 9, 6), limit=100).sent == db.session.scalar(
        select(func.count()).select_from(OutboxMessage))
    by_address = {u.email: d for d in (jh, hs) for u in (d.admin, d.reviewer, d.leader, d.gaj_liaison, d.gaj_head,
                                                          d.sfj_liaison)}
    mails = servers.smtp.messages
    assert mails
    for mail in mails:
        d = by_address[mail["To"].addresses[0].addr_spec]
        other = hs if d is jh else jh
        text = mail.get_body(("plain",)).get_content()
        # Each text names its own district's cycle or unit ("静海…" / "…赫山…"), never the other district's.
        assert d.name[:2] in mail["Subject"] + text and other.name[:2] not in mail["Subject"] + text, mail["Subject"]
    digests = [m for m in mails if m["Subject"].startswith("【每日进度】")]
    assert sorted((m["To"].addresses[0].addr_spec, m["Subject"]) for m in digests) == sorted(
        (d.admin.email, f"【每日进度】{d.cycle.title}（2025年1月15日）") for d in (jh, hs))
    # Each robot got its own district's overdue notice only (the unit's robot: to the unit).
    posts = {}
    for request in servers.robots.requests:
        posts.setdefault(request["query"]["access_token"], []).append(json.dumps(request["json"], ensure_ascii=False))
    assert sorted(posts) == sorted([jh.region.code, hs.region.code])
    for d in (jh, hs):
        other = hs if d is jh else jh
        assert all(d.gaj.name in p and other.gaj.name not in p for p in posts[d.region.code])

    # Nothing is due again: the second run of the same moment queues nothing in either district.
    again = sweep(SWEPT)
    assert again.queued == [] and again.skipped_existing == 10


def _told(db, action) -> set[int]:
    """Who was told by ``action`` (in-app or by e-mail), committed as a request commits."""
    first_note = db.session.scalar(select(func.coalesce(func.max(Notification.id), 0)))
    first_mail = db.session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    action()
    db.session.commit()
    notes = db.session.scalars(select(Notification.user_id).where(Notification.id > first_note)).all()
    mails = db.session.scalars(select(OutboxMessage.user_id).where(OutboxMessage.id > first_mail,
                                                                   OutboxMessage.user_id.is_not(None))).all()
    return set(notes) | set(mails)


def test_workflow_announcements_reach_the_acting_districts_people_only(db, districts):
    jh, hs = districts.jh, districts.hs
    for d in (jh, hs):
        d.unit_review.state = "approved"  # the second section's material is done: the report may compile
        # Figures are not what this test is about: plain text, so that the report may be signed.
        for c in (d.overdue, d.waiting, d.unit_review):
            c.body = f"{d.name}全年办理行政复议案件36件，纠错率8.3%。"
    db.session.commit()
    # Both districts go through the same steps; each step's people are of the acting district only.
    for d in (jh, hs):
        name = _people(d)

        def told(action):
            people = _told(db, action)
            assert people <= set(name), f"{d.name}: another district's person was told"
            return {name[i] for i in people}

        # Submit to the reviewers: "any reviewer" of a section naming none means this district's.
        d.section.reviewers = []
        db.session.commit()
        assert told(lambda: submit_contribution(d.overdue, d.gaj_liaison)) == {"gaj_head"}  # 待单位审核 first
        assert told(lambda: unit_approve_contribution(d.overdue, d.gaj_head)) == {"reviewer"}
        assert told(lambda: return_contribution(d.overdue, d.reviewer, "请补充执法案卷评查数据{{zf_cases}}。")) \
            == {"gaj_liaison"}
        told(lambda: submit_contribution(d.overdue, d.gaj_liaison))
        told(lambda: unit_approve_contribution(d.overdue, d.gaj_head))
        assert told(lambda: approve_contribution(d.overdue, d.reviewer)) == {"gaj_liaison"}
        assert told(lambda: approve_contribution(d.waiting, d.reviewer)) == {"sfj_liaison"}
        compile_cycle(d.cycle, d.admin)
        db.session.commit()
        assert told(lambda: compile_svc.request_signoff(d.cycle, d.admin, comment="请审阅。")) == {"leader"}
        assert told(lambda: compile_svc.return_report(d.cycle, d.leader, "第二部分请补充数据。")) == {"admin"}
        told(lambda: compile_svc.request_signoff(d.cycle, d.admin, comment="已补充。"))
        version = compile_svc.latest_version(d.cycle).number
        assert told(lambda: compile_svc.sign_report(d.cycle, d.leader, version)) == {"admin"}
        # 发布 → everyone who contributed: the liaisons who wrote, the reviewer and unit head who decided.
        assert told(lambda: compile_svc.publish_report(d.cycle, d.admin)) == {
            "gaj_liaison", "sfj_liaison", "reviewer", "gaj_head"}


def test_a_reviewer_named_across_regions_is_never_told(db, districts):
    """A section of 静海区 naming 赫山区's reviewer (a mistake the importer refuses, here written
    directly): material submitted in 静海区 reaches 静海区's reviewer only, in-app and by e-mail."""
    jh, hs = districts.jh, districts.hs
    submit_contribution(jh.overdue, jh.gaj_liaison)
    db.session.commit()
    people = _told(db, lambda: unit_approve_contribution(jh.overdue, jh.gaj_head))
    assert people == {jh.reviewer.id}
    assert hs.reviewer.id not in people
    # The district's other people, and nobody of the other district, hear nothing of it.
    assert not db.session.scalar(select(func.count()).select_from(Notification)
                                 .where(Notification.user_id.in_(list(_people(hs)))))


def test_each_digest_counts_its_own_districts_failed_messages(db, districts):
    """The digest's line about messages that could not be sent counts the district's own (to its
    people or by its robots, as its outbox page lists them), never the other district's."""
    jh, hs = districts.jh, districts.hs
    stopped = datetime(2025, 1, 14, 8, 0)  # naive UTC: Tuesday afternoon, after the day-before bound
    for user, n in ((hs.gaj_liaison, 2), (hs.admin, 1)):
        for i in range(n):
            db.session.add(OutboxMessage(channel="email", user_id=user.id, address=user.email,
                                         subject=f"退回通知{i}", body="材料被退回", cause="transition:return",
                                         status="dead", attempts=1, next_attempt_at=stopped, created_at=stopped,
                                         last_error="收件地址不存在"))
    db.session.add(OutboxMessage(channel="webhook", webhook_id=hs.robot.id, address=hs.robot.name, subject="征集",
                                 body="征集", cause="cycle:open", status="dead", attempts=1, next_attempt_at=stopped,
                                 created_at=stopped, last_error="机器人地址无效"))
    db.session.commit()
    sweep(SWEPT)
    bodies = {d.name: db.session.scalar(
        select(OutboxMessage.body).join(Reminder, Reminder.id == OutboxMessage.reminder_id)
        .where(Reminder.kind == "digest", Reminder.cycle_id == d.cycle.id)) for d in (jh, hs)}
    assert "自上次汇总以来本地区有4条消息发送失败或超时未能发出" in bodies["赫山区"]
    assert "发送失败" not in bodies["静海区"]
