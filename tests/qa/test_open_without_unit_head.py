"""When material must pass the unit head, opening the cycle names the units that have none.

Their 提交审核 would wait in 待单位审核 with nobody able to approve it.
"""


def test_open_page_names_units_without_a_unit_head(as_user, factory, db):
    w = factory.world(state="setup", unit_head_review=True)
    lonely = factory.unit("区无负责人局", code="wfzr")
    factory.user("liaison", unit=lonely)
    factory.assignment(w.section, lonely, role="support")
    db.session.commit()
    page = as_user(w.admin).get(f"/admin/cycles/{w.cycle.id}/open").get_data(as_text=True)
    # One warning line per unit without a unit head: it names the unit and the reason.
    warnings = [line for line in page.split("<li>") if "没有启用的单位负责人" in line]
    assert any("区无负责人局" in line for line in warnings)
    assert not any("区司法局" in line for line in warnings)  # it has a unit head


def test_no_unit_head_warning_when_the_cycle_does_not_need_one(as_user, factory, db):
    w = factory.world(state="setup", unit_head_review=False)
    lonely = factory.unit("区无负责人局", code="wfzr")
    factory.user("liaison", unit=lonely)
    factory.assignment(w.section, lonely, role="support")
    db.session.commit()
    page = as_user(w.admin).get(f"/admin/cycles/{w.cycle.id}/open").get_data(as_text=True)
    # The unit is still listed with its past due date, but not as lacking a unit head.
    assert "没有启用的单位负责人" not in page and "暂不能开始征集" not in page
