"""ReportCycle.path_labels(): every section's label from one walk equals Section.path_label."""
from fazhi_flow.models import ReportCycle


def test_labels_of_one_walk_equal_each_sections_own(factory, db):
    cycle = factory.cycle(state="collecting")
    opening = factory.section(cycle, None, position=0)  # an opening paragraph: no heading
    tops = [factory.section(cycle, f"第{i}部分", position=i) for i in range(1, 13)]
    for t_index, top in enumerate(tops[:3]):
        factory.section(cycle, None, parent=top, position=0)  # untitled first child: not numbered
        for i in range(1, 12):
            mid = factory.section(cycle, f"事项{t_index}-{i}", parent=top, position=i)
            if i in (2, 11):
                for j in range(1, 4):
                    leaf = factory.section(cycle, f"小项{j}", parent=mid, position=j)
                    factory.section(cycle, f"细项{j}", parent=leaf, position=0)
    db.session.commit()
    db.session.expire_all()
    cycle = db.session.get(ReportCycle, cycle.id)
    labels = cycle.path_labels()
    expected = {s.id: s.path_label for s in cycle.sections}
    assert labels == expected
    assert labels[opening.id] == "（开篇段落）"
    assert labels[tops[11].id] == "十二、第12部分"
    assert len(labels) == len(cycle.sections) == 85
