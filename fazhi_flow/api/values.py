"""Indicator values (统计数据) of a contribution: read them, save them (services/figures.py)."""
from __future__ import annotations

from .. import policy
from ..figures.numbers import format_number
from ..services import figures as svc
from . import schemas as S
from .loading import contribution_or_404
from .problems import ApiProblem
from .registry import operation

TAG = "统计数据"


def _number(value) -> str | None:
    return None if value is None else format_number(value)


def values_out(user, contribution) -> S.Values:
    report = svc.contribution_figures(contribution, user)
    return S.Values(
        contribution_id=contribution.id, editable=policy.can(user, "figures.edit", contribution),
        stamp=svc.values_stamp(contribution, report.book),
        rows=[S.ValueRow(code=r.indicator.code, name=r.indicator.name, measure=r.indicator.measure,
                         required=bool(r.indicator.required), value=_number(r.value), previous=_number(r.previous),
                         explanation=r.explanation) for r in report.rows],
        explainable=[S.Explainable(key=k, message=m, explanation=e) for k, m, e in report.explainable],
        blocking=report.blocking())


def _readable(user, contribution_id: int):
    contribution = contribution_or_404(user, contribution_id)
    if not policy.can(user, "figures.view", contribution):
        raise ApiProblem(404, "这份材料不存在，或不由您查看。")
    return contribution


@operation("GET", "/contributions/<int:contribution_id>/values", summary="统计指标的数值", tags=(TAG,),
           response=S.Values)
def get_values(user, contribution_id: int):
    return values_out(user, _readable(user, contribution_id))


@operation("PUT", "/contributions/<int:contribution_id>/values", summary="填报统计指标的数值", tags=(TAG,),
           body=S.ValuesIn, response=S.Values,
           description="只写要改的指标（空文字或 null 清除）。任何一项有误则全部不保存，errors 逐项说明；"
                       "带上读取时的 stamp，其间数值被他人修改则返回 409。")
def put_values(user, contribution_id: int, body: S.ValuesIn):
    contribution = _readable(user, contribution_id)
    raw = {code: "" if value is None else str(value) for code, value in body.values.items()}
    try:
        svc.save_figures(contribution, user, raw, body.explanations, stamp=body.stamp)
    except svc.FigureFormError as exc:
        raise ApiProblem(422, "填报的数值有误，均未保存，请按提示修改。", [
            {"field": f"{'explanations' if key in body.explanations and key not in raw else 'values'}.{key}",
             "message": message} for key, message in exc.errors.items()]) from None
    return values_out(user, contribution)
