"""The compile page's overview of the sections (counts, lengths, problems from SQL, no texts read), the
large-cycle mode in which each section opens on its own page, and that page with its save and reset."""
import re

import pytest
from sqlalchemy import select

from fazhi_flow.models import SectionDraft
from fazhi_flow.publish.merge import approved_text
from fazhi_flow.services import compile as svc
from fazhi_flow.services import contributions as C
from fazhi_flow.services import cycles as cycle_ops
from fazhi_flow.services import figures as F

from .test_bound_numbers import cite
from .test_web import login, page


def summaries_and_views(cycle):
    """{section code: (overview stale, SectionView stale)} and the overview by section code."""
    summaries = {s.section.code: s for s in svc.section_summaries(cycle)}
    views = {v.section.code: v for v in svc.section_views(cycle)}
    return summaries, views


def agree(cycle):
    summaries, views = summaries_and_views(cycle)
    assert summaries.keys() == views.keys()
    for code, view in views.items():
        summary = summaries[code]
        assert (summary.stale, summary.missing, summary.edited) == (view.stale, view.missing, view.edited), code
        assert summary.assigned == len(view.contributions) and summary.approved == len(view.approved), code
        assert summary.material_chars == sum(len(approved_text(c)) for c in view.approved), code
        if view.edited:
            assert summary.draft.chars == len(view.draft.body) and summary.draft.version == view.draft.version
    return summaries


@pytest.fixture()
def cited(report, db, factory):
    return cite(report, db, factory)


def test_the_overview_finds_what_merging_finds_without_reading_texts(cited, db):
    cycle = cited.cycle
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    rules = cited.sections["rules"]
    summaries = agree(cycle)
    assert summaries["rules"].approved >= 1 and not summaries["rules"].stale
    view = next(v for v in svc.section_views(cycle) if v.section.id == rules.id)
    svc.save_section_text(cycle, rules, cited.admin, view.prefill + "\n新增一段编辑后的说明。", expected_version=0)
    summaries = agree(cycle)
    assert summaries["rules"].edited and not summaries["rules"].stale

    # 区司法局's figure is corrected and approved again: 区人民政府办公室's text in "rules" is the same
    # revision, but the number it cites changed, so the edited section is stale.
    cycle_ops.reopen_collection(cycle, cited.admin, comment="补正数据")
    C.reopen_contribution(cited.sfj, cited.admin, comment="请核对柔性执法数字")
    F.save_figures(cited.sfj, cited.sfj_liaison, {"lenient_total": "176", "lenient_no_penalty": "52"})
    C.submit_contribution(cited.sfj, cited.sfj_liaison)
    C.approve_contribution(cited.sfj, cited.reviewer)
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    db.session.expire_all()
    summaries = agree(cycle)
    assert summaries["rules"].stale and [c for c, s in summaries.items() if s.stale] == ["rules"]

    # Rebuilt from the material: nothing stale; a new revision of the edited section's own unit is.
    svc.reset_section_text(cycle, rules, cited.admin)
    view = next(v for v in svc.section_views(cycle) if v.section.id == rules.id)
    svc.save_section_text(cycle, rules, cited.admin, view.prefill + "\n再次编辑。", expected_version=0)
    assert not any(s.stale for s in agree(cycle).values())
    cycle_ops.reopen_collection(cycle, cited.admin, comment="补充材料")
    C.reopen_contribution(cited.gov, cited.admin, comment="请补充")
    C.save_draft(cited.gov, cited.gov_liaison, "三是推动普法宣传走深走实，编印典型案例。")
    C.submit_contribution(cited.gov, cited.gov_liaison)
    C.approve_contribution(cited.gov, cited.reviewer)
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    db.session.expire_all()
    assert agree(cycle)["rules"].stale


@pytest.fixture()
def large(app):
    """Every cycle counts as large: the compile page lists the sections and opens each on its own page."""
    app.config["COMPILE_INLINE_MAX_ITEMS"] = 0
    yield
    app.config.pop("COMPILE_INLINE_MAX_ITEMS")


def test_a_large_cycle_lists_the_sections_and_opens_each_on_its_own_page(cited, db, client, large):
    cycle, rules, duty = cited.cycle, cited.sections["rules"], cited.sections["duty"]
    cited.contributions[("duty", "区人民政府办公室")].state = "returned"
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    db.session.commit()
    admin = login(client, cited.admin)
    html = page(admin.get(f"/compile/{cycle.id}"))
    # No material, no text box: the overview only, each row linking to the section's page.
    assert 'name="body"' not in html and "全区柔性执法175次" not in html and "一是把牢决策法制审查关口" not in html
    assert "点击章节名称打开该章节" in html
    row = html[html.index(f'id="row-{rules.id}"'):]
    row = row[:row.index("</tr>")]
    assert f'href="/compile/{cycle.id}/sections/{rules.id}"' in row
    cells = re.findall(r'<td class="num">(\d+)</td>', row)
    summary = next(s for s in svc.section_summaries(cycle) if s.section.id == rules.id)
    assert cells == [str(summary.assigned), str(summary.approved), str(summary.pending),
                     str(summary.material_chars)]
    assert summary.approved >= 1 and summary.material_chars >= len("三是推动普法宣传走深走实")
    # The missing section is named, linking to its page.
    assert "以下1个章节没有已通过的材料" in html
    notice = html[html.index("以下1个章节没有已通过的材料"):]
    assert f'<a href="/compile/{cycle.id}/sections/{duty.id}">' in notice[:400]

    section = page(admin.get(f"/compile/{cycle.id}/sections/{rules.id}"))
    assert '<span class="bound-number" title="lenient_total">175</span>' in section
    assert "<textarea" in section and "全区柔性执法175次的典型案例" in section and "{{lenient_total}}" not in section
    assert section.count('class="card compile-section') == 1
    form = section[section.index(f'action="/compile/{cycle.id}/sections/{rules.id}?back=section"'):]
    version = re.search(r'name="version"[^>]*value="(\d+)"', form).group(1)
    text = re.search(r"<textarea[^>]*>\n?(.*?)</textarea>", form, re.S).group(1)
    response = admin.post(f"/compile/{cycle.id}/sections/{rules.id}?back=section",
                          data={"body": text.replace("&#34;", '"') + "\n补充一段说明。", "version": version})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/compile/{cycle.id}/sections/{rules.id}")
    draft = db.session.scalar(select(SectionDraft).where(SectionDraft.section_id == rules.id))
    assert draft.body.endswith("补充一段说明。") and "全区柔性执法175次" in draft.body
    html = page(admin.get(f"/compile/{cycle.id}"))
    row = html[html.index(f'id="row-{rules.id}"'):]
    assert f"已编辑，{len(draft.body)}字" in row[:row.index("</tr>")]
    # Reset from the section page returns there too.
    response = admin.post(f"/compile/{cycle.id}/sections/{rules.id}/reset?back=section")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/sections/{rules.id}")
    assert db.session.scalar(select(SectionDraft).where(SectionDraft.section_id == rules.id)) is None


def test_a_section_page_is_for_compilers_of_that_cycle_only(cited, db, client, factory):
    cycle, rules = cited.cycle, cited.sections["rules"]
    cycle_ops.compile_cycle(cycle, cited.admin, force_reason="先行汇总")
    liaison = factory.user("liaison", unit=cited.units["区司法局"])
    db.session.commit()
    assert login(client, liaison).get(f"/compile/{cycle.id}/sections/{rules.id}").status_code == 403
    leader = login(client, cited.leader).get(f"/compile/{cycle.id}/sections/{rules.id}")
    assert leader.status_code == 302 and leader.headers["Location"].endswith(f"/compile/{cycle.id}/signoff")
    admin = login(client, cited.admin)
    assert admin.get(f"/compile/{cycle.id}/sections/999999").status_code == 404
    other = factory.cycle(state="collecting", region="另一区")
    foreign = factory.section(other, "其他章节", code="foreign")
    db.session.commit()
    assert admin.get(f"/compile/{cycle.id}/sections/{foreign.id}").status_code == 404
