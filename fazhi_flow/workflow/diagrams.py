"""Mermaid state diagrams generated from the transition tables (kept in the README)."""
from . import states as S

ACTOR_LABELS = {
    "liaison": "联络员", "unit_head": "单位负责人", "section_reviewer": "审核人",
    "admin": "管理员", "leader": "签发领导",
}
CONDITION_LABELS = {"unit_head_review": "需单位审核", "no_unit_head_review": "无需单位审核",
                    "countersign_pending": "会签未齐",
                    "countersign_complete": "任一审核人通过，或会签的最后一人"}


def _diagram(states, labels, transitions, event_labels, actors, comment_required, initial) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    for state in states:
        lines.append(f"    {state}: {state} {labels[state]}")
    for row in transitions:
        event = row["trigger"]
        note = f"{event} {row.get('label') or event_labels[event]}（{ACTOR_LABELS[actors[event]]}"
        if event in comment_required:
            note += "，须填意见"
        if "if" in row:
            note += f"，{CONDITION_LABELS[row['if']]}"
        note += "）"
        for source in row["source"]:
            lines.append(f"    {source} --> {row['dest']}: {note}")
    return "\n".join(lines) + "\n"


def contribution_diagram() -> str:
    return _diagram(S.CONTRIBUTION_STATES, S.CONTRIBUTION_STATE_LABELS, S.CONTRIBUTION_TRANSITIONS,
                    S.CONTRIBUTION_EVENT_LABELS, S.CONTRIBUTION_EVENT_ACTORS,
                    S.CONTRIBUTION_COMMENT_REQUIRED, "draft")


def cycle_diagram() -> str:
    return _diagram(S.CYCLE_STATES, S.CYCLE_STATE_LABELS, S.CYCLE_TRANSITIONS, S.CYCLE_EVENT_LABELS,
                    S.CYCLE_EVENT_ACTORS, S.CYCLE_COMMENT_REQUIRED, "setup")


MARKERS = {
    "contribution": ("<!-- diagram:contribution -->", "<!-- /diagram:contribution -->", contribution_diagram),
    "cycle": ("<!-- diagram:cycle -->", "<!-- /diagram:cycle -->", cycle_diagram),
}


def render_into(text: str) -> str:
    """Replace each marked diagram block in ``text`` with the freshly generated one."""
    for start, end, make in MARKERS.values():
        head, sep, rest = text.partition(start)
        if not sep:
            raise ValueError(f"marker {start} not found")
        _, sep2, tail = rest.partition(end)
        if not sep2:
            raise ValueError(f"marker {end} not found")
        text = f"{head}{start}\n```mermaid\n{make()}```\n{end}{tail}"
    return text
