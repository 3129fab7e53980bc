"""`fazhi-flow transition request_signoff` is held to the same checks as the 提请签发 button: a draft
with no text (or with numbers nobody approved) never reaches the signing leader from a script."""
from fazhi_flow.models import ReportCycle
from fazhi_flow.services.cycles import compile_cycle


def test_cli_refuses_to_send_an_empty_draft_for_signing(db, factory, runner):
    w = factory.world(state="collecting")
    compile_cycle(w.cycle, w.admin, force_reason="材料未交齐，先行汇总")
    db.session.commit()
    assert w.cycle.state == "compiling"

    out = runner.invoke(args=["fazhi", "transition", "request_signoff", "--user", w.admin.username,
                              "--cycle", str(w.cycle.id)])
    assert out.exit_code == 1, out.output
    assert "合并稿没有任何正文，不能提请签发" in out.output
    db.session.expire_all()
    assert db.session.get(ReportCycle, w.cycle.id).state == "compiling"
