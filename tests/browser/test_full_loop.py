"""The whole loop in a real browser: open → draft, attach, submit → return → revise, resubmit →
approve → dashboard; and a liaison of another unit is refused. Saves screenshots of the main pages."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from fazhi_flow.models import Attachment, Contribution
from fazhi_flow.timeutil import local_today

pytestmark = pytest.mark.browser

PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
       b"trailer<</Root 1 0 R>>\n%%EOF\n")

FIRST_DRAFT = ("全年组织行政执法人员培训4期，参训人员共计320人次。\n"
               "推行行政执法公示、执法全过程记录和重大执法决定法制审核制度。")
REVISED = ("全年组织行政执法人员培训4期，参训人员共计320人次。\n"
           "全面推行行政执法三项制度，全年公示执法信息1250条，重大执法决定法制审核86件。\n"
           "开展行政执法案卷评查，抽查案卷120卷，整改问题15个。")


def test_full_loop(factory, db, person, live_server, tmp_path):
    w = factory.world(state="setup")
    w.section.guidance = "请写明本单位规范执法的主要做法和数据。"
    # Deadlines near today, so the pages (and the user guide's screenshots) look like a live cycle.
    w.cycle.due = local_today() + timedelta(days=12)
    w.contribution.body = ""
    db.session.commit()
    cid, cycle_id = w.contribution.id, w.cycle.id
    db.session.commit()  # end the read transaction before the browser writes

    # 1. The admin opens the cycle (征集) through the admin pages.
    admin = person(w.admin)
    page = admin.login()
    page.goto(f"/admin/cycles/{cycle_id}/open")
    admin.shot("admin-open-cycle")
    page.click("button:has-text('确认开始征集')")
    page.wait_for_load_state()
    assert "已开始征集" in page.content()

    # 2. The liaison drafts, attaches evidence and submits.
    liaison = person(w.liaison)
    page = liaison.login()
    assert page.url.endswith("/tasks/")
    assert page.locator("text=严格规范执法").count() >= 1
    liaison.shot("liaison-tasks")
    page.click("tbody a:has-text('填写')")
    page.fill("textarea#body", FIRST_DRAFT)
    evidence = tmp_path / "执法培训签到表.pdf"
    evidence.write_bytes(PDF)
    page.set_input_files("input#file", str(evidence))
    page.click("button:has-text('上传附件')")
    page.wait_for_load_state()
    assert "已上传" in page.content()
    assert page.locator("a:has-text('执法培训签到表.pdf')").count() == 1
    liaison.shot("liaison-editor")
    page.click("button:has-text('提交审核')")
    page.wait_for_url(re.compile(r"/submit$"))
    liaison.shot("liaison-confirm-submit")
    page.click("button:has-text('确认提交审核')")
    page.wait_for_load_state()
    assert "已提交审核" in page.content()

    # 3. The reviewer returns it with a comment on paragraph 2.
    reviewer = person(w.reviewer)
    page = reviewer.login()
    assert page.url.endswith("/review/")
    reviewer.shot("reviewer-queue")
    page.click("tbody a:has-text('审核')")
    page.wait_for_url(re.compile(rf"/review/{cid}$"))
    page.fill("textarea#comment >> nth=1", "请补充执法信息公示条数和法制审核件数。")
    page.select_option("select#paragraph", "2")
    page.click("button.btn-danger:has-text('退回修改')")
    page.wait_for_load_state()
    assert "已退回修改" in page.content()

    # 4. The liaison sees the comment, revises and resubmits.
    page = liaison.page
    page.goto("/tasks/")
    assert "请补充执法信息公示条数" in page.content() and "已退回" in page.content()
    page.click("tbody a:has-text('修改')")
    assert page.locator(".comment:has-text('请补充执法信息公示条数')").count() >= 1
    assert page.locator(".para-ref:has-text('第2段')").count() >= 1
    liaison.shot("liaison-returned")
    page.fill("textarea#body", REVISED)
    page.click("button:has-text('提交审核')")
    page.wait_for_url(re.compile(r"/submit$"))
    page.click("button:has-text('确认提交审核')")
    page.wait_for_load_state()
    assert "已提交审核" in page.content()

    # 5. The reviewer sees what changed and approves.
    page = reviewer.page
    page.goto("/inbox/")
    reviewer.shot("inbox")
    page.goto(f"/review/{cid}")
    assert page.locator(".diff ins").count() >= 1
    assert "第1版 → 第2版" in page.content()
    reviewer.shot("reviewer-diff")
    page.click("button.btn-ok:has-text('通过')")
    page.wait_for_load_state()
    assert "已通过" in page.content()

    # 6. The dashboard shows it approved; so does the liaison's list.
    page = admin.page
    page.goto(f"/dashboard/?cycle={cycle_id}")
    assert page.locator("td.state-approved").count() >= 1
    admin.shot("dashboard")
    liaison.page.goto("/tasks/")
    assert liaison.page.locator(".badge.state-approved").count() == 1

    # 7. A liaison of another unit is refused, for the material and for its evidence.
    db.session.expire_all()
    contribution = db.session.get(Contribution, cid)
    assert contribution.state == "approved" and len(contribution.revisions) == 2
    attachment_id = db.session.scalar(select(Attachment.id).where(Attachment.contribution_id == cid))
    db.session.commit()
    outsider = person(w.other_liaison)
    page = outsider.login()
    response = page.goto(f"/tasks/{cid}")
    assert response.status == 403 and "没有权限" in page.content()
    assert REVISED.splitlines()[1] not in page.content()
    outsider.shot("refused")
    response = page.request.get(f"/tasks/attachments/{attachment_id}")
    assert response.status == 403


def test_login_page_and_wrong_password(factory, db, person):
    w = factory.world()
    db.session.commit()
    visitor = person(w.liaison, password="wrong-password")
    page = visitor.login()
    assert "用户名或密码不正确" in page.content()
    page.fill("#username", "")
    page.fill("#password", "")
    visitor.shot("login")
