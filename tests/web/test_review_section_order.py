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


def test_review_queue_labels_are_each_sections_own_path_label(as_user, world, factory, db):
    """Rows and filter choices name sections as ``Section.path_label`` does, section by section
    (the page numbers a whole outline at once), untitled opening paragraphs and nesting included."""
    import html as _html

    from fazhi_flow.models import Section

    top = factory.section(world.cycle, "主要举措和成效", reviewers=[world.reviewer], position=0)
    factory.section(world.cycle, "", parent=top, position=0)  # an untitled opening paragraph
    middle = factory.section(world.cycle, "甲项", parent=top, position=1)
    sections = [factory.section(world.cycle, "", parent=top, position=2),
                factory.section(world.cycle, "乙项", parent=top, position=3),
                factory.section(world.cycle, "子目", parent=middle, position=0)]
    for section in sections:
        contribution = factory.contribution(factory.assignment(section, world.unit))
        svc.submit_contribution(contribution, world.liaison)
    db.session.commit()
    page = as_user(world.reviewer).get("/review/").get_data(as_text=True)
    db.session.expire_all()
    expected = {s.id: db.session.get(Section, s.id).path_label for s in sections}
    select = page.split('id="f-section"')[1].split("</select>")[0]
    options = {int(v): _html.unescape(t).strip()
               for v, t in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', select)}
    assert options == expected
    table = page.split("<table")[1]
    shown = sorted(_html.unescape(t) for t in re.findall(r"<td>([^<]*)(?:<br>|</td>)", table)
                   if t.startswith("一、"))
    assert shown == sorted(expected.values())
