"""Read operations on cycles: the list, one cycle, its outline, its assignments and its progress."""
from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from .. import policy
from ..extensions import db
from ..models import Assignment, ReportCycle, Section
from ..services.dashboard import build_dashboard
from ..services.outline import load_outline
from . import schemas as S
from .loading import cycle_or_404, sees_cycle
from .registry import current_token, operation

TAG = "年度报告"


@operation("GET", "/me", summary="当前用户和令牌", tags=("账号",), response=S.Me)
def me(user):
    token = current_token()
    return S.Me(id=user.id, username=user.username, name=user.name, roles=sorted(user.roles),
                unit_id=user.unit_id, unit_name=user.unit.name if user.unit else None, region_id=user.region_id,
                token_scope=token.scope, token_expires_at=token.expires_at)


def cycle_out(cycle: ReportCycle) -> S.Cycle:
    return S.Cycle(id=cycle.id, year=cycle.year, region=cycle.region, title=cycle.title, state=cycle.state,
                   state_label=cycle.state_label, due=cycle.due, unit_head_review=cycle.unit_head_review)


@operation("GET", "/cycles", summary="年度报告列表", tags=(TAG,), response=S.CycleList,
           description="本地区中您可以查看进度的年度报告（与“填报进度”页相同），新的在前。")
def list_cycles(user):
    cycles = db.session.scalars(select(ReportCycle).where(ReportCycle.region_id == user.region_id)
                                .order_by(ReportCycle.year.desc(), ReportCycle.id.desc()))
    return S.CycleList(items=[cycle_out(c) for c in cycles if sees_cycle(user, c)])


@operation("GET", "/cycles/<int:cycle_id>", summary="一份年度报告", tags=(TAG,), response=S.Cycle)
def get_cycle(user, cycle_id: int):
    return cycle_out(cycle_or_404(user, cycle_id))


@operation("GET", "/cycles/<int:cycle_id>/outline", summary="提纲（章节树，按阅读顺序）", tags=(TAG,),
           response=S.Outline)
def get_outline(user, cycle_id: int):
    cycle = cycle_or_404(user, cycle_id)
    nodes = load_outline(cycle)
    return S.Outline(cycle_id=cycle.id, sections=[
        S.OutlineSection(id=n.section.id, parent_id=n.section.parent_id, number=n.number, title=n.section.title,
                         depth=n.depth, is_leaf=n.is_leaf, guidance=n.section.guidance,
                         word_limit=n.section.word_limit, due=n.section.effective_due())
        for n in nodes])


@operation("GET", "/cycles/<int:cycle_id>/assignments", summary="任务分配", tags=(TAG,),
           response=S.AssignmentList, query=S.AssignmentQuery,
           description="按提纲顺序，分页。管理员、审核人和签发领导看到全部单位；联络员和单位负责人只看到本单位的任务。")
def list_assignments(user, cycle_id: int, query: S.AssignmentQuery):
    cycle = cycle_or_404(user, cycle_id)
    nodes = {n.section.id: n for n in load_outline(cycle)}
    # The outline's reading order (a tree walk), as a sort key the database can page by.
    reading = case({sid: i for i, sid in enumerate(nodes)}, value=Assignment.section_id, else_=len(nodes)) \
        if nodes else Assignment.section_id
    where = [Section.cycle_id == cycle.id]
    if not policy.can(user, "dashboard.all_units"):
        where.append(Assignment.unit_id == (user.unit_id or 0))
    total = db.session.scalar(select(func.count()).select_from(Assignment)
                              .join(Section, Section.id == Assignment.section_id).where(*where)) or 0
    offset = (query.page - 1) * query.per_page
    rows = [] if offset >= total else db.session.scalars(
        select(Assignment).join(Section, Section.id == Assignment.section_id).where(*where)
        .options(selectinload(Assignment.unit), selectinload(Assignment.contribution))
        .order_by(reading, Assignment.id).offset(offset).limit(query.per_page))
    items = []
    for a in rows:
        node = nodes[a.section_id]
        items.append(S.AssignmentItem(
            id=a.id, section_id=a.section_id, section_title=node.numbered_title, unit_id=a.unit_id,
            unit_name=a.unit.name, role=a.role, due=a.due or node.section.effective_due(),
            contribution_id=a.contribution.id if a.contribution else None,
            state=a.contribution.state if a.contribution else "pending"))
    return S.AssignmentList(cycle_id=cycle.id, items=items, page=query.page, per_page=query.per_page, total=total)


@operation("GET", "/cycles/<int:cycle_id>/status", summary="填报进度（与“填报进度”页相同的统计）", tags=(TAG,),
           response=S.CycleStatus, query=S.StatusQuery,
           description="每页50个单位；合计数总是按全部单位计算。联络员和单位负责人只看到本单位。")
def get_status(user, cycle_id: int, query: S.StatusQuery):
    cycle = cycle_or_404(user, cycle_id)
    dash = build_dashboard(cycle, user, page=min(query.page, 1_000_000), per_page=50)
    return S.CycleStatus(
        cycle_id=cycle.id, state=cycle.state, total=dash.total, overdue=dash.overdue, completion=dash.completion,
        counts=dict(dash.counts), restricted_to_unit=dash.restricted_to_unit, unit_count=dash.unit_count,
        page=dash.page, pages=dash.pages,
        units=[S.UnitStatus(unit_id=r.unit.id, unit_name=r.unit.name, total=r.total, approved=r.approved,
                            overdue=r.overdue, completion=r.completion, on_time_rate=r.on_time_rate,
                            counts=dict(r.counts)) for r in dash.rows])
