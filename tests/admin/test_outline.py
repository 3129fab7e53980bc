"""Outline editing: positions stay dense, numbering follows, refusals change nothing."""
import pytest
from sqlalchemy import select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import AuditEvent, Section
from fazhi_flow.services import outline as svc


def tree(db, cycle):
    """[(depth, title, position)] in reading order, straight from the database."""
    db.session.expire_all()
    return [(n.depth, n.section.title, n.section.position) for n in svc.load_outline(cycle)]


def positions_dense(db, cycle):
    rows = db.session.execute(select(Section.parent_id, Section.position).where(Section.cycle_id == cycle.id)).all()
    groups = {}
    for parent, pos in rows:
        groups.setdefault(parent, []).append(pos)
    return all(sorted(v) == list(range(len(v))) for v in groups.values())


@pytest.fixture()
def outline(factory, db):
    admin = factory.user("admin")
    cycle = factory.cycle()
    a = svc.add_section(cycle, admin, "甲")
    b = svc.add_section(cycle, admin, "乙")
    c = svc.add_section(cycle, admin, "丙")
    db.session.commit()
    return admin, cycle, a, b, c


def test_add_move_indent_outdent_keep_positions_dense(outline, db):
    admin, cycle, a, b, c = outline
    assert tree(db, cycle) == [(1, "甲", 0), (1, "乙", 1), (1, "丙", 2)]
    svc.move_section(c, admin, "up")
    assert tree(db, cycle) == [(1, "甲", 0), (1, "丙", 1), (1, "乙", 2)]
    svc.indent_section(c, admin)  # 丙 becomes the last child of 甲
    assert tree(db, cycle) == [(1, "甲", 0), (2, "丙", 0), (1, "乙", 1)]
    svc.indent_section(b, admin)  # 乙 joins 甲 after 丙
    assert tree(db, cycle) == [(1, "甲", 0), (2, "丙", 0), (2, "乙", 1)]
    svc.move_section(b, admin, "up")
    assert tree(db, cycle) == [(1, "甲", 0), (2, "乙", 0), (2, "丙", 1)]
    svc.outdent_section(b, admin)  # 乙 goes right after 甲; 丙 stays under 甲
    assert tree(db, cycle) == [(1, "甲", 0), (2, "丙", 0), (1, "乙", 1)]
    assert positions_dense(db, cycle)
    nodes = svc.load_outline(cycle)
    assert [n.numbered_title for n in nodes] == ["一、甲", "（一）丙", "二、乙"]
    assert nodes[1].path_label == "一、甲 › （一）丙" and nodes[1].short_number == "一（一）"
    actions = {e.action for e in db.session.scalars(select(AuditEvent))}
    assert {"section.add", "section.move", "section.indent", "section.outdent"} <= actions


def test_numbering_skips_a_section_without_heading(factory, db):
    admin = factory.user("admin")
    cycle = factory.cycle()
    svc.add_section(cycle, admin, "")
    svc.add_section(cycle, admin, "主要举措")
    assert [n.numbered_title for n in svc.load_outline(cycle)] == ["（开篇段落）", "一、主要举措"]


def test_refused_moves_change_nothing(outline, db):
    admin, cycle, a, b, c = outline
    before = tree(db, cycle)
    for call, message in [(lambda: svc.move_section(a, admin, "up"), "最前面"),
                          (lambda: svc.move_section(c, admin, "down"), "最后面"),
                          (lambda: svc.indent_section(a, admin), "不能降级"),
                          (lambda: svc.outdent_section(a, admin), "不能再升级")]:
        with pytest.raises(DomainError, match=message):
            call()
        db.session.rollback()
    assert tree(db, cycle) == before


def test_depth_is_limited_to_four_levels(factory, db):
    admin = factory.user("admin")
    cycle = factory.cycle()
    parent = None
    for level in range(4):
        parent = svc.add_section(cycle, admin, f"第{level + 1}级", parent=parent)
    with pytest.raises(DomainError, match="最多4级"):
        svc.add_section(cycle, admin, "第5级", parent=parent)


def test_update_validates_and_records(outline, db):
    admin, cycle, a, b, c = outline
    svc.update_section(a, admin, "依法全面履行政府职能", "写权责清单。", 800, True, None)
    db.session.commit()
    assert (a.title, a.guidance, a.word_limit, a.run_in) == ("依法全面履行政府职能", "写权责清单。", 800, True)
    with pytest.raises(DomainError, match="过长"):
        svc.update_section(a, admin, "长" * 301, None, None)
    with pytest.raises(DomainError, match="字数上限"):
        svc.update_section(a, admin, "甲", None, 0)
    db.session.rollback()
    assert a.title == "依法全面履行政府职能"


def test_delete_removes_subtree_and_renumbers(outline, factory, db):
    admin, cycle, a, b, c = outline
    child = svc.add_section(cycle, admin, "子", parent=b)
    factory.assignment(child, factory.unit())
    db.session.commit()
    svc.delete_section(b, admin)
    db.session.commit()
    assert tree(db, cycle) == [(1, "甲", 0), (1, "丙", 1)]
    assert db.session.get(Section, child.id) is None


def test_delete_refused_when_a_unit_has_written(outline, factory, db):
    admin, cycle, a, b, c = outline
    child = svc.add_section(cycle, admin, "子", parent=b)
    factory.contribution(factory.assignment(child, factory.unit()), body="已经写了一段。")
    db.session.commit()
    with pytest.raises(DomainError, match="已有1份单位材料"):
        svc.delete_section(b, admin)
    db.session.rollback()
    assert db.session.get(Section, b.id) is not None


def test_outline_is_frozen_after_collection(factory, db):
    admin = factory.user("admin")
    cycle = factory.cycle(state="compiling")
    section = factory.section(cycle, "甲")
    with pytest.raises(DomainError, match="筹备中或征集中"):
        svc.add_section(cycle, admin, "乙")
    with pytest.raises(DomainError, match="筹备中或征集中"):
        svc.update_section(section, admin, "改名", None, None)
