"""The editor (/tasks/<id>): the text form, the figures summary, last year's material, the other
units of the section, attachments and the history — one figure book for all of it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from ..extensions import db
from ..models import Attachment, Contribution
from . import due_of, load_viewer, prepare_figures, preload_sections

if TYPE_CHECKING:
    from ..web.loading import OtherUnits

# Decisions whose comment the editor shows above the text.
DECISION_EVENTS = ("return", "unit_return", "reopen", "approve", "unit_approve")


def load_contribution(contribution: Contribution) -> Contribution:
    """Load what a page about one contribution reads of it, in one query per kind of thing."""
    loaded = db.session.scalars(
        select(Contribution).where(Contribution.id == contribution.id)
        .options(joinedload(Contribution.section), joinedload(Contribution.cycle), joinedload(Contribution.unit),
                 joinedload(Contribution.assignment), joinedload(Contribution.updated_by),
                 selectinload(Contribution.revisions),
                 selectinload(Contribution.attachments).joinedload(Attachment.uploaded_by))
    ).one()
    preload_sections([loaded.cycle_id])
    return loaded


def figure_book(contribution):
    """The request's figure book of the contribution's cycle (shared with the bound text)."""
    from ..web import bound_text

    return bound_text.current().book(contribution.cycle)


def quoted_paragraph(contribution: Contribution, decision) -> str | None:
    """The paragraph a decision's comment points at, from the text it was made on."""
    if decision is None or not decision.context or not decision.context.get("paragraph"):
        return None
    number = decision.context["paragraph"]
    source = contribution.revisions[-1].body if contribution.revisions else contribution.body
    paras = [p.strip() for p in (source or "").splitlines() if p.strip()]
    if isinstance(number, int) and 1 <= number <= len(paras):
        return paras[number - 1]
    return None


def last_year_items(contribution: Contribution) -> list[dict]:
    """Last year's approved material of this section, every unit on it, with the numbers printed as
    approved; the unit's own values listed too. Read-only, beside the draft."""
    from ..figures import yoy
    from ..web import bound_text

    renderer = bound_text.current()
    items = []
    material = yoy.previous_section_material(contribution)
    prepare_figures(material)
    for prev in material:
        snapshot = yoy.approved_snapshot(prev)
        text = renderer.text(prev, prev.body, snapshot)
        own = prev.unit_id == contribution.unit_id
        items.append({"c": prev, "own": own, "paragraphs": [p.strip() for p in text.splitlines() if p.strip()],
                      "figures": snapshot_rows(prev, snapshot) if own else []})
    return items


def snapshot_rows(contribution: Contribution, snapshot: dict) -> list[tuple[str, str, str]]:
    """(name, value, measure) of the approved values, in the indicators' order."""
    from ..models.indicator import Indicator

    if not snapshot:
        return []
    indicators = db.session.scalars(select(Indicator).where(
        Indicator.cycle_id == contribution.cycle_id, Indicator.code.in_(list(snapshot)))
        .order_by(Indicator.position, Indicator.id))
    return [(i.name, snapshot[i.code], i.measure or "") for i in indicators if snapshot[i.code] not in (None, "")]


def figures_shown(user, contribution, enabled: bool) -> bool:
    """Whether the page has a figures area for ``user`` (``enabled``: the app has figures at all)."""
    from ..services import figures as figure_service

    return enabled and figure_service.can_view_figures(user, contribution)


def contribution_figures(user, contribution, enabled: bool):
    """The figures of the contribution for ``user``, or None (no figures area, or no right to see)."""
    from ..services import figures as figure_service

    if not figures_shown(user, contribution, enabled):
        return None
    prepare_figures([contribution], rules=True)
    return figure_service.contribution_figures(contribution, user, figure_book(contribution))


def extension_state(user, contribution: Contribution, enabled: bool) -> dict | None:
    """What the editor shows about 申请延期: may the user ask, and a request still waiting."""
    if not enabled:
        return None
    from ..services import reminders as reminder_service

    return {"allowed": reminder_service.can_request_extension(user, contribution.assignment),
            "pending": reminder_service.pending_extension(contribution.assignment)}


def round_comments(logs, latest) -> list:
    """The reviewers' comments since the latest submission other than ``latest`` (the decision shown)."""
    start = max((i for i, log in enumerate(logs) if log.event == "submit"), default=-1) + 1
    return [log for log in logs[start:]
            if log.comment and log.event in ("approve", "return") and log is not latest]


@dataclass
class EditorPage:
    c: Contribution
    editable: bool
    can_submit: bool
    can_recall: bool
    due: object
    logs: list
    latest_decision: object
    quoted: str | None
    fig: object
    extension: dict | None
    others: OtherUnits  # the other units of the section: a few listed, all counted by state
    last_year: list
    paragraphs: list = field(default_factory=list)  # the displayed text when it is not editable
    # The other reviewers' comments of the round that ended in the latest decision (会签同意 and
    # returns), so that a return shows the liaison every comment, not only the returning one.
    round_comments: list = field(default_factory=list)

    @classmethod
    def build(cls, user, contribution: Contribution, *, figures: bool = True, extensions: bool = True) -> EditorPage:
        """``figures`` / ``extensions``: whether those areas exist in this app (their blueprints)."""
        from ..web import bound_text
        from ..web.loading import other_units_on_section, transition_logs
        from .. import policy

        load_viewer(user)
        c = load_contribution(contribution)
        # One batch for the text's figures and, when the figures area is shown, its rules' figures.
        prepare_figures([c], rules=figures_shown(user, c, figures))
        logs = transition_logs(c)
        latest = next((log for log in reversed(logs) if log.comment and log.event in DECISION_EVENTS), None)
        editable = policy.can(user, "contribution.edit", c)
        fig = contribution_figures(user, c, figures)
        return cls(
            c=c, editable=editable, can_submit=policy.can(user, "contribution.submit", c),
            can_recall=policy.can(user, "contribution.recall", c),
            due=due_of(c), logs=logs, latest_decision=latest, quoted=quoted_paragraph(c, latest), fig=fig,
            extension=extension_state(user, c, extensions), others=other_units_on_section(c),
            last_year=last_year_items(c),
            paragraphs=[] if editable else bound_text.current().paragraphs(c),
            round_comments=round_comments(logs, latest),
        )

    def context(self) -> dict:
        """The names the editor template reads."""
        return {"page": self, "c": self.c, "editable": self.editable, "can_submit": self.can_submit,
                "can_recall": self.can_recall, "due": self.due, "logs": self.logs,
                "latest_decision": self.latest_decision, "quoted": self.quoted, "fig": self.fig,
                "extension": self.extension, "others": self.others, "last_year": self.last_year,
                "paragraphs": self.paragraphs, "round_comments": self.round_comments}
