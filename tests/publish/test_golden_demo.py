"""Golden test of the demo report: the merged text of the shipped demo cycle and its material.

When the demo data changes on purpose, regenerate the expected file with
``FAZHI_UPDATE_GOLDEN=1 python -m pytest tests/publish/test_golden_demo.py`` and review the diff.
"""
import os
from datetime import date
from pathlib import Path

from fazhi_flow.publish.merge import assemble
from fazhi_flow.publish.text import render_text

GOLDEN = Path(__file__).parent / "golden" / "demo_report.txt"


def test_demo_report_merged_text(db, monkeypatch):
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import org
    from fazhi_flow.services.demo import load_demo

    # Passwords play no part here; a cheap hash keeps the eighteen demo accounts fast.
    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))

    cycle, created, _ = load_demo(today=date(2024, 12, 20))
    assert created
    text = render_text(assemble(cycle))
    if os.environ.get("FAZHI_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    # The demo cites figures ({{code}}); the merged text prints their numbers, never the braces.
    from fazhi_flow.models import Contribution

    citing = [c for c in db.session.query(Contribution).filter(Contribution.cycle_id == cycle.id,
                                                               Contribution.state == "approved")
              if "{{" in c.body]
    assert len(citing) >= 2
    assert "{{" not in text and "}}" not in text and "未填报" not in text
    assert "全区现有调委会265个，其中镇级18个" in text and "全年实施柔性执法175次" in text
    # Material that is not approved in the demo never reaches the merged text.
    for contribution in db.session.query(Contribution).filter(Contribution.cycle_id == cycle.id,
                                                              Contribution.state != "approved"):
        for paragraph in contribution.paragraphs:
            assert paragraph not in text
