"""Every main page renders for the role it is for."""
from fazhi_flow.services import contributions as svc


def test_liaison_pages(world, as_user):
    client = as_user(world.liaison)
    r = client.get("/tasks/")
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert "严格规范执法" in text and "起草中" in text and "牵头" in text
    r = client.get(f"/tasks/{world.contribution.id}")
    assert r.status_code == 200
    assert "保存草稿" in r.get_data(as_text=True)
    assert client.get(f"/tasks/{world.contribution.id}/history").status_code == 200
    assert client.get("/inbox/").status_code == 200


def test_reviewer_pages(world, as_user, db):
    svc.submit_contribution(world.contribution, world.liaison)
    db.session.commit()
    client = as_user(world.reviewer)
    r = client.get("/review/")
    assert r.status_code == 200
    assert "区司法局" in r.get_data(as_text=True)
    r = client.get(f"/review/{world.contribution.id}")
    assert r.status_code == 200
    assert "退回修改" in r.get_data(as_text=True)
