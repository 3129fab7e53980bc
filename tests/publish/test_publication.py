"""Compile, sign-off, publish and correct: versions kept, only approved material published, snapshots
immutable."""
import hashlib
import io

import pytest
from docx import Document

from fazhi_flow.errors import Conflict, DomainError, PermissionDenied
from fazhi_flow.models import Publication, ReportDraftVersion, SectionDraft
from fazhi_flow.publish.pdf import pdf_available
from fazhi_flow.services.diffs import diff_texts
from fazhi_flow.services import compile as svc
from fazhi_flow.services import contributions as contribution_ops
from fazhi_flow.services import cycles as cycle_ops
from fazhi_flow.testing import finish_pdfs


def signed(report, db):
    svc.request_signoff(report.cycle, report.admin)
    svc.sign_report(report.cycle, report.leader, svc.latest_version(report.cycle).number)
    db.session.flush()
    return report


def test_compile_keeps_first_version_from_approved_material(compiling):
    versions = svc.versions(compiling.cycle)
    assert [v.number for v in versions] == [1]
    assert "进入汇总编辑" in versions[0].reason
    assert "（二）优化法治化营商环境。一是提升涉企服务质效" in versions[0].text
    assert "尚未通过审核" not in versions[0].text


def test_section_views_flag_sections_without_approved_material(compiling, db):
    contribution = compiling.contributions[("enforcement", "区司法局")]
    contribution.state = "submitted"   # as if it had never been approved
    db.session.flush()
    views = {v.section.code: v for v in svc.section_views(compiling.cycle)}
    assert views["enforcement"].missing
    assert not views["rules"].missing and not views["measures"].missing
    assert [c.unit.name for c in views["rules"].approved] == ["区司法局", "区人民政府办公室"]
    assert [c.unit.name for c in views["rules"].pending] == ["区发展和改革局"]


def test_save_section_keeps_a_version_and_diff(compiling, db):
    section = compiling.sections["plans"]
    svc.save_section_text(compiling.cycle, section, compiling.admin,
                          "一是压实法治建设第一责任人职责。\n二是提高行政决策的科学性。", expected_version=0)
    db.session.flush()
    draft = db.session.query(SectionDraft).filter_by(section_id=section.id).one()
    assert draft.sources == [{"contribution": compiling.contributions[("plans", "区委依法治区办")].id,
                              "unit": "区委依法治区办", "revision": 1}]
    v1, v2 = svc.versions(compiling.cycle)
    assert v2.reason == "编辑“四、下一年度工作安排”"
    rows = [r for r in diff_texts(v1.text, v2.text) if r.op != "equal"]
    assert rows[0].op == "replace"
    assert rows[0].old_html.endswith("<del>二是提升行政决策质量。三是持续规范行政执法。</del>")
    assert rows[1].op == "insert" and rows[1].new == "二是提高行政决策的科学性。"
    # Saving the same text again keeps no new version.
    svc.save_section_text(compiling.cycle, section, compiling.admin,
                          "一是压实法治建设第一责任人职责。\n二是提高行政决策的科学性。", expected_version=draft.version)
    assert len(svc.versions(compiling.cycle)) == 2


def test_stale_form_is_refused_and_changes_nothing(compiling, db):
    section = compiling.sections["plans"]
    svc.save_section_text(compiling.cycle, section, compiling.admin, "第一次保存。", expected_version=0)
    db.session.commit()
    with pytest.raises(Conflict):
        svc.save_section_text(compiling.cycle, section, compiling.admin, "过时的表单。", expected_version=0)
    db.session.rollback()
    assert db.session.query(SectionDraft).filter_by(section_id=section.id).one().body == "第一次保存。"


def test_only_admins_edit_and_only_while_compiling(compiling, db):
    section = compiling.sections["plans"]
    with pytest.raises(PermissionDenied):
        svc.save_section_text(compiling.cycle, section, compiling.leader, "领导不能改。")
    svc.request_signoff(compiling.cycle, compiling.admin)
    with pytest.raises(DomainError, match="只能在汇总编辑中"):
        svc.save_section_text(compiling.cycle, section, compiling.admin, "待签发时不能改。")


def test_reset_rebuilds_from_material(compiling, db):
    section = compiling.sections["plans"]
    svc.save_section_text(compiling.cycle, section, compiling.admin, "临时改写。")
    svc.reset_section_text(compiling.cycle, section, compiling.admin)
    db.session.flush()
    assert db.session.query(SectionDraft).count() == 0
    versions = svc.versions(compiling.cycle)
    assert versions[-1].text == versions[0].text and len(versions) == 3


def test_return_with_comment_then_sign_latest_version_and_publish(compiling, db):
    cycle = compiling.cycle
    svc.request_signoff(cycle, compiling.admin)
    with pytest.raises(DomainError, match="必须填写意见"):
        svc.return_report(cycle, compiling.leader, "")
    svc.return_report(cycle, compiling.leader, "第三部分请补充原因分析。")
    assert cycle.state == "compiling"
    svc.save_section_text(cycle, compiling.sections["shortcomings"], compiling.admin,
                          "一是部分单位学法形式较为单一。二是基层执法衔接不够顺畅，原因在于培训指导不足。")
    svc.request_signoff(cycle, compiling.admin)
    latest = svc.latest_version(cycle)
    assert latest.number == 2
    with pytest.raises(Conflict, match="第1稿"):
        svc.sign_report(cycle, compiling.leader, 1)
    with pytest.raises(PermissionDenied):
        svc.sign_report(cycle, compiling.admin, 2)
    svc.sign_report(cycle, compiling.leader, 2, comment="同意发布。")
    publication = svc.publish_report(cycle, compiling.admin)
    db.session.commit()

    assert cycle.state == "published"
    assert publication.version == 1 and publication.draft_version_id == latest.id
    assert publication.text == latest.text
    assert "原因在于培训指导不足" in publication.text
    assert publication.verify()
    assert len(publication.sha256) == 64
    doc = Document(io.BytesIO(publication.docx))
    assert doc.paragraphs[0].text == "示例区2024年法治政府建设年度报告"
    assert publication.html.startswith("<!DOCTYPE html>")
    # The PDF is not rendered in the publish request: pending (none without WeasyPrint) until the job.
    assert publication.pdf is None and publication.pdf_sha256 is None
    assert publication.pdf_status == ("pending" if pdf_available() else "none")
    run = finish_pdfs()
    db.session.expire_all()
    publication = db.session.get(Publication, publication.id)
    if pdf_available():
        assert run.done == [publication.id] and publication.pdf_status == "done"
        assert publication.pdf.startswith(b"%PDF") and publication.pdf_sha256 == hashlib.sha256(publication.pdf).hexdigest()
    else:
        assert run.done == [] and publication.pdf_status == "none" and publication.pdf is None
    assert publication.verify()


def test_publish_fired_directly_still_freezes_snapshot(compiling, db):
    signed(compiling, db)
    cycle_ops.publish_cycle(compiling.cycle, compiling.admin)   # e.g. the CLI's transition command
    db.session.flush()
    assert [p.version for p in svc.publications(compiling.cycle)] == [1]


def test_published_snapshot_cannot_be_changed_or_deleted(compiling, db):
    signed(compiling, db)
    publication = svc.publish_report(compiling.cycle, compiling.admin)
    db.session.commit()
    publication.text = "篡改后的内容"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    publication = db.session.get(Publication, publication.id)
    db.session.delete(publication)
    with pytest.raises(RuntimeError, match="cannot be deleted"):
        db.session.flush()
    db.session.rollback()
    version = svc.latest_version(compiling.cycle)
    version.text = "改写历史"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    assert db.session.get(Publication, publication.id).verify()


def test_unapproved_and_later_edited_material_never_reaches_the_snapshot(report, db, factory):
    cycle, admin = report.cycle, report.admin
    jud = report.contributions[("enforcement", "区司法局")]
    liaison = factory.user("liaison", unit=jud.unit, name="司法局联络员")
    cycle_ops.compile_cycle(cycle, admin, force_reason="先行汇总")
    # Collection is reopened; the approved enforcement material is reopened and edited, not resubmitted.
    cycle_ops.reopen_collection(cycle, admin)
    contribution_ops.reopen_contribution(jud, admin, comment="请补充执法人员数量")
    contribution_ops.save_draft(jud, liaison, "一是后来改写但没有再次送审的执法内容。")
    # The pending material of 发改局 is recalled and rewritten, never approved.
    pending = report.contributions[("rules", "区发展和改革局")]
    contribution_ops.recall_contribution(pending, report.liaison)
    contribution_ops.save_draft(pending, report.liaison, "撤回后重新编辑、没有再提交的发改材料。")
    cycle_ops.compile_cycle(cycle, admin, force_reason="仍有材料未通过")
    signed(report, db)
    publication = svc.publish_report(cycle, admin)
    db.session.flush()
    for text in (publication.text, publication.html):
        assert "后来改写但没有再次送审" not in text
        assert "尚未通过审核" not in text and "没有再提交的发改材料" not in text
        assert "落实执法公示和法制审核" not in text   # reopened: no longer approved
    assert "夯实制度根基" in publication.text
    # Changing material after publication does not touch the frozen files.
    before = publication.text_sha256
    jud.body = "发布之后才写的内容。"
    db.session.flush()
    db.session.expire_all()
    again = db.session.get(Publication, publication.id)
    assert again.text_sha256 == before and again.verify() and "发布之后才写" not in again.text


def test_edited_section_with_changed_material_blocks_signoff(report, db, factory):
    cycle, admin = report.cycle, report.admin
    jud = report.contributions[("enforcement", "区司法局")]
    cycle_ops.compile_cycle(cycle, admin, force_reason="先行汇总")
    svc.save_section_text(cycle, report.sections["enforcement"], admin,
                          "一是落实执法公示和法制审核。管理员改写的段落。")
    cycle_ops.reopen_collection(cycle, admin)
    contribution_ops.reopen_contribution(jud, admin, comment="数据需要核实")
    cycle_ops.compile_cycle(cycle, admin, force_reason="先行汇总")
    views = {v.section.code: v for v in svc.section_views(cycle)}
    assert views["enforcement"].stale
    with pytest.raises(DomainError, match="（三）规范公正文明执法"):
        svc.request_signoff(cycle, admin)
    svc.reset_section_text(cycle, report.sections["enforcement"], admin)
    svc.request_signoff(cycle, admin)
    assert cycle.state == "signoff"


def test_correction_publishes_a_new_version_and_keeps_the_old(compiling, db):
    cycle = compiling.cycle
    signed(compiling, db)
    first = svc.publish_report(cycle, compiling.admin)
    db.session.commit()
    with pytest.raises(DomainError, match="没有需要更正"):
        svc.request_correction(cycle, compiling.admin, "无变化")
    section = compiling.sections["enforcement"]
    text = svc.section_views(cycle)[[v.section.code for v in svc.section_views(cycle)].index("enforcement")].text
    svc.save_section_text(cycle, section, compiling.admin, text.replace("3812次", "3821次"))
    with pytest.raises(DomainError, match="更正说明"):
        svc.request_correction(cycle, compiling.admin, "  ")
    with pytest.raises(PermissionDenied):
        svc.request_correction(cycle, compiling.leader, "领导不能直接发布")
    # A correction is signed by the leader like the report; signing publishes it.
    svc.request_correction(cycle, compiling.admin, "涉企检查次数录入有误，更正为3821次。")
    assert cycle.state == "correcting" and len(svc.publications(cycle)) == 1
    svc.sign_report(cycle, compiling.leader, svc.latest_version(cycle).number)
    db.session.commit()
    second = svc.latest_publication(cycle)
    assert [p.version for p in svc.publications(cycle)] == [1, 2]
    assert second.correction_note.startswith("涉企检查次数") and second.is_correction
    assert "3821次" in second.text and "3812次" in first.text
    assert first.verify() and second.verify() and first.text_sha256 != second.text_sha256


def test_export_draft_and_published_versions(compiling, db):
    cycle = compiling.cycle
    content, name = svc.export_report(cycle, "txt")
    # The title already names the region: it is not said twice.
    assert name == "示例区2024年法治政府建设年度报告（草稿）.txt"
    assert content.decode("utf-8").startswith("示例区2024年法治政府建设年度报告\n")
    with pytest.raises(DomainError, match="没有第1版"):
        svc.export_report(cycle, "docx", version=1)
    with pytest.raises(DomainError, match="不支持的格式"):
        svc.export_report(cycle, "rtf")
    signed(compiling, db)
    publication = svc.publish_report(cycle, compiling.admin)
    content, _ = svc.export_report(cycle, "docx", version=1)
    assert content == publication.docx


def test_resolve_cycle_by_id_or_year(compiling, factory, db):
    cycle = compiling.cycle
    assert svc.resolve_cycle(str(cycle.id)) is cycle
    assert svc.resolve_cycle("2024") is cycle
    factory.cycle(year=2024, region="另一区")
    with pytest.raises(DomainError, match="2024年有多份年度报告"):
        svc.resolve_cycle("2024")
    with pytest.raises(DomainError, match="没有2019年"):
        svc.resolve_cycle("2019")
    with pytest.raises(DomainError, match="不是有效的年度报告"):
        svc.resolve_cycle("abc")
    assert db.session.query(ReportDraftVersion).count() >= 1


def test_empty_draft_cannot_be_sent_for_signoff(factory, db):
    world = factory.world(state="compiling")
    world.contribution.state = "draft"
    db.session.flush()
    with pytest.raises(DomainError, match="没有任何正文"):
        svc.request_signoff(world.cycle, world.admin)
    assert world.cycle.state == "compiling"
