"""Bound numbers in the merged report: ``{{code}}`` is printed from the approved value in the compile
page, the pre-filled text, every export and the published snapshot — never a later, unapproved value."""
import io
import subprocess

import pytest
from docx import Document
from sqlalchemy import select

from fazhi_flow.errors import DomainError
from fazhi_flow.models import SectionDraft
from fazhi_flow.models.indicator import IndicatorValue
from fazhi_flow.publish.pdf import pdf_available
from fazhi_flow.services import compile as svc
from fazhi_flow.services import contributions as C
from fazhi_flow.services import cycles as cycle_ops
from fazhi_flow.services import figures as F
from fazhi_flow.testing import finish_pdfs

# Written for these tests; the figures follow a published district report.
ENFORCEMENT = ("一是落实柔性执法清单。全年柔性执法共{{lenient_total}}次，不予处罚的有{{lenient_no_penalty}}次。\n"
               "二是推行涉企检查扫码入企，扫码率达到100%。")
RULES_SUPPORT = "三是推动普法宣传走深走实。全区柔性执法{{lenient_total}}次的典型案例已编印成册，组织宣讲活动500余场次。"


def docx_text(data: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)


def cite(report, db, factory):
    """区司法局 enters two figures and cites them; 区人民政府办公室 cites one of them in another section."""
    cycle, admin = report.cycle, report.admin
    section = report.sections["enforcement"]
    for code, name in (("lenient_total", "涉企柔性执法"), ("lenient_no_penalty", "不予处罚")):
        F.define_indicator(cycle, admin, section, {"code": code, "name": name, "measure": "次", "type": "integer"})
    F.define_indicator(cycle, admin, section, {"code": "fines_waived", "name": "减免罚款", "measure": "万元",
                                              "type": "decimal"})
    sfj = report.contributions[("enforcement", "区司法局")]
    gov = report.contributions[("rules", "区人民政府办公室")]
    report.sfj_liaison = factory.user("liaison", unit=report.units["区司法局"], name="司法局联络员")
    report.gov_liaison = factory.user("liaison", unit=report.units["区人民政府办公室"], name="政府办联络员")
    for contribution, liaison, body, values in (
            (sfj, report.sfj_liaison, ENFORCEMENT, {"lenient_total": "175", "lenient_no_penalty": "52"}),
            (gov, report.gov_liaison, RULES_SUPPORT, None)):
        contribution.state = "draft"
        db.session.flush()
        C.save_draft(contribution, liaison, body)
        if values:
            F.save_figures(contribution, liaison, values)
        C.submit_contribution(contribution, liaison)
        C.approve_contribution(contribution, report.reviewer)
    db.session.flush()
    report.sfj, report.gov = sfj, gov
    return report


@pytest.fixture()
def cited(report, db, factory):
    return cite(report, db, factory)


def publish(report, db):
    svc.request_signoff(report.cycle, report.admin)
    svc.sign_report(report.cycle, report.leader, svc.latest_version(report.cycle).number)
    publication = svc.publish_report(report.cycle, report.admin)
    db.session.flush()
    return publication


def test_cited_values_are_printed_in_the_draft_every_export_and_the_snapshot(cited, db):
    cycle = cited.cycle
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="发改局材料仍在审核，先行汇总")
    views = {v.section.code: v for v in svc.section_views(cycle)}
    assert "全年柔性执法共175次，不予处罚的有52次。" in views["enforcement"].prefill
    assert "全区柔性执法175次的典型案例" in views["rules"].prefill
    side = "".join(str(p) for p in views["enforcement"].material[cited.sfj.id])
    assert '<span class="bound-number" title="lenient_total">175</span>' in side

    sentence = "全年柔性执法共175次，不予处罚的有52次。"
    for fmt in ("txt", "html"):
        content = svc.render_format(svc.current_document(cycle), fmt).decode("utf-8")
        assert sentence in content and "{{" not in content and "柔性执法{" not in content
    assert sentence in docx_text(svc.render_format(svc.current_document(cycle), "docx"))
    assert sentence in svc.latest_version(cycle).text

    publication = publish(cited, db)
    assert sentence in publication.text and "全区柔性执法175次" in publication.text
    assert sentence in publication.html and "{{" not in publication.text + publication.html
    assert sentence in docx_text(publication.docx)
    if pdf_available():  # the PDF tests say why when it is not
        # Rendered by the job after the publish request, from the snapshot.
        assert finish_pdfs().done == [publication.id]
        db.session.refresh(publication)
        text = subprocess.run(["pdftotext", "-", "-"], input=publication.pdf, capture_output=True,
                              check=True).stdout.decode("utf-8")
        assert "175" in "".join(text.split()) and "{{" not in text


def test_a_value_changed_after_approval_never_reaches_the_snapshot(cited, db):
    cycle = cited.cycle
    # The unit's material is reopened and the figure edited, but not approved again.
    C.reopen_contribution(cited.sfj, cited.admin, comment="请核对柔性执法数字")
    F.save_figures(cited.sfj, cited.sfj_liaison, {"lenient_total": "180"})
    db.session.flush()
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="司法局材料重新核对中，先行汇总")
    svc.set_appendix(cycle, cited.admin, True)

    document = svc.current_document(cycle)
    text = svc.render_format(document, "txt").decode("utf-8")
    assert "全区柔性执法175次的典型案例" in text and "180" not in text
    assert "全年柔性执法共" not in text        # the reopened material itself is not merged
    assert {r["code"]: r["value"] for r in document.appendix}["lenient_total"] == "175"

    changes = svc.figure_changes(cycle)
    assert [(c.indicator.code, c.old, c.new) for c in changes] == [("lenient_total", 175, 180)]
    assert any("全区柔性执法175次" in before and "全区柔性执法180次" in after
               for _, before, after in changes[0].sentences)

    publication = publish(cited, db)
    assert "全区柔性执法175次" in publication.text and "180" not in publication.text
    assert "180" not in docx_text(publication.docx)
    table = Document(io.BytesIO(publication.docx)).tables[0]
    assert [c.text for c in table.rows[1].cells][2:] == ["涉企柔性执法", "次", "175"]


def test_approved_revision_figures_win_over_a_later_edit_of_the_value(cited, db):
    """Even if a stored value changes behind an approved contribution, the approved figures print."""
    row = db.session.scalar(select(IndicatorValue).join(IndicatorValue.indicator)
                            .where(IndicatorValue.contribution_id == cited.sfj.id)
                            .where(IndicatorValue.indicator.has(code="lenient_no_penalty")))
    row.value = 60
    db.session.flush()
    cycle_ops.compile_cycle(cited.cycle, cited.admin, force_reason="先行汇总")
    text = svc.render_format(svc.current_document(cited.cycle), "txt").decode("utf-8")
    assert "不予处罚的有52次" in text and "60次" not in text


def test_a_re_approved_number_marks_the_edited_section_stale(cited, db):
    cycle = cited.cycle
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    rules = cited.sections["rules"]
    view = next(v for v in svc.section_views(cycle) if v.section.id == rules.id)
    svc.save_section_text(cycle, rules, cited.admin, view.prefill + "\n新增一段编辑后的说明。", expected_version=0)
    draft = db.session.scalar(select(SectionDraft).where(SectionDraft.section_id == rules.id))
    assert "全区柔性执法175次" in draft.body and "{{" not in draft.body   # plain prose is stored
    assert {"lenient_total": "175"} in [s.get("figures") for s in draft.sources]
    assert not any(v.stale for v in svc.section_views(cycle))

    # Back to collecting: 区司法局 corrects the figure and it is approved again.
    cycle_ops.reopen_collection(cycle, cited.admin, comment="补正数据")
    C.reopen_contribution(cited.sfj, cited.admin, comment="请核对柔性执法数字")
    F.save_figures(cited.sfj, cited.sfj_liaison, {"lenient_total": "176", "lenient_no_penalty": "52"})
    C.submit_contribution(cited.sfj, cited.sfj_liaison)
    C.approve_contribution(cited.sfj, cited.reviewer)
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    stale = [v.section.code for v in svc.section_views(cycle) if v.stale]
    assert "rules" in stale   # its own material did not change, but the number it cites did
    with pytest.raises(DomainError, match="重新生成"):
        svc.request_signoff(cycle, cited.admin)
    svc.reset_section_text(cycle, rules, cited.admin)
    assert "全区柔性执法176次" in svc.render_format(svc.current_document(cycle), "txt").decode("utf-8")


def test_compile_page_shows_values_changed_after_approval(cited, db, client):
    from .test_web import login, page

    C.reopen_contribution(cited.sfj, cited.admin, comment="请核对柔性执法数字")
    F.save_figures(cited.sfj, cited.sfj_liaison, {"lenient_total": "180"})
    cycle_ops.compile_cycle(cited.cycle, cited.admin, force_reason="先行汇总")
    db.session.commit()
    html = page(login(client, cited.admin).get(f"/compile/{cited.cycle.id}"))
    box = html[html.index('id="figure-changes"'):]
    box = box[:box.index("</ul>\n</div>")]
    assert "审核通过后修改的数值（1项）" in box
    assert "“涉企柔性执法”审核通过时为 <span class=\"old\">175次</span>，现为 <span class=\"new\">180次</span>" in box
    assert "通过时：全区柔性执法175次的典型案例" in box and "修改后：全区柔性执法180次的典型案例" in box
    assert "通过时：全年柔性执法共175次，不予处罚的有52次。" in box
    # The side-by-side material and the editable merged text show the approved number.
    rules = html[html.index(f'id="s{cited.sections["rules"].id}"'):]
    assert '<span class="bound-number" title="lenient_total">175</span>' in rules
    assert "全区柔性执法175次的典型案例" in rules and "{{lenient_total}}" not in html



def test_a_citation_without_an_approved_value_cannot_be_signed(cited, db):
    cycle = cited.cycle
    # 区人民政府办公室 cites a figure that nobody has had approved.
    cited.gov.state = "draft"
    db.session.flush()
    C.save_draft(cited.gov, cited.gov_liaison, "全区减免罚款{{fines_waived}}万元。")
    C.submit_contribution(cited.gov, cited.gov_liaison)
    C.approve_contribution(cited.gov, cited.reviewer)
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    text = svc.render_format(svc.current_document(cycle), "txt").decode("utf-8")
    assert "全区减免罚款【减免罚款：未填报】万元。" in text
    with pytest.raises(DomainError, match="后再提请签发：【减免罚款：未填报】"):
        svc.request_signoff(cycle, cited.admin)
    assert cycle.state == "compiling"
