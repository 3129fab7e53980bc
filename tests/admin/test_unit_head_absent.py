"""Material never stuck in 待单位审核: when the unit has lost its unit head, the admin agrees or returns
on the unit head's behalf, and the history and the audit trail say so."""
from __future__ import annotations

from sqlalchemy import select

from fazhi_flow import policy
from fazhi_flow.models import AuditEvent, Contribution, Notification, TransitionLog
from fazhi_flow.services.contributions import unit_approve_contribution

from .conftest import login


def _stuck(factory, db):
    """Submitted under unit-head review; then the unit's only unit head is deactivated."""
    w = factory.world(state="collecting", unit_head_review=True, contribution_state="unit_review")
    w.contribution.body = "全年办理行政复议案件52件，纠错率8.2%。"
    w.unit_head.active = False
    db.session.commit()
    return w


def _log(db, contribution_id):
    return db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == contribution_id)
                              .order_by(TransitionLog.id.desc())).first()


def test_admin_agrees_for_the_missing_unit_head(client, factory, db):
    w = _stuck(factory, db)
    login(client, w.admin)
    # The overview's warning about the unit leads to the material waiting for it.
    overview = client.get(f"/admin/cycles/{w.cycle.id}").get_data(as_text=True)
    assert "没有启用的单位负责人账号" in overview and "代单位负责人同意报送或退回修改" in overview
    assert f"/admin/cycles/{w.cycle.id}/contributions?state=unit_review" in overview
    listing = client.get(f"/admin/cycles/{w.cycle.id}/contributions?state=unit_review").get_data(as_text=True)
    url = f"/admin/contributions/{w.contribution.id}/unit-decision"
    assert url in listing and "代单位负责人处理" in listing
    page = client.get(url).get_data(as_text=True)
    assert "区司法局没有启用的单位负责人账号" in page and "纠错率8.2%" in page
    response = client.post(url, data={"event": "unit_approve", "approve-reason": "数据已核对"})
    assert response.status_code == 303
    db.session.expire_all()
    c = db.session.get(Contribution, w.contribution.id)
    assert c.state == "submitted"
    log = _log(db, c.id)
    assert log.event == "unit_approve" and log.actor_id == w.admin.id
    assert log.comment == "管理员代单位负责人同意报送（区司法局没有启用的单位负责人）：数据已核对"
    assert log.context["on_behalf"] == "单位负责人"
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "contribution.unit_approve")).one()
    assert audit.actor_id == w.admin.id and audit.detail["comment"].startswith("管理员代单位负责人同意报送")
    assert audit.detail["on_behalf"] == "单位负责人"
    trail = client.get("/admin/audit?action=contribution.unit_approve").get_data(as_text=True)
    assert "代为处理：单位负责人" in trail
    # The reviewer is told, as after the unit head's own decision.
    assert db.session.scalar(select(Notification).where(Notification.user_id == w.reviewer.id))
    # The liaison's history shows who decided and in whose place.
    history = login(client, w.liaison).get(f"/tasks/{c.id}/history").get_data(as_text=True)
    assert "管理员代单位负责人同意报送" in history


def test_admin_returns_for_the_missing_unit_head_with_a_reason(client, factory, db):
    w = _stuck(factory, db)
    login(client, w.admin)
    url = f"/admin/contributions/{w.contribution.id}/unit-decision"
    response = client.post(url, data={"event": "unit_return", "return-reason": "  "})
    assert response.status_code == 400 and "请填写理由" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Contribution, w.contribution.id).state == "unit_review"
    response = client.post(url, data={"event": "unit_return", "return-reason": "请补充案件分类数据"})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Contribution, w.contribution.id).state == "returned"
    log = _log(db, w.contribution.id)
    assert log.comment.startswith("管理员代单位负责人退回修改") and log.comment.endswith("请补充案件分类数据")
    note = db.session.scalars(select(Notification).where(Notification.user_id == w.liaison.id)
                              .order_by(Notification.id.desc())).first()
    assert note is not None and "请补充案件分类数据" in (note.body or "") + (note.title or "")


def test_admin_may_not_act_while_the_unit_has_a_unit_head(client, factory, db):
    w = _stuck(factory, db)
    w.unit_head.active = True
    db.session.commit()
    assert not policy.can(w.admin, "contribution.unit_approve", w.contribution)
    login(client, w.admin)
    url = f"/admin/contributions/{w.contribution.id}/unit-decision"
    listing = client.get(f"/admin/cycles/{w.cycle.id}/contributions?state=unit_review").get_data(as_text=True)
    assert url not in listing
    page = client.get(url).get_data(as_text=True)
    assert "应由单位负责人" in page and "代单位负责人同意报送</button>" not in page
    response = client.post(url, data={"event": "unit_approve", "approve-reason": ""})
    assert "没有权限" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Contribution, w.contribution.id).state == "unit_review"


def test_the_unit_heads_own_decision_is_logged_as_before(factory, db):
    w = factory.world(state="collecting", unit_head_review=True, contribution_state="unit_review")
    db.session.commit()
    assert policy.can(w.unit_head, "contribution.unit_approve", w.contribution)
    # Other people are still refused: a liaison, a reviewer, a unit head of another unit.
    other_head = factory.user("unit_head", unit=w.other_unit)
    for user in (w.liaison, w.reviewer, other_head):
        assert not policy.can(user, "contribution.unit_return", w.contribution)
    unit_approve_contribution(w.contribution, w.unit_head, comment="同意")
    db.session.commit()
    log = _log(db, w.contribution.id)
    assert log.comment == "同意" and not (log.context or {}).get("on_behalf")


def _headless_submissions(factory, db, w, n):
    """``n`` more towns without a unit head, each liaison having submitted its material."""
    from fazhi_flow.services.contributions import submit_contribution

    for i in range(n):
        town = factory.unit(f"第{i + 1}街道办事处", kind="township")
        liaison = factory.user("liaison", unit=town, name=f"街道联络员{i + 1}")
        material = factory.contribution(factory.assignment(w.section, town, role="support"),
                                        body=f"全年开展法治宣传活动{12 + i}场，覆盖群众{3000 + 150 * i}人次。")
        submit_contribution(material, liaison)
    db.session.commit()


def test_the_waiting_list_asks_for_unit_heads_once_whatever_its_length(client, factory, db):
    from fazhi_flow.testing import count_queries

    w = _stuck(factory, db)
    login(client, w.admin)
    url = f"/admin/cycles/{w.cycle.id}/contributions?state=unit_review"
    client.get(url)  # warm: the login's own reads are not the page's

    def measure():
        with count_queries(db.engine) as statements:
            page = client.get(url).get_data(as_text=True)
        return len(statements), page.count("代单位负责人处理…")

    one, links = measure()
    assert links == 1
    _headless_submissions(factory, db, w, 20)
    many, links = measure()
    assert links == 21
    assert many == one, f"{one} statements with 1 row, {many} with 21"


def test_an_admin_never_agrees_to_own_material_for_the_missing_unit_head(client, factory, db):
    """An admin who is also the unit's liaison submitted; the unit has no unit head. Not they but
    another admin decides in the unit head's place; the same after they stop being its liaison."""
    from fazhi_flow.errors import PermissionDenied
    from fazhi_flow.services.contributions import submit_contribution

    w = factory.world(state="collecting", unit_head_review=True)
    w.unit_head.active = False
    both = factory.user("admin", "liaison", unit=w.unit, name="兼任联络员的管理员")
    w.contribution.body = "全年办理行政复议案件52件，纠错率8.2%。"
    submit_contribution(w.contribution, both)
    db.session.commit()
    assert w.contribution.state == "unit_review"
    assert not policy.can(both, "contribution.unit_approve", w.contribution)
    assert policy.can(w.admin, "contribution.unit_approve", w.contribution)
    login(client, both)
    listing = client.get(f"/admin/cycles/{w.cycle.id}/contributions?state=unit_review").get_data(as_text=True)
    url = f"/admin/contributions/{w.contribution.id}/unit-decision"
    assert url not in listing
    page = client.get(url).get_data(as_text=True)
    assert "不能代单位负责人审核本单位的材料" in page and "代单位负责人同意报送</button>" not in page
    response = client.post(url, data={"event": "unit_approve", "approve-reason": "同意"})
    page = response.get_data(as_text=True)
    assert "不能代单位负责人审核本单位的材料，请由其他管理员处理" in page and "Traceback" not in page
    db.session.expire_all()
    assert db.session.get(Contribution, w.contribution.id).state == "unit_review"
    # No longer the unit's liaison: still the one who submitted this material.
    both = db.session.get(type(both), both.id)
    both.set_roles(("admin",))
    db.session.commit()
    contribution = db.session.get(Contribution, w.contribution.id)
    assert not policy.can(both, "contribution.unit_return", contribution)
    try:
        unit_approve_contribution(contribution, both, comment="同意")
    except PermissionDenied as exc:
        assert "这份材料是您提交的" in exc.message
    else:
        raise AssertionError("an admin agreed to their own submission")
    db.session.rollback()
    # Another admin may.
    contribution = db.session.get(Contribution, w.contribution.id)
    unit_approve_contribution(contribution, w.admin, comment="数据已核对")
    db.session.commit()
    assert contribution.state == "submitted"
