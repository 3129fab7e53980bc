"""Section filters list sections as the outline reads (（一）（二）（三）…), not in string order."""
import re

from fazhi_flow.services import contributions as svc


def test_review_queue_section_filter_in_outline_order(as_user, world, factory, db):
    top = factory.section(world.cycle, "主要举措和成效", reviewers=[world.reviewer], position=0)
    # As strings, 三 (U+4E09) sorts before 二 (U+4E8C) and 十 after 四: （一）（三）（二）…
    titles = ["甲项", "乙项", "丙项", "丁项", "戊项", "己项", "庚项", "辛项", "壬项", "癸项", "子项"]
    for position, title in enumerate(titles):
        section = factory.section(world.cycle, title, parent=top, position=position)
        contribution = factory.contribution(factory.assignment(section, world.unit))
        svc.submit_contribution(contribution, world.liaison)
    db.session.commit()
    page = as_user(world.reviewer).get("/review/").get_data(as_text=True)
    select = page.split('id="f-section"')[1].split("</select>")[0]
    shown = re.findall(r"（[一二三四五六七八九十]+）(.)项", select)
    assert shown == [t[0] for t in titles]
