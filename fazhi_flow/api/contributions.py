"""Contributions (报送材料): list, read, save the draft, submit, recall, and the decisions on them.

Each write goes through the same service as the page (services/contributions.py), which asks policy
and fires the workflow; the API only checks the version the caller read (409 when it changed).
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .. import policy
from ..extensions import db
from ..models import Contribution, Revision, TransitionLog
from ..services import contributions as svc
from . import schemas as S
from .loading import contribution_or_404
from .problems import ApiProblem
from .registry import operation

TAG = "报送材料"
STALE = "这份材料在您读取之后有了变化（可能已被修改、撤回或重新提交），请重新读取最新内容后再操作。"


def summary(c: Contribution) -> dict:
    return dict(id=c.id, cycle_id=c.cycle_id, section_id=c.section_id, section_title=c.section.title,
                unit_id=c.unit_id, unit_name=c.unit.name, state=c.state, state_label=c.state_label,
                version=c.version, updated_at=c.updated_at, submitted_at=c.submitted_at)


@operation("GET", "/contributions", summary="报送材料列表", tags=(TAG,), response=S.ContributionPage,
           query=S.ContributionQuery,
           description="您可以查看的材料（本单位的；审核人：所审核章节的；管理员和签发领导：本地区全部），"
                       "可按年度报告、状态、单位筛选，分页。")
def list_contributions(user, query: S.ContributionQuery):
    where = [policy.contribution_view_clause(user)]
    if query.cycle is not None:
        where.append(Contribution.cycle_id == query.cycle)
    if query.state is not None:
        where.append(Contribution.state == query.state)
    if query.unit is not None:
        where.append(Contribution.unit_id == query.unit)
    total = db.session.scalar(select(func.count()).select_from(Contribution).where(*where)) or 0
    offset = (query.page - 1) * query.per_page
    rows = [] if offset >= total else list(db.session.scalars(
        select(Contribution).where(*where)
        .options(selectinload(Contribution.unit), selectinload(Contribution.section))
        .order_by(Contribution.id).offset(offset).limit(query.per_page)))
    return S.ContributionPage(items=[S.ContributionSummary(**summary(c)) for c in rows], page=query.page,
                              per_page=query.per_page, total=total)


def detail(c: Contribution) -> S.ContributionDetail:
    revisions = db.session.scalars(select(Revision).where(Revision.contribution_id == c.id)
                                   .options(selectinload(Revision.author)).order_by(Revision.number))
    logs = db.session.scalars(select(TransitionLog).where(TransitionLog.contribution_id == c.id)
                              .options(selectinload(TransitionLog.actor))
                              .order_by(TransitionLog.created_at, TransitionLog.id))
    return S.ContributionDetail(
        **summary(c), body=c.body or "",
        revisions=[S.RevisionInfo(number=r.number, author=r.author.name if r.author else None,
                                  created_at=r.created_at) for r in revisions],
        comments=[S.CommentInfo(event=t.event, from_state=t.from_state, to_state=t.to_state,
                                actor=t.actor.name if t.actor else None, comment=t.comment,
                                created_at=t.created_at) for t in logs])


@operation("GET", "/contributions/<int:contribution_id>", summary="一份材料（正文、状态、版本、修订和意见）",
           tags=(TAG,), response=S.ContributionDetail)
def get_contribution(user, contribution_id: int):
    return detail(contribution_or_404(user, contribution_id))


def _same_version(c: Contribution, version: int) -> None:
    if version != c.version:
        raise ApiProblem(409, STALE)


@operation("PUT", "/contributions/<int:contribution_id>/draft", summary="保存草稿", tags=(TAG,),
           body=S.DraftIn, response=S.ContributionDetail,
           description="带上读取时的 version；其间有人保存过则返回 409，不保存。只有本单位联络员、在起草中或已退回时可以保存。")
def save_draft(user, contribution_id: int, body: S.DraftIn):
    c = contribution_or_404(user, contribution_id)
    svc.save_draft(c, user, body.body, expected_version=body.version)
    return detail(c)


@operation("POST", "/contributions/<int:contribution_id>/submit", summary="提交审核", tags=(TAG,),
           body=S.VersionIn, response=S.ContributionDetail)
def submit(user, contribution_id: int, body: S.VersionIn):
    c = contribution_or_404(user, contribution_id)
    _same_version(c, body.version)
    svc.submit_contribution(c, user)
    return detail(c)


@operation("POST", "/contributions/<int:contribution_id>/recall", summary="撤回", tags=(TAG,),
           body=S.VersionIn, response=S.ContributionDetail)
def recall(user, contribution_id: int, body: S.VersionIn):
    c = contribution_or_404(user, contribution_id)
    _same_version(c, body.version)
    svc.recall_contribution(c, user)
    return detail(c)


def _decide(user, contribution_id: int, event: str, version: int, comment: str | None, **context):
    c = contribution_or_404(user, contribution_id)
    _same_version(c, version)
    comment = (comment or "").strip() or None
    if event in ("return", "unit_return") and not comment:
        raise ApiProblem(422, "退回修改必须填写意见，说明需要怎样修改。",
                         [{"field": "comment", "message": "退回修改必须填写意见。"}])
    svc.OPERATIONS[event](c, user, comment=comment, **context)
    return detail(c)


@operation("POST", "/contributions/<int:contribution_id>/approve", summary="通过（审核人）", tags=(TAG,),
           body=S.DecisionIn, response=S.ContributionDetail)
def approve(user, contribution_id: int, body: S.DecisionIn):
    return _decide(user, contribution_id, "approve", body.version, body.comment)


@operation("POST", "/contributions/<int:contribution_id>/return", summary="退回修改（审核人，须填意见）",
           tags=(TAG,), body=S.ReturnIn, response=S.ContributionDetail)
def return_(user, contribution_id: int, body: S.ReturnIn):
    c = contribution_or_404(user, contribution_id)
    if body.paragraph is not None and body.paragraph > len(c.paragraphs):
        raise ApiProblem(422, f"材料只有{len(c.paragraphs)}段。",
                         [{"field": "paragraph", "message": f"材料只有{len(c.paragraphs)}段。"}])
    context = {"paragraph": body.paragraph} if body.paragraph else {}
    return _decide(user, contribution_id, "return", body.version, body.comment, **context)


@operation("POST", "/contributions/<int:contribution_id>/unit-approve", summary="同意报送（单位负责人）",
           tags=(TAG,), body=S.DecisionIn, response=S.ContributionDetail)
def unit_approve(user, contribution_id: int, body: S.DecisionIn):
    return _decide(user, contribution_id, "unit_approve", body.version, body.comment)


@operation("POST", "/contributions/<int:contribution_id>/unit-return", summary="退回修改（单位负责人，须填意见）",
           tags=(TAG,), body=S.ReturnIn, response=S.ContributionDetail)
def unit_return(user, contribution_id: int, body: S.ReturnIn):
    return _decide(user, contribution_id, "unit_return", body.version, body.comment)
