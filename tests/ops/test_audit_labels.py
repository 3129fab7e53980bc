"""Every action the application writes to the audit trail has a Chinese name on the audit page and can
be chosen in its filter (an action without one would show as its code and could not be filtered)."""
from __future__ import annotations

import re
from pathlib import Path

import fazhi_flow
from fazhi_flow.models.reminder import EXTENSION_STATUSES
from fazhi_flow.services import audit as svc
from fazhi_flow.workflow.states import CONTRIBUTION_EVENT_LABELS, CYCLE_EVENT_LABELS

PACKAGE = Path(fazhi_flow.__file__).parent
# record(actor, "unit.create", ...) and record(None, "user.create", ...): a literal action.
LITERAL = re.compile(r"""\brecord\(\s*[\w.]+\s*,\s*["']([a-z_]+\.[a-z_]+)["']""")
# Actions composed at run time, and what they can be.
COMPOSED = {
    'f"cycle.{event}"': {f"cycle.{e}" for e in ("reopen_collection", "request_signoff", "sign", "return", "publish")},
    'f"extension.{req.status}"': {"extension.granted", "extension.refused"},
    'f"{preview.kind}.import"': {"units.import", "users.import"},
    'f"refused.{kind}"': {f"refused.{k}" for k in svc.REFUSAL_KINDS},
}


def _sources():
    return {path: path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}


def test_every_literal_action_has_a_label():
    found = {action for text in _sources().values() for action in LITERAL.findall(text)}
    assert len(found) > 40, "the pattern still finds the calls"
    missing = sorted(found - set(svc.ACTION_LABELS))
    assert not missing, f"add these to ACTION_LABELS in fazhi_flow/services/audit.py: {missing}"


def test_composed_actions_are_known_and_labelled():
    text = "\n".join(_sources().values())
    for expression, actions in COMPOSED.items():
        assert expression in text, f"{expression} is no longer used: update this test"
        assert actions <= set(svc.ACTION_LABELS), sorted(actions - set(svc.ACTION_LABELS))
    assert {"extension.granted", "extension.refused"} <= {f"extension.{s}" for s in EXTENSION_STATUSES}


def test_composed_expressions_are_all_accounted_for():
    composed = {m for text in _sources().values()
                for m in re.findall(r"""\brecord\(\s*[\w.]+\s*,\s*(f["'][^"']*\{[^"']*["'])""", text)}
    assert composed <= set(COMPOSED), f"new composed actions to label: {sorted(composed - set(COMPOSED))}"


def test_every_workflow_event_can_be_filtered():
    keys = dict(svc.action_choices())
    for event, label in CONTRIBUTION_EVENT_LABELS.items():
        assert keys[svc.flow_key("contribution", event)] == f"材料流转：{label}"
    for event, label in CYCLE_EVENT_LABELS.items():
        assert keys[svc.flow_key("cycle", event)] == f"报告流转：{label}"
