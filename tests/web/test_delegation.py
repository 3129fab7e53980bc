"""The 委托 page and what a substitute sees: the delegator's unit's material on 我的任务, their queue on
待审核, the history saying "X 代 Y"; refusals keep what was typed; other regions' ids are not found;
the pages keep their query counts with a delegation present."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import AuditEvent, Delegation, Region, TransitionLog, Unit
from fazhi_flow.services import contributions as svc
from fazhi_flow.services import delegations as dsvc
from fazhi_flow.testing import FreshUserClient, count_queries, login, no_lazy_loads_while_rendering
from fazhi_flow.timeutil import cn_datetime_text, local_zone, utcnow


def _client(app, user):
    client = FreshUserClient(app, app.response_class, use_cookies=True)
    login(client, user)
    return client


def _local(value):
    """A naive-UTC moment as the form's Beijing time."""
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc).astimezone(local_zone()).strftime("%Y-%m-%dT%H:%M")


def _delegate(db, delegator, substitute, days=7):
    start = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    row = dsvc.create(delegator, delegator, substitute, dsvc.Period(start, start + timedelta(days=days)))
    db.session.commit()
    return row


def _other_region_person(factory, db):
    region = Region(code="430902", name="资阳区", level="county")
    db.session.add(region)
    db.session.flush()
    unit = Unit(region=region, code="gaj", name="资阳公安分局")
    db.session.add(unit)
    db.session.flush()
    person = factory.user("reviewer", unit=unit, name="资阳审核人")
    db.session.commit()
    return person


def test_a_liaison_names_a_substitute_on_the_page(app, world, factory, db):
    colleague = factory.user("liaison", unit=world.other_unit, name="李四")
    db.session.commit()
    client = _client(app, world.liaison)
    page = client.get("/delegations/").get_data(as_text=True)
    assert "委托给我的" in page and "我委托的" in page and "李四（区市场监管局）" in page
    start = utcnow().replace(second=0, microsecond=0) + timedelta(hours=1)
    end = start + timedelta(days=14)
    reason = "参加培训" + "学" * 196  # the longest reason allowed (200)
    r = client.post("/delegations/new", data={"substitute": colleague.id, "starts_at": _local(start),
                                              "ends_at": _local(end), "reason": reason})
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    row = db.session.scalars(select(Delegation)).one()
    # Typed in Beijing time, stored in UTC.
    assert (row.delegator_id, row.substitute_id, row.starts_at, row.ends_at, row.reason) == (
        world.liaison.id, colleague.id, start, end, reason)
    page = client.get("/delegations/").get_data(as_text=True)
    assert "李四" in page and "未开始" in page
    assert f"{cn_datetime_text(start)} 至 {cn_datetime_text(end)}" in page  # shown in Beijing time
    assert "委托已设置" in _client(app, world.liaison).get("/inbox/").get_data(as_text=True)


@pytest.mark.parametrize("change, message", [
    ({"ends_at": "2020-01-01T09:00"}, "结束时间"),
    ({"substitute": "999999999999"}, "请选择本地区的一位受托人"),
    ({"starts_at": "明天"}, "开始时间格式不对"),
])
def test_a_refused_form_keeps_what_was_typed(app, world, factory, db, change, message):
    colleague = factory.user("liaison", unit=world.other_unit, name="李四")
    db.session.commit()
    start = utcnow().replace(second=0, microsecond=0) + timedelta(hours=1)
    data = {"substitute": str(colleague.id), "starts_at": _local(start),
            "ends_at": _local(start + timedelta(days=3)), "reason": "年休假<script>"}
    data.update(change)
    r = _client(app, world.liaison).post("/delegations/new", data=data)
    text = r.get_data(as_text=True)
    assert r.status_code == 400 and message in text
    assert "年休假&lt;script&gt;" in text and f'value="{data["starts_at"]}"' in text
    assert db.session.scalar(select(Delegation)) is None


def test_another_regions_person_or_delegation_is_not_found(app, world, factory, db):
    outsider = _other_region_person(factory, db)
    client = _client(app, world.reviewer)
    start = utcnow().replace(second=0, microsecond=0) + timedelta(hours=1)
    r = client.post("/delegations/new", data={"substitute": outsider.id, "starts_at": _local(start),
                                              "ends_at": _local(start + timedelta(days=2))})
    assert r.status_code == 400 and "请选择本地区的一位受托人" in r.get_data(as_text=True)
    assert "资阳审核人" not in client.get("/delegations/").get_data(as_text=True)
    # A delegation inside the other region: its id is as missing here.
    helper = factory.user("liaison", unit=outsider.unit, name="资阳联络员")
    theirs = _delegate(db, outsider, helper)
    assert _client(app, world.admin).post(f"/delegations/{theirs.id}/revoke").status_code == 404
    assert db.session.get(Delegation, theirs.id).revoked_at is None


def test_substitute_of_a_liaison_works_on_the_units_material(app, world, factory, db, monkeypatch):
    colleague = factory.user("reviewer", unit=world.office, name="李四")
    world.liaison.name = "张三"
    db.session.commit()
    _delegate(db, world.liaison, colleague)
    client = _client(app, colleague)
    tasks = client.get("/tasks/")
    assert tasks.status_code == 200
    text = tasks.get_data(as_text=True)
    assert "代张三（区司法局）处理" in text and world.section.path_label in text
    cid = world.contribution.id
    r = client.post(f"/tasks/{cid}", data={"body": "代为填写：今年开展培训5次。", "version": world.contribution.version,
                                          "action": "save"})
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:500]
    db.session.expire_all()
    svc.submit_contribution(world.contribution, colleague)
    db.session.commit()
    history = client.get(f"/tasks/{cid}/history").get_data(as_text=True)
    assert "李四 代 张三" in history
    trail = _client(app, world.admin).get("/admin/audit").get_data(as_text=True)
    assert "李四 代 张三" in trail
    save = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contribution.save")).one()
    assert (save.actor_id, save.on_behalf_of_id) == (colleague.id, world.liaison.id)

    # After the end: nothing of it is theirs any more.
    real = dsvc.utcnow
    monkeypatch.setattr(dsvc, "utcnow", lambda: real() + timedelta(days=8))
    assert client.get(f"/tasks/{cid}").status_code == 403
    assert client.get("/tasks/").status_code == 403  # a reviewer has no task list of their own


def test_substitute_of_a_reviewer_reviews_from_their_queue(app, world, factory, db):
    helper = factory.user("liaison", unit=world.office, name="王五")
    db.session.commit()
    svc.submit_contribution(world.contribution, world.liaison)
    db.session.commit()
    _delegate(db, world.reviewer, helper)
    client = _client(app, helper)
    queue = client.get("/review/").get_data(as_text=True)
    assert "代审核人审核" in queue and world.section.path_label in queue
    cid = world.contribution.id
    r = client.post(f"/review/{cid}/approve", data={"version": world.contribution.version})
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:500]
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.event == "approve")).one()
    assert (log.actor_id, log.on_behalf_of_id) == (helper.id, world.reviewer.id)
    assert "王五 代 审核人" in _client(app, world.liaison).get(f"/tasks/{cid}/history").get_data(as_text=True)


def test_substitute_of_a_unit_head_decides_in_the_unit_queue(app, factory, db):
    w = factory.world(unit_head_review=True)
    deputy = factory.user("liaison", unit=w.other_unit, name="副职")
    db.session.commit()
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    _delegate(db, w.unit_head, deputy)
    client = _client(app, deputy)
    queue = client.get("/tasks/unit-queue").get_data(as_text=True)
    assert "代为审核：区司法局" in queue
    assert client.get(f"/tasks/{w.contribution.id}/unit-review").status_code == 200
    r = client.post(f"/tasks/{w.contribution.id}/unit-approve", data={"version": w.contribution.version})
    assert r.status_code in (302, 303), r.get_data(as_text=True)[:500]
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.event == "unit_approve")).one()
    assert (log.actor_id, log.on_behalf_of_id) == (deputy.id, w.unit_head.id)


def test_admin_sets_and_revokes_a_delegation_for_someone_absent(app, world, factory, db):
    helper = factory.user("liaison", unit=world.office, name="帮手")
    db.session.commit()
    admin = _client(app, world.admin)
    assert "为外出人员设置委托" in admin.get("/admin/users").get_data(as_text=True)
    start = utcnow().replace(second=0, microsecond=0)
    r = admin.post("/delegations/new", data={"delegator": world.leader.id, "substitute": helper.id,
                                             "starts_at": _local(start), "ends_at": _local(start + timedelta(days=5))})
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    row = db.session.scalars(select(Delegation)).one()
    assert (row.delegator_id, row.created_by_id) == (world.leader.id, world.admin.id)
    assert "本地区生效中和未开始的委托" in admin.get("/delegations/").get_data(as_text=True)
    # The leader's substitute sees the compile area; a liaison cannot set one for somebody else.
    assert _client(app, helper).get("/compile/").status_code == 200
    r = _client(app, world.other_liaison).post("/delegations/new", data={
        "delegator": world.leader.id, "substitute": helper.id, "starts_at": _local(start + timedelta(days=10)),
        "ends_at": _local(start + timedelta(days=12))})
    assert r.status_code == 403
    r = admin.post(f"/delegations/{row.id}/revoke")
    assert r.status_code == 303
    db.session.expire_all()
    assert db.session.get(Delegation, row.id).revoked_by_id == world.admin.id
    assert _client(app, helper).get("/compile/").status_code == 403
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("delegation.%"))).all()
    assert sorted(actions) == ["delegation.create", "delegation.revoke"]


# ------------------------------------------------------------------ query counts


def _get_counted(client, db, url):
    client.get(url)  # warm up
    with count_queries(db.engine) as statements:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return len(statements), response.get_data(as_text=True)


def _sections(factory, db, world, n, state="draft"):
    for i in range(n):
        section = factory.section(world.cycle, f"附加章节{i}", reviewers=[world.reviewer])
        c = factory.contribution(factory.assignment(section, world.unit), state="draft")
        if state == "submitted":
            svc.submit_contribution(c, world.liaison)
    db.session.commit()


@pytest.mark.parametrize("page", ["tasks", "review"])
def test_pages_keep_their_query_count_with_a_delegation(app, factory, db, page):
    counts = {}
    for n in (2, 8):
        w = factory.world()
        helper = factory.user("liaison", unit=w.other_unit, name=f"受托人{n}")
        factory.contribution(factory.assignment(w.section, w.other_unit, role="support"))
        db.session.commit()
        delegator = w.liaison if page == "tasks" else w.reviewer
        _sections(factory, db, w, n, state="draft" if page == "tasks" else "submitted")
        _delegate(db, delegator, helper)
        client = _client(app, helper)
        url = "/tasks/" if page == "tasks" else "/review/"
        with no_lazy_loads_while_rendering(app, db.session):
            counts[n], html = _get_counted(client, db, url)
        assert html.count("附加章节") >= n
    assert counts[2] == counts[8], counts


# ------------------------------------------------------------------ reminders go to both


@pytest.fixture()
def smtp(app):
    """A real SMTP server (aiosmtpd) on a free port; the app sends through it for the test."""
    import socket

    from aiosmtpd.controller import Controller

    class Recorder:
        def __init__(self):
            self.recipients = []

        async def handle_DATA(self, server, session, envelope):
            self.recipients.extend(envelope.rcpt_tos)
            return "250 Message accepted for delivery"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    keys = ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME", "MAIL_TIMEOUT")
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_SECURITY="none", MAIL_USERNAME="", MAIL_TIMEOUT=5)
    yield recorder
    controller.stop()
    app.config.update(saved)


def test_reminders_go_to_the_delegator_and_the_substitute_once(factory, db, smtp):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from fazhi_flow.models import Notification
    from fazhi_flow.reminders.jobs import deliver, sweep

    sh = ZoneInfo("Asia/Shanghai")
    w = factory.world()  # due Friday 10 January 2025, a draft of 区司法局
    helper = factory.user("reviewer", unit=w.office, name="受托人")
    second = factory.user("liaison", unit=w.unit, name="另一联络员")
    both = factory.user("liaison", unit=w.unit, name="第三联络员")
    # In force on 7 January 2025 (written directly: the service only takes periods still to come).
    db.session.add_all([
        Delegation(delegator_id=second.id, substitute_id=helper.id, starts_at=datetime(2025, 1, 6),
                   ends_at=datetime(2025, 1, 9), created_by_id=second.id),
        # The substitute is a liaison of the unit too: told once, not twice.
        Delegation(delegator_id=w.liaison.id, substitute_id=both.id, starts_at=datetime(2025, 1, 6),
                   ends_at=datetime(2025, 1, 9), created_by_id=w.liaison.id),
        # Ended before the sweep: gives nothing.
        Delegation(delegator_id=w.other_liaison.id, substitute_id=w.leader.id, starts_at=datetime(2025, 1, 1),
                   ends_at=datetime(2025, 1, 7), created_by_id=w.other_liaison.id),
    ])
    factory.contribution(factory.assignment(w.section, w.other_unit, role="support"))
    db.session.commit()
    result = sweep(datetime(2025, 1, 7, 9, 5, tzinfo=sh))
    assert "before_due" in {q.kind for q in result.queued}
    done = deliver(datetime(2025, 1, 7, 9, 6, tzinfo=sh))
    assert done.sent == 6, done
    mailed = sorted(smtp.recipients)
    # The three liaisons of 区司法局 and one's substitute; 区市场监管局's liaison; the admin's digest.
    expected = sorted([w.liaison.email, second.email, both.email, helper.email, w.other_liaison.email,
                       w.admin.email])
    assert mailed == expected, mailed
    assert w.leader.email not in mailed
    told = db.session.scalars(select(Notification.user_id).where(Notification.kind == "reminder")).all()
    assert sorted(told) == sorted([w.liaison.id, second.id, both.id, helper.id, w.other_liaison.id, w.admin.id])


def test_a_substitutes_evidence_file_is_recorded_for_the_delegator(app, world, factory, db):
    from fazhi_flow.services import attachments

    from .files import pdf

    helper = factory.user("reviewer", unit=world.office, name="李四")
    db.session.commit()
    _delegate(db, world.liaison, helper)
    added = attachments.add_attachment(world.contribution, helper, "执法检查记录.pdf", pdf())
    db.session.commit()
    assert added.uploaded_by_id == helper.id
    attachments.remove_attachment(added, helper)
    db.session.commit()
    rows = db.session.execute(select(AuditEvent.action, AuditEvent.actor_id, AuditEvent.on_behalf_of_id)
                              .where(AuditEvent.action.like("attachment.%")).order_by(AuditEvent.id)).all()
    assert [tuple(r) for r in rows] == [("attachment.add", helper.id, world.liaison.id),
                                        ("attachment.remove", helper.id, world.liaison.id)]
