"""The review page compares the submission with the version the office last decided on.

A submission that the liaison recalled was never reviewed; comparing with it would tell the reviewer
"没有修改" although the text changed since they returned it.
"""
from fazhi_flow.services import contributions as svc


def _page(client, contribution):
    return client.get(f"/review/{contribution.id}").get_data(as_text=True)


def test_recalled_submission_is_not_the_base_of_the_diff(as_user, world, db):
    c, liaison = world.contribution, world.liaison
    svc.save_draft(c, liaison, "第一段原文。")
    svc.submit_contribution(c, liaison)                      # 第1版, returned by the reviewer
    svc.return_contribution(c, world.reviewer, comment="请补充人数。")
    svc.save_draft(c, liaison, "第一段原文，参加86人。")
    svc.submit_contribution(c, liaison)                      # 第2版, recalled before any review
    svc.recall_contribution(c, liaison)
    svc.submit_contribution(c, liaison)                      # 第3版, same text as 第2版
    db.session.commit()
    page = _page(as_user(world.reviewer), c)
    assert "第1版 → 第3版" in page
    assert "没有修改" not in page
    assert "参加86人" in page.split("材料内容")[0]  # the change is shown in the diff, above the text


def test_without_a_decision_the_previous_version_is_the_base(as_user, world, db):
    c, liaison = world.contribution, world.liaison
    svc.save_draft(c, liaison, "第一段。")
    svc.submit_contribution(c, liaison)
    svc.recall_contribution(c, liaison)
    svc.save_draft(c, liaison, "第一段，改过。")
    svc.submit_contribution(c, liaison)
    db.session.commit()
    page = _page(as_user(world.reviewer), c)
    assert "第1版 → 第2版" in page and "改过" in page.split("材料内容")[0]
