"""Every step around the signature is announced to exactly the right people, once per channel each
chose: 提请签发 → the leaders (with the admin's note), 退回 (with the reason) and 签发 → the admins,
发布 → everyone who contributed, 更正 requested / returned / signed → leaders and admins; extension
decisions and reopened material → the unit's liaisons. In-app notices carry site-relative links that
lead to the page of the step, e-mails the absolute ones."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import Notification, Revision
from fazhi_flow.models.reminder import OutboxMessage, UserChannelPreference
from fazhi_flow.services import compile as svc
from fazhi_flow.services.contributions import approve_contribution, reopen_contribution, submit_contribution
from fazhi_flow.services.cycles import compile_cycle
from fazhi_flow.services.reminders import decide_extension, request_extension
from fazhi_flow.timeutil import local_today

BASE = "http://127.0.0.1:5000"  # the testing BASE_URL (settings)


class Told:
    """The notices and e-mails written by one step, counted per person."""

    def __init__(self, notes: list[Notification], mails: list[OutboxMessage]):
        self.notes, self.mails = notes, mails
        self.inapp = Counter(n.user_id for n in notes)
        self.email = Counter(m.user_id for m in mails if m.channel == "email")
        self.robots = [m for m in mails if m.channel == "webhook"]

    def people(self) -> set[int]:
        return set(self.inapp) | set(self.email)


def _max_id(db, model) -> int:
    return db.session.scalar(select(func.coalesce(func.max(model.id), 0)))


def step(db, action) -> Told:
    """Run ``action`` and commit, as a request does; what it queued for whom."""
    first_note, first_mail = _max_id(db, Notification), _max_id(db, OutboxMessage)
    action()
    db.session.commit()
    notes = list(db.session.scalars(select(Notification).where(Notification.id > first_note)
                                    .order_by(Notification.id)))
    mails = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.id > first_mail)
                                    .order_by(OutboxMessage.id)))
    return Told(notes, mails)


@pytest.fixture()
def office(factory, db):
    """A district's collecting cycle: 区司法局 wrote and had its material approved; 区市场监管局 wrote a draft
    it never submitted; 区财政局 wrote nothing. Two admins and two leaders; one leader reads only
    e-mail, the second admin only the inbox."""
    w = factory.world(state="collecting")
    w.contribution.body = ("全年组织行政执法人员培训4期，参训人员共计320人次。\n"
                           "公示执法信息1250条，重大执法决定法制审核86件。")
    market = factory.assignment(w.section, w.other_unit, role="support")
    factory.contribution(market, body="市场监管领域开展“双随机、一公开”抽查216次。")
    finance_unit = factory.unit("区财政局", code="czj")
    factory.contribution(factory.assignment(w.section, finance_unit, role="support"), body="")
    w.finance_liaison = factory.user("liaison", unit=finance_unit, name="财政局联络员")
    w.admin2 = factory.user("admin", unit=w.office, name="第二管理员")
    w.leader2 = factory.user("leader", unit=w.office, name="分管领导")
    w.gone_leader = factory.user("leader", unit=w.office, name="已停用领导")
    w.gone_leader.active = False
    db.session.add(UserChannelPreference(user_id=w.leader2.id, email=True, inapp=False))
    db.session.add(UserChannelPreference(user_id=w.admin2.id, email=False, inapp=True))
    db.session.commit()
    return w


def _approve(db, w):
    submit_contribution(w.contribution, w.liaison)
    approve_contribution(w.contribution, w.reviewer)
    db.session.commit()


def _to_signoff(db, w, note="第二部分执法数据已与司法局核对，请重点审阅。"):
    return step(db, lambda: svc.request_signoff(w.cycle, w.admin, comment=note))


def _compiled(db, w):
    _approve(db, w)
    # The market unit's draft is still unsubmitted: compiling goes ahead with a reason.
    compile_cycle(w.cycle, w.admin, force_reason="市场监管局材料未提交，先行汇总")
    db.session.commit()


def _only(told: Told, inapp: set, email: set):
    assert dict(told.inapp) == {uid: 1 for uid in inapp}
    assert dict(told.email) == {uid: 1 for uid in email}
    assert told.robots == []


def test_request_signoff_tells_each_leader_once_with_the_note(db, office):
    w = office
    _compiled(db, w)
    told = _to_signoff(db, w)

    _only(told, inapp={w.leader.id}, email={w.leader.id, w.leader2.id})
    note = told.notes[0]
    assert note.kind == "signoff" and "请您签发" in note.title
    assert note.link == f"/compile/{w.cycle.id}/signoff"
    # The notice itself carries the note, so the leader reads it in the inbox too.
    assert "管理员附言：第二部分执法数据已与司法局核对，请重点审阅。" in note.body and "http" not in note.body
    for mail in told.mails:
        assert mail.cause == "cycle:request_signoff"
        assert "管理员附言：第二部分执法数据已与司法局核对，请重点审阅。" in mail.body
        assert f"{BASE}/compile/{w.cycle.id}/signoff" in mail.body
        assert mail.address in (w.leader.email, w.leader2.email)


def test_return_and_sign_tell_the_admins_but_not_the_leader_who_acted(db, office):
    w = office
    _compiled(db, w)
    _to_signoff(db, w)

    told = step(db, lambda: svc.return_report(w.cycle, w.leader, "第三部分请补充案卷评查数据。"))
    # The admin who asked and the second admin (who reads only the inbox); no leader.
    _only(told, inapp={w.admin.id, w.admin2.id}, email={w.admin.id})
    assert {n.kind for n in told.notes} == {"returned"}
    assert {n.link for n in told.notes} == {f"/compile/{w.cycle.id}"}
    assert "退回意见：第三部分请补充案卷评查数据。" in told.mails[0].body
    assert all("退回意见：第三部分请补充案卷评查数据。" in n.body for n in told.notes)

    _to_signoff(db, w, note="已补充案卷评查数据。")
    version = svc.latest_version(w.cycle).number
    told = step(db, lambda: svc.sign_report(w.cycle, w.leader, version, comment="同意发布。"))
    _only(told, inapp={w.admin.id, w.admin2.id}, email={w.admin.id})
    assert {n.link for n in told.notes} == {f"/compile/{w.cycle.id}"}
    assert f"第{version}稿已签发，请发布" in told.mails[0].subject


def test_publish_tells_everyone_who_contributed_and_nobody_else(db, office):
    w = office
    _compiled(db, w)
    _to_signoff(db, w)
    step(db, lambda: svc.sign_report(w.cycle, w.leader, svc.latest_version(w.cycle).number))

    told = step(db, lambda: svc.publish_report(w.cycle, w.admin))
    # The liaisons of the two units that wrote material and the reviewer who approved it; not the unit
    # that wrote nothing, not the admins, leaders or a reviewer who reviewed nothing.
    contributors = {w.liaison.id, w.other_liaison.id, w.reviewer.id}
    _only(told, inapp=contributors, email=contributors)
    publication = svc.latest_publication(w.cycle)
    assert {n.link for n in told.notes} == {f"/reports/{publication.id}"}
    assert all(f"{BASE}/reports/{publication.id}" in m.body for m in told.mails)
    assert {m.cause for m in told.mails} == {"cycle:publish"}


def test_a_correction_is_announced_at_each_step(db, office):
    w = office
    _compiled(db, w)
    _to_signoff(db, w)
    step(db, lambda: svc.sign_report(w.cycle, w.leader, svc.latest_version(w.cycle).number))
    step(db, lambda: svc.publish_report(w.cycle, w.admin))
    published, draft = svc.latest_publication(w.cycle).version, svc.latest_version(w.cycle).number
    view = svc.section_views(w.cycle)[0]
    svc.save_section_text(w.cycle, view.section, w.admin, view.text.replace("86件", "96件"),
                          view.draft.version if view.draft else 0)
    db.session.commit()
    note = "法制审核件数由86件更正为96件（统计口径笔误）。"

    told = step(db, lambda: svc.request_correction(w.cycle, w.admin2, note, published, draft + 1))
    _only(told, inapp={w.leader.id}, email={w.leader.id, w.leader2.id})
    assert f"更正说明：{note}" in told.mails[0].body
    assert told.notes[0].link == f"/compile/{w.cycle.id}/signoff"

    told = step(db, lambda: svc.return_report(w.cycle, w.leader2, "更正说明请写明涉及的段落。"))
    _only(told, inapp={w.admin.id, w.admin2.id}, email={w.admin.id})
    assert "更正被退回" in told.mails[0].subject

    step(db, lambda: svc.request_correction(w.cycle, w.admin2, note, published,
                                            svc.latest_version(w.cycle).number))
    version = svc.latest_version(w.cycle).number
    told = step(db, lambda: svc.sign_report(w.cycle, w.leader, version))
    # Published at once: both admins and the other leader hear of it, the signer does not.
    _only(told, inapp={w.admin.id, w.admin2.id}, email={w.admin.id, w.leader2.id})
    assert svc.latest_publication(w.cycle).version == published + 1
    assert all(note in m.body for m in told.mails)


def test_extension_decisions_and_reopen_tell_the_unit_liaisons(db, office, factory):
    w = office
    colleague = factory.user("liaison", unit=w.unit, name="司法局联络员二")
    db.session.commit()
    asked = local_today() + timedelta(days=40)
    w.assignment.due = local_today() + timedelta(days=10)
    db.session.commit()

    req = request_extension(w.assignment, w.liaison, asked.isoformat(), "执法数据需待年底统计后报送。")
    db.session.commit()
    told = step(db, lambda: decide_extension(req, w.admin, grant=True))
    _only(told, inapp={w.liaison.id, colleague.id}, email={w.liaison.id, colleague.id})
    assert {n.link for n in told.notes} == {"/reminders/my-extensions"}
    assert "延期已同意" in told.mails[0].subject

    req = request_extension(w.assignment, colleague, (asked + timedelta(days=5)).isoformat(), "再延5天。")
    db.session.commit()
    told = step(db, lambda: decide_extension(req, w.admin, grant=False, comment="已延期一次，请按时报送。"))
    _only(told, inapp={w.liaison.id, colleague.id}, email={w.liaison.id, colleague.id})
    assert "延期未同意" in told.mails[0].subject

    _approve(db, w)
    told = step(db, lambda: reopen_contribution(w.contribution, w.admin, comment="请补充全年执法数据。"))
    _only(told, inapp={w.liaison.id, colleague.id}, email={w.liaison.id, colleague.id})
    assert {n.link for n in told.notes} == {f"/tasks/{w.contribution.id}"}
    assert db.session.get(Revision, w.contribution.revisions[0].id) is not None


def test_reminder_and_digest_links(app, db, office):
    """The digest opens the dashboard of its own report; in-app reminders store the path only."""
    from fazhi_flow.notify import messages as M
    from fazhi_flow.workdays import due_status

    w = office
    with app.test_request_context():
        digest = M.digest_message(w.cycle, date(2025, 1, 6), {"draft": 1}, [], 0)
        reminder = M.reminder_message("overdue", w.contribution, due_status(w.contribution))
    assert digest.link == f"{BASE}/dashboard/?cycle={w.cycle.id}"
    assert digest.path == f"/dashboard/?cycle={w.cycle.id}"
    assert reminder.link == f"{BASE}/tasks/{w.contribution.id}" and reminder.path == f"/tasks/{w.contribution.id}"


def test_the_admins_note_heads_the_signoff_page(db, office, as_user):
    w = office
    _compiled(db, w)
    step(db, lambda: svc.request_signoff(w.cycle, w.admin, comment="旧附言：第一次提请。"))
    step(db, lambda: svc.return_report(w.cycle, w.leader, "请补充数据。"))
    _to_signoff(db, w, note="已按意见补充执法数据，请审阅第二部分。")

    html = as_user(w.leader).get(f"/compile/{w.cycle.id}/signoff").get_data(as_text=True)
    note = html.index("已按意见补充执法数据，请审阅第二部分。")
    # Above the sign form and the document, under its own heading; the earlier request's note only in
    # the history at the bottom.
    assert html.index("管理员的提请签发附言") < note < html.index('class="gw-sheet"')
    assert note < html.index("签发第")
    assert html.index("旧附言：第一次提请。") > html.index('class="gw-sheet"')


@pytest.mark.parametrize(("stored", "lands"), [
    ("/tasks/7", "/tasks/7"),
    ("/dashboard/?cycle=3", "/dashboard/?cycle=3"),
    # Written before links were stored site-relative: the same page on this site.
    (f"{BASE}/review/7", "/review/7"),
    (f"{BASE}/dashboard/?cycle=3", "/dashboard/?cycle=3"),
    # Never another site.
    ("https://elsewhere.example/tasks/7", "/tasks/7"),
    ("//elsewhere.example/tasks/", "/tasks/"),
    ("/\\elsewhere.example/tasks", "/inbox/"),
    ("javascript:alert(1)", "/inbox/"),
])
def test_the_inbox_follows_a_notice_to_a_page_of_this_site(db, world, as_user, stored, lands):
    note = Notification(user_id=world.liaison.id, kind="reminder", title="【催报提醒】严格规范执法", link=stored)
    db.session.add(note)
    db.session.commit()
    response = as_user(world.liaison).post(f"/inbox/{note.id}/open")
    assert response.status_code == 302
    assert response.headers["Location"] == lands
    assert db.session.get(Notification, note.id).read_at is not None


def test_the_inbox_shows_the_notice_text_line_by_line_without_the_bare_address(db, office, as_user):
    w = office
    _compiled(db, w)
    _to_signoff(db, w, note="第二部分数据已核对。\n第三部分新增案卷评查情况。")
    db.session.add(Notification(user_id=w.leader.id, kind="reminder", title="【每日进度】旧消息",
                                body=f"【每日进度】旧消息\n共3份\n{BASE}/dashboard/?cycle={w.cycle.id}",
                                link=f"/dashboard/?cycle={w.cycle.id}"))
    db.session.commit()

    html = as_user(w.leader).get("/inbox/").get_data(as_text=True)
    assert "管理员附言：第二部分数据已核对。<br>第三部分新增案卷评查情况。" in html
    assert "共3份" in html and f"{BASE}/dashboard" not in html


def test_material_for_a_unit_without_a_unit_head_is_announced_to_the_admins(db, factory):
    """提交 into 待单位审核 when the unit has no active unit head: the admins, who may decide in its
    place, are told (each on the channels chosen), not the unit's liaison who is also an admin."""
    w = factory.world(state="collecting", unit_head_review=True)
    w.unit_head.active = False
    w.contribution.body = "全年办理行政复议案件52件，纠错率8.2%。"
    inbox_admin = factory.user("admin", unit=w.office, name="只看站内的管理员")
    liaison_admin = factory.user("admin", "liaison", unit=w.unit, name="兼任联络员的管理员")
    db.session.add(UserChannelPreference(user_id=inbox_admin.id, email=False, inapp=True))
    db.session.commit()
    told = step(db, lambda: submit_contribution(w.contribution, w.liaison))
    assert w.contribution.state == "unit_review"
    _only(told, inapp={w.admin.id, inbox_admin.id}, email={w.admin.id})
    assert liaison_admin.id not in told.people()
    url = f"/admin/contributions/{w.contribution.id}/unit-decision"
    assert {n.link for n in told.notes} == {url}
    mail = told.mails[0]
    assert "该单位没有单位负责人" in mail.subject and "区司法局没有启用的单位负责人账号" in mail.body
    assert f"{BASE}{url}" in mail.body and "联络员提交了材料" in mail.body

    # With a unit head again, the next submission goes to the unit head only, as before.
    w.unit_head.active = True
    from fazhi_flow.services.contributions import unit_return_contribution

    unit_return_contribution(w.contribution, w.unit_head, comment="请补充案件分类数据")
    db.session.commit()
    told = step(db, lambda: submit_contribution(w.contribution, w.liaison))
    assert told.people() == {w.unit_head.id}


def test_announcing_the_publication_costs_the_same_for_many_contributing_units(db, office, factory):
    """发布's announcement reads its recipients and their channel choices in a fixed number of
    statements: 12 more towns that wrote material (and chose channels) cost no more reads."""
    from fazhi_flow.notify.events import announce_publication
    from fazhi_flow.testing import count_queries

    w = office
    _compiled(db, w)
    _to_signoff(db, w)
    step(db, lambda: svc.sign_report(w.cycle, w.leader, svc.latest_version(w.cycle).number))
    step(db, lambda: svc.publish_report(w.cycle, w.admin))

    def announced():
        db.session.expire_all()  # as a request starts: nothing of the people loaded yet
        before = _max_id(db, OutboxMessage)
        with count_queries(db.engine) as statements:
            announce_publication(w.cycle, w.admin)
            db.session.flush()
        mails = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.id > before))
        db.session.rollback()
        # The reads; the rows written (one notice and one e-mail a person) are the announcement itself.
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")]), mails

    few, few_mails = announced()
    for i in range(12):
        town = factory.unit(f"第{i + 1}街道办事处", kind="township")
        for n in range(2):
            liaison = factory.user("liaison", unit=town, name=f"街道{i + 1}联络员{n + 1}")
            if n:
                db.session.add(UserChannelPreference(user_id=liaison.id, email=bool(i % 2), inapp=True))
        factory.contribution(factory.assignment(w.section, town, role="support"),
                             body=f"全年开展法治宣传活动{12 + i}场，覆盖群众{3000 + 150 * i}人次。")
    db.session.commit()
    many, many_mails = announced()
    assert many_mails == few_mails + 12 + 6  # every town's first liaison, half of the second ones
    assert many == few, f"{few} statements for the first units, {many} with 12 more"


def test_reopening_collection_tells_the_units_with_work_left_and_the_moved_dates(db, office, factory):
    """重新征集 after compiling: 区市场监管局 (a draft never submitted) and 区财政局 (nothing written) are
    told which sections to finish and that the past due dates moved; 区司法局, approved, is not."""
    from fazhi_flow.models.reminder import WebhookTarget
    from fazhi_flow.services.cycles import reopen_collection
    from fazhi_flow.timeutil import cn_date_text

    w = office
    market_robot = WebhookTarget(unit_id=w.other_unit.id, name="市场监管局工作群", url="http://127.0.0.1:9/hook")
    justice_robot = WebhookTarget(unit_id=w.unit.id, name="司法局工作群", url="http://127.0.0.1:9/hook2")
    db.session.add_all([market_robot, justice_robot])
    _compiled(db, w)
    target = local_today() + timedelta(days=7)
    told = step(db, lambda: reopen_collection(w.cycle, w.admin, comment="市场监管局材料需补充", move_due_to=target))
    assert w.cycle.state == "collecting"
    still_writing = {w.other_liaison.id, w.finance_liaison.id}
    assert dict(told.inapp) == {uid: 1 for uid in still_writing}
    assert dict(told.email) == {uid: 1 for uid in still_writing}
    assert [r.webhook_id for r in told.robots] == [market_robot.id]
    assert {n.link for n in told.notes} == {"/tasks/"}
    mail = next(m for m in told.mails if m.user_id == w.other_liaison.id)
    assert mail.subject.startswith("【重新征集】") and mail.cause == "cycle:reopen_collection"
    assert f"已过的截止日期已顺延至{cn_date_text(target)}" in mail.body
    assert f"严格规范执法（配合），当前状态：起草中，截止日期：{cn_date_text(target)}" in mail.body
    assert "理由：市场监管局材料需补充" in mail.body and f"{BASE}/tasks/" in mail.body
    assert f"顺延至{cn_date_text(target)}" in told.robots[0].body

    # Reopened again with the dates as they are: no word of moved dates.
    compile_cycle(w.cycle, w.admin, force_reason="先行汇总")
    db.session.commit()
    told = step(db, lambda: reopen_collection(w.cycle, w.admin))
    assert told.people() == still_writing
    assert all("顺延" not in m.body and "理由" not in m.body for m in told.mails)
