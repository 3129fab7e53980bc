"""In-app notifications from workflow events, the unread count, marking read."""
from sqlalchemy import select

from fazhi_flow.models import Notification
from fazhi_flow.services import contributions as svc
from fazhi_flow.services import cycles as cycle_service


def _of(db, user):
    return list(db.session.scalars(select(Notification).where(Notification.user_id == user.id)
                                   .order_by(Notification.id)))


def test_workflow_events_notify_the_right_people(as_user, world, db):
    client = as_user(world.liaison)
    c = world.contribution
    client.post(f"/tasks/{c.id}/submit", data={"version": c.version})
    assert [n.kind for n in _of(db, world.reviewer)] == ["to_review"]
    assert _of(db, world.outsider_reviewer) == []  # not named for this section
    client = as_user(world.reviewer)
    client.post(f"/review/{c.id}/return", data={"version": c.version, "comment": "请补充", "paragraph": "1"})
    returned = _of(db, world.liaison)
    assert [n.kind for n in returned] == ["returned"] and "请补充" in returned[0].body
    assert _of(db, world.other_liaison) == []
    svc.submit_contribution(c, world.liaison)
    svc.approve_contribution(c, world.reviewer)
    db.session.commit()
    assert [n.kind for n in _of(db, world.liaison)] == ["returned", "approved"]


def test_unit_review_notifies_unit_heads(factory, db):
    w = factory.world(unit_head_review=True)
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    assert [n.kind for n in _of(db, w.unit_head)] == ["to_unit_review"]
    assert _of(db, w.reviewer) == []


def test_opening_a_cycle_notifies_assigned_liaisons(factory, db):
    w = factory.world(state="setup")
    cycle_service.open_cycle(w.cycle, w.admin)
    db.session.commit()
    assert [n.kind for n in _of(db, w.liaison)] == ["cycle"]
    assert _of(db, w.other_liaison) == []


def test_unread_count_and_mark_read(as_user, world, db):
    svc.submit_contribution(world.contribution, world.liaison)
    svc.return_contribution(world.contribution, world.reviewer, comment="再改改")
    db.session.commit()
    client = as_user(world.liaison)
    page = client.get("/tasks/").get_data(as_text=True)
    assert '<span class="count" aria-label="1条未读">1</span>' in page
    note = _of(db, world.liaison)[0]
    assert as_user(world.other_liaison).post(f"/inbox/{note.id}/read").status_code == 404
    client = as_user(world.liaison)
    r = client.post(f"/inbox/{note.id}/open")
    assert r.headers["Location"] == f"/tasks/{world.contribution.id}"
    db.session.expire_all()
    assert _of(db, world.liaison)[0].read_at is not None
    assert "条未读" not in client.get("/tasks/").get_data(as_text=True)
    assert "暂时没有消息" not in client.get("/inbox/").get_data(as_text=True)
    client.post("/inbox/read-all")
    assert "没有未读消息" in client.get("/inbox/?unread=1").get_data(as_text=True)


def test_inapp_channel_switched_off_gets_no_inbox_message(as_user, world, db):
    from fazhi_flow.models.reminder import OutboxMessage

    # The liaison keeps e-mail but switches the in-app inbox off on 通知设置.
    r = as_user(world.liaison).post("/reminders/my-channels", data={"email": "on"})
    assert r.status_code == 302
    svc.submit_contribution(world.contribution, world.liaison)
    svc.return_contribution(world.contribution, world.reviewer, comment="请补充数据")
    db.session.commit()
    assert _of(db, world.liaison) == []
    # E-mail is still queued: only the in-app channel was switched off.
    mails = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email")))
    assert any(m.user_id == world.liaison.id and m.cause == "transition:return" for m in mails)
    # Switched back on, the next decision arrives in the inbox again.
    as_user(world.liaison).post("/reminders/my-channels", data={"email": "on", "inapp": "on"})
    svc.submit_contribution(world.contribution, world.liaison)
    svc.approve_contribution(world.contribution, world.reviewer)
    db.session.commit()
    assert [n.kind for n in _of(db, world.liaison)] == ["approved"]
    # The reviewer, who kept the defaults, was told both times.
    assert [n.kind for n in _of(db, world.reviewer)] == ["to_review", "to_review"]


def test_nobody_is_notified_of_their_own_action(factory, db):
    w = factory.world(unit_head_review=True)
    # One person of the unit is both liaison and unit head; a second unit head should still hear of it.
    w.liaison.set_roles(("liaison", "unit_head"))
    db.session.commit()
    svc.submit_contribution(w.contribution, w.liaison)
    db.session.commit()
    assert _of(db, w.liaison) == []
    assert [n.kind for n in _of(db, w.unit_head)] == ["to_unit_review"]
    # The same person approves it on behalf of the unit, then the reviewer returns it: the liaison hears that.
    svc.unit_approve_contribution(w.contribution, w.liaison)
    svc.return_contribution(w.contribution, w.reviewer, comment="请修改")
    db.session.commit()
    assert [n.kind for n in _of(db, w.liaison)] == ["returned"]


def test_opening_a_cycle_does_not_notify_the_admin_who_opened_it(factory, db):
    w = factory.world(state="setup")
    # A small office: the admin is also the liaison of an assigned unit.
    w.admin.set_roles(("admin", "liaison"))
    w.admin.unit = w.unit
    db.session.commit()
    cycle_service.open_cycle(w.cycle, w.admin)
    db.session.commit()
    assert _of(db, w.admin) == []
    assert [n.kind for n in _of(db, w.liaison)] == ["cycle"]
