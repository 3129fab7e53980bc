"""会签 on the pages: the review page and queue of each reviewer, the returned material as the liaison
sees it, the outline admin's 审核方式, another region's reviewer; constant queries of the queue."""
import re

from sqlalchemy import event, func, select

from fazhi_flow.extensions import db as _db
from fazhi_flow.models import Contribution, ContributionApproval, Region, Section, Unit
from fazhi_flow.services import contributions as svc

LONG_COMMENT = "第一段数据与统计表一致，表述准确。" * 100


def _world(factory, db, world, body="第一段\n第二段\n第三段"):
    """The world's section approved by all of two office reviewers (and the unit's own reviewer,
    named too, who is never required); its material submitted."""
    world.reviewer2 = factory.user("reviewer", unit=world.office, name="第二审核人")
    world.section.reviewers = [world.reviewer, world.reviewer2, world.own_unit_reviewer]
    world.section.review_mode = "all"
    c = world.contribution
    svc.save_draft(c, world.liaison, body)
    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    return c


def _fresh(db, cid):
    db.session.expire_all()
    return db.session.get(Contribution, cid)


def _approvals(db, cid):
    return db.session.scalar(select(func.count()).select_from(ContributionApproval)
                             .where(ContributionApproval.contribution_id == cid))


def test_first_approval_waits_for_the_others(as_user, world, factory, db):
    c = _world(factory, db, world)
    client = as_user(world.reviewer)
    page = client.get(f"/review/{c.id}").get_data(as_text=True)
    assert "会签（全部审核人同意后通过）" in page
    assert "审核人" in page and "第二审核人" in page and page.count("尚未会签") == 2
    assert "本单位审核人" not in page.split("会签（全部审核人同意后通过）")[1].split("</ul>")[0]
    assert ">会签同意</button>" in page
    r = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": LONG_COMMENT},
                    follow_redirects=True)
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "已会签同意" in text and "还需第二审核人会签" in text
    c = _fresh(db, c.id)
    assert c.state == "submitted" and c.decided_at is None and _approvals(db, c.id) == 1

    # Back on the page: the approval with its comment, no second approval, returning still possible.
    page = client.get(f"/review/{c.id}").get_data(as_text=True)
    assert LONG_COMMENT in page and page.count("尚未会签") == 1 and "已会签同意" in page
    assert f"/review/{c.id}/approve" not in page and f"/review/{c.id}/return" in page
    assert "您已会签同意这一版材料，正在等待第二审核人会签" in page
    r = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": "再次同意"})
    assert r.status_code in (400, 409) and "已会签同意" in r.get_data(as_text=True)
    assert _approvals(db, c.id) == 1 and _fresh(db, c.id).state == "submitted"

    # The second reviewer's approval is the last one required.
    other = as_user(world.reviewer2)
    page = other.get(f"/review/{c.id}").get_data(as_text=True)
    assert ">通过</button>" in page
    r = other.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": "同意。"})
    assert r.status_code == 302
    c = _fresh(db, c.id)
    assert c.state == "approved" and c.decided_at is not None and _approvals(db, c.id) == 2


def test_queue_shows_what_waits_for_me_and_what_waits_for_others(as_user, world, factory, db):
    c = _world(factory, db, world)
    svc.approve_contribution(c, world.reviewer, comment="同意")
    db.session.commit()
    mine = as_user(world.reviewer).get("/review/").get_data(as_text=True)
    row = mine.split("<tbody>")[1]
    assert "已会签，等待第二审核人" in row and f'name="ids" value="{c.id}"' not in row
    # Bulk approval leaves out what this reviewer approved already.
    confirm = as_user(world.reviewer).get(f"/review/bulk?ids={c.id}").get_data(as_text=True)
    assert "已从列表中去掉" in confirm
    theirs = as_user(world.reviewer2).get("/review/").get_data(as_text=True).split("<tbody>")[1]
    assert "会签：已同意1人，共需2人" in theirs and f'name="ids" value="{c.id}"' in theirs
    r = as_user(world.reviewer2).post("/review/bulk", data={"ids": [c.id], f"v{c.id}": c.version},
                                      follow_redirects=True)
    assert "已通过1份材料" in r.get_data(as_text=True)
    assert _fresh(db, c.id).state == "approved"


def test_a_return_shows_the_liaison_every_comment_of_the_round(as_user, world, factory, db):
    c = _world(factory, db, world)
    client = as_user(world.reviewer)
    client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": LONG_COMMENT})
    c = _fresh(db, c.id)
    r = as_user(world.reviewer2).post(f"/review/{c.id}/return",
                                      data={"version": c.version, "comment": "第二段缺少案例。", "paragraph": "2"})
    assert r.status_code == 302 and _fresh(db, c.id).state == "returned"
    page = as_user(world.liaison).get(f"/tasks/{c.id}").get_data(as_text=True)
    card = page.split("<h2>审核意见</h2>")[1].split("<h2>")[0]
    assert "第二段缺少案例。" in card and "本轮其他审核人的意见" in card and LONG_COMMENT in card
    assert "会签同意" in page  # the history names the partial approval as such
    # Resubmitted, both have to approve the new revision.
    svc.submit_contribution(_fresh(db, c.id), world.liaison)
    db.session.commit()
    page = as_user(world.reviewer).get(f"/review/{c.id}").get_data(as_text=True)
    assert page.count("尚未会签") == 2 and f"/review/{c.id}/approve" in page


def test_reviewer_of_another_region_sees_nothing(as_user, world, factory, db):
    c = _world(factory, db, world)
    region = Region(code="439999", name="另一区", level="county")
    db.session.add(region)
    db.session.flush()
    office = Unit(region=region, code="yfzqb_x", name="另一区依法治区办", kind="party")
    db.session.add(office)
    db.session.flush()
    stranger = factory.user("reviewer", unit=office, name="另一区审核人")
    db.session.commit()
    client = as_user(stranger)
    assert client.get(f"/review/{c.id}").status_code == 404
    assert client.post(f"/review/{c.id}/approve", data={"version": c.version}).status_code == 404
    queue = client.get("/review/").get_data(as_text=True)
    assert "目前没有等待您审核的材料" in queue and world.unit.name not in queue
    assert _approvals(db, c.id) == 0


def _edit(client, section, **overrides):
    data = {"title": section.title, "guidance": "填报时请写明数据来源。", "word_limit": "800", "due": "",
            "review_mode": "all"} | overrides
    return client.post(f"/admin/sections/{section.id}/edit", data=data)


def test_outline_admin_sets_countersign_only_with_named_reviewers(as_user, world, factory, db):
    client = as_user(world.admin)
    page = client.get(f"/admin/sections/{world.section.id}/edit").get_data(as_text=True)
    assert "任一审核人通过" in page and "全部审核人会签" in page
    lonely = factory.section(world.cycle, "无人审核的章节")
    db.session.commit()
    r = _edit(client, lonely, title="改过的标题")
    text = r.get_data(as_text=True)
    assert r.status_code == 400 and "都没有指定审核人，不能设为“全部审核人会签”" in text
    assert "改过的标题" in text and "填报时请写明数据来源。" in text  # what was typed is kept
    db.session.expire_all()
    assert (db.session.get(Section, lonely.id).review_mode, db.session.get(Section, lonely.id).title) == (
        "any", "无人审核的章节")
    r = _edit(client, lonely, review_mode="most")
    assert r.status_code == 400 and "请选择审核方式" in r.get_data(as_text=True)
    # A child of a section naming reviewers may (its reviewers are its parent's).
    child = factory.section(world.cycle, "子章节", parent=world.section)
    db.session.commit()
    assert _edit(client, child).status_code == 303
    assert _edit(client, world.section).status_code == 303
    db.session.expire_all()
    assert db.session.get(Section, child.id).review_mode == "all"
    assert db.session.get(Section, world.section.id).review_mode == "all"
    outline = client.get(f"/admin/cycles/{world.cycle.id}/outline").get_data(as_text=True)
    assert outline.count("全部审核人会签 · ") == 2
    assert _edit(client, world.section, review_mode="any").status_code == 303
    db.session.expire_all()
    assert db.session.get(Section, world.section.id).review_mode == "any"


def _queries(client, url):
    seen = []
    listener = lambda *args, **kwargs: seen.append(1)  # noqa: E731
    event.listen(_db.engine, "before_cursor_execute", listener)
    try:
        response = client.get(url)
        assert response.status_code == 200
    finally:
        event.remove(_db.engine, "before_cursor_execute", listener)
    return len(seen), response.get_data(as_text=True)


def _countersigned(factory, world, db, count, tag):
    for i in range(count):
        section = factory.section(world.cycle, f"{tag}章节{i}", reviewers=[world.reviewer, world.reviewer2],
                                  review_mode="all")
        unit = factory.unit(f"{tag}单位{i}", code=f"{tag}{i}")
        contribution = factory.contribution(factory.assignment(section, unit))
        svc.submit_contribution(contribution, factory.user("liaison", unit=unit))
        if i % 2:
            svc.approve_contribution(contribution, world.reviewer, comment="同意")
    db.session.commit()


def test_queue_and_review_page_queries_do_not_grow(as_user, world, factory, db):
    world.reviewer2 = factory.user("reviewer", unit=world.office, name="第二审核人")
    _countersigned(factory, world, db, 4, "a")
    client = as_user(world.reviewer)
    _queries(client, "/review/")
    few, text = _queries(client, "/review/")
    assert text.count("已会签，等待第二审核人") == 2
    _countersigned(factory, world, db, 16, "b")
    _queries(client, "/review/")
    many, text = _queries(client, "/review/")
    assert text.count("已会签，等待第二审核人") == 10 and many == few
    signed = [c for c in _db.session.scalars(select(Contribution).order_by(Contribution.id)) if c.state == "submitted"]
    _queries(client, f"/review/{signed[1].id}")
    one, page = _queries(client, f"/review/{signed[1].id}")
    assert re.search("已会签同意", page)
    # More approvals on one material do not add queries either.
    third = factory.user("reviewer", unit=world.office, name="第三审核人")
    fourth = factory.user("reviewer", unit=world.office, name="第四审核人")
    section = _db.session.get(Section, signed[1].section_id)
    section.reviewers = [world.reviewer, world.reviewer2, third, fourth]
    svc.approve_contribution(signed[1], third)
    svc.approve_contribution(signed[1], fourth)
    db.session.commit()
    _queries(client, f"/review/{signed[1].id}")
    more, page = _queries(client, f"/review/{signed[1].id}")
    assert page.count("已会签同意") >= 3 and more == one


def test_a_substitute_approves_as_the_delegator(as_user, world, factory, db):
    """委托: the substitute's approval counts as the delegator's, is shown as "X 代", and the delegator
    has then approved (no second approval of their own)."""
    from datetime import timedelta

    from fazhi_flow.models import TransitionLog
    from fazhi_flow.services import delegations as dsvc
    from fazhi_flow.timeutil import utcnow

    c = _world(factory, db, world)
    substitute = factory.user("reviewer", unit=world.office, name="代理审核人")
    start = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    dsvc.create(world.reviewer2, world.reviewer2, substitute, dsvc.Period(start, start + timedelta(days=7)))
    db.session.commit()
    client = as_user(substitute)
    assert f"/review/{c.id}" in client.get("/review/").get_data(as_text=True)
    r = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": "代为同意。"})
    assert r.status_code == 302
    approval = db.session.scalar(select(ContributionApproval).where(ContributionApproval.contribution_id == c.id))
    assert (approval.reviewer_id, approval.actor_id) == (world.reviewer2.id, substitute.id)
    log = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == c.id)
                             .order_by(TransitionLog.id.desc())).first()
    assert (log.to_state, log.actor_id, log.on_behalf_of_id) == ("submitted", substitute.id, world.reviewer2.id)
    page = as_user(world.reviewer2).get(f"/review/{c.id}").get_data(as_text=True)
    assert "第二审核人</strong>（代理审核人 代） 已会签同意" in page
    assert f"/review/{c.id}/approve" not in page
    r = as_user(world.reviewer).post(f"/review/{c.id}/approve", data={"version": _fresh(db, c.id).version})
    assert r.status_code == 302 and _fresh(db, c.id).state == "approved"


def test_a_required_reviewer_standing_in_for_another_gives_only_their_own_approval(as_user, world, factory, db):
    """会签 means several people: the second reviewer, standing in for the first (委托), gives their own
    approval and is then refused the first reviewer's, with the reason; the material waits for
    someone else, and the queue and page show it as done for them."""
    from datetime import timedelta

    from fazhi_flow.models import TransitionLog
    from fazhi_flow.services import delegations as dsvc
    from fazhi_flow.timeutil import utcnow

    c = _world(factory, db, world)
    start = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    dsvc.create(world.reviewer, world.reviewer, world.reviewer2, dsvc.Period(start, start + timedelta(days=7)))
    db.session.commit()
    client = as_user(world.reviewer2)
    assert client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": "本人同意。"}).status_code == 302
    c = _fresh(db, c.id)
    assert c.state == "submitted"
    queue = client.get("/review/").get_data(as_text=True).split("<tbody>")[1]
    assert "已会签" in queue and f'name="ids" value="{c.id}"' not in queue
    r = client.post(f"/review/{c.id}/approve", data={"version": c.version, "comment": "代为同意。"},
                    follow_redirects=True)
    assert "会签须由不同的人分别同意" in r.get_data(as_text=True)
    assert _fresh(db, c.id).state == "submitted"
    rows = db.session.execute(select(ContributionApproval.reviewer_id, ContributionApproval.actor_id)
                              .where(ContributionApproval.contribution_id == c.id)
                              .order_by(ContributionApproval.id)).all()
    assert rows == [(world.reviewer2.id, world.reviewer2.id)]
    # The first reviewer, back, gives theirs: approved, in their own name.
    r = as_user(world.reviewer).post(f"/review/{c.id}/approve", data={"version": _fresh(db, c.id).version})
    assert r.status_code == 302 and _fresh(db, c.id).state == "approved"
    logs = db.session.execute(select(TransitionLog.to_state, TransitionLog.on_behalf_of_id)
                              .where(TransitionLog.event == "approve").order_by(TransitionLog.id)).all()
    assert logs == [("submitted", None), ("approved", None)]

