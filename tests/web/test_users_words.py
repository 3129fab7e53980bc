"""The users' words on buttons and states stay as the office knows them (issue list of words)."""
from fazhi_flow.services import contributions as svc
from fazhi_flow.workflow.states import CONTRIBUTION_EVENT_LABELS, CONTRIBUTION_STATE_LABELS

STATES = {"draft": "起草中", "unit_review": "待单位审核", "submitted": "待审核", "returned": "已退回",
          "approved": "已通过"}
ACTIONS = {"submit": "提交审核", "recall": "撤回", "unit_approve": "同意报送", "approve": "通过",
           "return": "退回修改", "unit_return": "退回修改", "reopen": "重新打开"}


def _text(response):
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_state_and_action_labels():
    assert CONTRIBUTION_STATE_LABELS == STATES
    assert CONTRIBUTION_EVENT_LABELS == ACTIONS


def test_buttons_carry_the_users_words(as_user, world, factory, db):
    c = world.contribution
    editor = _text(as_user(world.liaison).get(f"/tasks/{c.id}"))
    assert "保存草稿" in editor and "提交审核" in editor and "起草中" in editor

    svc.submit_contribution(c, world.liaison)
    db.session.commit()
    assert "撤回" in _text(as_user(world.liaison).get(f"/tasks/{c.id}"))
    review = _text(as_user(world.reviewer).get(f"/review/{c.id}"))
    assert "通过" in review and "退回修改" in review and "待审核" in review

    svc.approve_contribution(c, world.reviewer)
    db.session.commit()
    assert "已通过" in _text(as_user(world.liaison).get("/tasks/"))
    assert "重新打开" in _text(as_user(world.admin).get(f"/admin/contributions/{c.id}/reopen"))
    assert "催报" in _text(as_user(world.admin).get(f"/reminders/cycles/{world.cycle.id}/chase"))


def test_unit_head_words(as_user, factory, db):
    world = factory.world(unit_head_review=True)
    db.session.commit()
    svc.submit_contribution(world.contribution, world.liaison)
    db.session.commit()
    page = _text(as_user(world.unit_head).get(f"/tasks/{world.contribution.id}/unit-review"))
    assert "同意报送" in page and "退回修改" in page and "待单位审核" in page
