"""``fazhi-flow export CYCLE --format … -o FILE [--version N]``."""
import io
import sys

from docx import Document


def test_export_draft_docx_by_id_and_txt_by_year(compiling, db, runner, tmp_path):
    db.session.commit()
    out = tmp_path / "draft.docx"
    result = runner.invoke(args=["fazhi", "export", str(compiling.cycle.id), "--format", "docx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "当前合并稿" in result.output
    assert Document(io.BytesIO(out.read_bytes())).paragraphs[0].text == "示例区2024年法治政府建设年度报告"
    txt = tmp_path / "draft.txt"
    result = runner.invoke(args=["fazhi", "export", "2024", "--format", "txt", "-o", str(txt)])
    assert result.exit_code == 0, result.output
    assert "（一）夯实制度根基，提升依法决策水平。" in txt.read_text(encoding="utf-8")


def test_export_published_version(compiling, db, runner, tmp_path):
    from fazhi_flow.services import compile as svc

    svc.request_signoff(compiling.cycle, compiling.admin)
    svc.sign_report(compiling.cycle, compiling.leader, None)
    publication = svc.publish_report(compiling.cycle, compiling.admin)
    db.session.commit()
    out = tmp_path / "v1.html"
    result = runner.invoke(args=["fazhi", "export", str(compiling.cycle.id), "--format", "html",
                                 "-o", str(out), "--version", "1"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == publication.html
    result = runner.invoke(args=["fazhi", "export", str(compiling.cycle.id), "--format", "html",
                                 "-o", str(tmp_path / "v9.html"), "--version", "9"])
    assert result.exit_code == 1 and "没有第9版" in result.output
    assert not (tmp_path / "v9.html").exists()


def test_export_errors_are_clear(compiling, db, runner, tmp_path, monkeypatch):
    db.session.commit()
    result = runner.invoke(args=["fazhi", "export", "1999", "--format", "txt", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "找不到年度报告" in result.output
    result = runner.invoke(args=["fazhi", "export", str(compiling.cycle.id), "--format", "rtf", "-o", "x"])
    assert result.exit_code == 2
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    result = runner.invoke(args=["fazhi", "export", str(compiling.cycle.id), "--format", "pdf",
                                 "-o", str(tmp_path / "r.pdf")])
    assert result.exit_code == 1 and "pip install weasyprint" in result.output
    assert not (tmp_path / "r.pdf").exists()
