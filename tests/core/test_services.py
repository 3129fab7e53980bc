from fazhi_flow.services import contributions as svc


def test_submit_and_approve(factory, db):
    w = factory.world()
    svc.submit_contribution(w.contribution, w.liaison)
    svc.approve_contribution(w.contribution, w.reviewer)
    db.session.commit()
    assert w.contribution.state == "approved"
    assert [r.number for r in w.contribution.revisions] == [1]
