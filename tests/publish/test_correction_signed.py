"""A correction (更正) is signed: the admin asks with a note, the leader reads the note and the diff
against the published version and signs (publishing the next version) or returns it. Earlier
versions stay public throughout; the CLI follows the same path."""
import pytest

from fazhi_flow.errors import Conflict, DomainError
from fazhi_flow.models import Publication, ReportCycle
from fazhi_flow.services import compile as svc
from fazhi_flow.testing import login
from fazhi_flow.workflow.diagrams import cycle_diagram

NOTE = "第二部分涉企检查次数录入有误，由3812次更正为3821次。"


def _published(report, db):
    """The report published as version 1 and committed."""
    svc.request_signoff(report.cycle, report.admin)
    svc.sign_report(report.cycle, report.leader, svc.latest_version(report.cycle).number)
    svc.publish_report(report.cycle, report.admin)
    db.session.commit()
    return report


def _edit_enforcement(report, old="3812次", new="3821次"):
    view = next(v for v in svc.section_views(report.cycle) if v.section.code == "enforcement")
    svc.save_section_text(report.cycle, view.section, report.admin, view.text.replace(old, new))


def _seen(report, form=False):
    """The versions the admin's page showed, as the service takes them (or as the form posts them)."""
    seen = {"published": svc.latest_publication(report.cycle).version,
            "draft": svc.latest_version(report.cycle).number}
    return seen if form else {"seen_publication": seen["published"], "seen_draft": seen["draft"]}


@pytest.fixture()
def published(compiling, db, client):
    report = _published(compiling, db)
    report.client = client
    return report


def test_request_does_not_publish_and_signing_publishes_the_next_version(published, db):
    cycle = published.cycle
    _edit_enforcement(published)
    svc.request_correction(cycle, published.admin, NOTE, **_seen(published))
    db.session.commit()
    assert cycle.state == "correcting"
    assert [p.version for p in svc.publications(cycle)] == [1]
    # Nothing can be edited while the leader reads the correction: what is signed is what was read.
    view = next(v for v in svc.section_views(cycle) if v.section.code == "plans")
    with pytest.raises(DomainError, match="只能在汇总编辑中"):
        svc.save_section_text(cycle, view.section, published.admin, "改动")
    with pytest.raises(Conflict, match="更正已提请签发"):
        svc.request_correction(cycle, published.admin, NOTE)

    svc.sign_report(cycle, published.leader, svc.latest_version(cycle).number, comment="同意更正")
    db.session.commit()
    first, second = svc.publications(cycle)
    assert cycle.state == "published" and second.version == 2
    assert second.correction_note == NOTE and "3821次" in second.text and "3812次" in first.text
    assert second.draft_version_id == svc.latest_version(cycle).id
    assert first.verify() and second.verify()


def test_leader_returns_the_correction_and_nothing_is_published(published, db):
    cycle = published.cycle
    _edit_enforcement(published)
    svc.request_correction(cycle, published.admin, NOTE, **_seen(published))
    with pytest.raises(DomainError, match="必须填写意见"):
        svc.return_report(cycle, published.leader, " ")
    svc.return_report(cycle, published.leader, "请同时核对扫码率的表述。")
    db.session.commit()
    assert cycle.state == "published" and len(svc.publications(cycle)) == 1
    # The admin edits again and asks once more; the note of the new request is the one published.
    _edit_enforcement(published, "扫码率达到100%", "扫码率达到99.8%")
    svc.request_correction(cycle, published.admin, NOTE + "扫码率同步更正。", **_seen(published))
    svc.sign_report(cycle, published.leader, svc.latest_version(cycle).number)
    db.session.commit()
    latest = svc.latest_publication(cycle)
    assert latest.version == 2 and latest.correction_note.endswith("扫码率同步更正。")
    assert "99.8%" in latest.text and "3821次" in latest.text


def test_a_form_loaded_before_a_newer_version_is_refused(published, factory, db):
    cycle = published.cycle
    _edit_enforcement(published)
    stale = _seen(published)
    # Another admin saves an edit after this admin's page was loaded: the draft they checked is old.
    _edit_enforcement(published, "扫码率达到100%", "扫码率达到99.8%")
    with pytest.raises(Conflict, match="合并稿已有新的修改"):
        svc.request_correction(cycle, published.admin, NOTE, **stale)
    svc.request_correction(cycle, published.admin, NOTE, **_seen(published))
    svc.sign_report(cycle, published.leader, svc.latest_version(cycle).number)
    db.session.commit()
    _edit_enforcement(published, "3821次", "3822次")
    with pytest.raises(Conflict, match="已有新版本（第2版）"):
        svc.request_correction(cycle, published.admin, NOTE, **stale)
    db.session.rollback()
    assert cycle.state == "published" and len(svc.publications(cycle)) == 2


def test_pages_show_the_leader_note_diff_and_then_the_hashes(published, db):
    cycle, client = published.cycle, published.client
    login(client, published.admin)
    html = client.get(f"/compile/{cycle.id}/correction").get_data(as_text=True)
    assert "合并稿与当前发布版本相同" in html and "提请签发更正" in html
    _edit_enforcement(published)
    db.session.commit()
    seen = _seen(published, form=True)
    # A refusal shows the page again with the note as typed.
    response = client.post(f"/compile/{cycle.id}/correction", data={"note": NOTE, **seen, "draft": 1})
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "合并稿已有新的修改" in html and NOTE in html
    response = client.post(f"/compile/{cycle.id}/correction", data={"note": NOTE, **seen})
    assert response.status_code == 303
    assert "等待签发领导审阅" in client.get(f"/compile/{cycle.id}").get_data(as_text=True)
    # The first version stays public while the correction is pending.
    client.post("/logout")
    public = client.get("/reports/").get_data(as_text=True)
    assert "第1版" in public and "第2版" not in public

    login(client, published.leader)
    html = client.get(f"/compile/{cycle.id}/signoff").get_data(as_text=True)
    assert "更正说明：</strong>" + NOTE in html
    assert "与已发布的第1版相比" in html and "修改1段" in html
    assert "3821次" in html and "原文：" in html and "3812次" in html
    assert "签发更正" in html
    response = client.post(f"/compile/{cycle.id}/sign", data={"version": seen["draft"]})
    assert response.status_code == 303
    second = svc.latest_publication(cycle)
    html = client.get(f"/compile/{cycle.id}/signoff").get_data(as_text=True)
    assert second.version == 2 and "已签发更正，第2版已发布" in html
    for fmt in ("txt", "html", "docx"):
        assert second.digest(fmt) in html
    # The same form sent again signs nothing more.
    response = client.post(f"/compile/{cycle.id}/sign", data={"version": seen["draft"]})
    assert response.status_code == 409 and "没有等待签发的稿件" in response.get_data(as_text=True)
    assert db.session.query(Publication).filter_by(cycle_id=cycle.id).count() == 2


def test_no_correction_before_publication(compiling, db, client):
    db.session.commit()
    login(client, compiling.admin)
    html = client.get(f"/compile/{compiling.cycle.id}/correction").get_data(as_text=True)
    assert "报告尚未发布" in html and "提请签发更正</button>" not in html
    response = client.post(f"/compile/{compiling.cycle.id}/correction",
                           data={"note": NOTE, "published": 1, "draft": 1})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "只有已发布的年度报告才能更正" in html
    assert db.session.get(ReportCycle, compiling.cycle.id).state == "compiling"


def test_only_the_leader_signs_a_correction(published, db):
    cycle, client = published.cycle, published.client
    _edit_enforcement(published)
    svc.request_correction(cycle, published.admin, NOTE)
    db.session.commit()
    login(client, published.admin)
    assert client.post(f"/compile/{cycle.id}/sign", data={"version": 1}).status_code == 403
    assert len(svc.publications(cycle)) == 1 and cycle.state == "correcting"


def test_cli_follows_the_same_path(published, db, runner):
    cycle = published.cycle
    _edit_enforcement(published)
    db.session.commit()

    def transition(user, event, *extra):
        return runner.invoke(args=["fazhi", "transition", event, "--user", user.username,
                                   "--cycle", str(cycle.id), *extra])

    out = transition(published.admin, "request_correction")
    assert out.exit_code == 1 and "必须填写" in out.output
    out = transition(published.leader, "request_correction", "--comment", NOTE)
    assert out.exit_code == 1 and "只有管理员" in out.output
    out = transition(published.admin, "request_correction", "--comment", NOTE)
    assert out.exit_code == 0, out.output
    assert "更正待签发" in out.output
    out = transition(published.admin, "sign")
    assert out.exit_code == 1, out.output
    out = transition(published.leader, "sign")
    assert out.exit_code == 0, out.output
    db.session.expire_all()
    assert db.session.get(ReportCycle, cycle.id).state == "published"
    assert [(p.version, p.correction_note) for p in svc.publications(cycle)] == [(1, None), (2, NOTE)]


def test_the_diagram_shows_the_correction_path():
    diagram = cycle_diagram()
    assert "correcting: correcting 更正待签发" in diagram
    assert "published --> correcting: request_correction 提请签发更正（管理员，须填意见）" in diagram
    assert "correcting --> published: sign 签发（签发领导）" in diagram
    assert "correcting --> published: return 退回修改（签发领导，须填意见）" in diagram
