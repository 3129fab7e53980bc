"""The README stays true: its state diagrams come from the transition tables, its commands exist."""
from pathlib import Path

from fazhi_flow.workflow import states
from fazhi_flow.workflow.diagrams import contribution_diagram, render_into

README = Path(__file__).resolve().parents[2] / "README.md"


def test_committed_diagrams_are_fresh():
    text = README.read_text(encoding="utf-8")
    assert render_into(text) == text, "README diagrams are stale: run `fazhi-flow diagrams`"


def test_diagram_follows_the_table(monkeypatch):
    before = contribution_diagram()
    monkeypatch.setattr(states, "CONTRIBUTION_TRANSITIONS",
                        [t for t in states.CONTRIBUTION_TRANSITIONS if t["trigger"] != "reopen"])
    after = contribution_diagram()
    assert "approved --> returned" in before and "approved --> returned" not in after


def test_readme_names_the_commands_and_the_tests():
    text = README.read_text(encoding="utf-8")
    assert "fazhi-flow demo" in text
    assert "pip install -e '.[test]' && python -m pytest" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q -e '.[test]'" in ci and "python -m pytest" in ci
