"""RFC 9457 problem details: every error under /api/v1 is ``application/problem+json`` in Chinese.

``ApiProblem`` is raised by the API's own code; a ``DomainError`` of a service is turned into one with
its status and message; a pydantic ``ValidationError`` into 422 naming each field.
"""
from __future__ import annotations

import logging

from flask import Response, json, request

from ..errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
PROBLEM_DOCS = "/api/v1/docs"

# The title of each status (short, Chinese); ``detail`` says what happened this time.
TITLES = {
    400: "请求有误",
    401: "需要有效的访问令牌",
    403: "没有权限",
    404: "不存在",
    405: "不支持该请求方法",
    409: "冲突",
    413: "请求内容过大",
    415: "请求内容类型不正确",
    422: "提交的数据有误",
    500: "系统出错",
}
DETAILS = {
    400: "请求无法处理。",
    401: "请在 Authorization 头中提供有效的个人访问令牌（Bearer）。",
    403: "您没有权限进行这项操作。",
    404: "您要找的内容不存在。",
    405: "该地址不支持这种请求方法。",
    409: "这项内容已被他人处理，请重新读取后再试。",
    413: "请求内容超过了大小限制。",
    415: "请求内容必须是 JSON（Content-Type: application/json）。",
    422: "提交的数据有误，请按提示修改。",
    500: "处理请求时出现问题，没有保存任何改动。请稍后再试，或联系管理员。",
}


class ApiProblem(Exception):
    """An API error with its status, Chinese ``detail`` and the fields at fault."""

    def __init__(self, status: int, detail: str | None = None, errors: list[dict] | None = None,
                 headers: dict | None = None):
        super().__init__(detail or DETAILS.get(status, ""))
        self.status = status
        self.detail = detail or DETAILS.get(status, DETAILS[500] if status >= 500 else DETAILS[400])
        self.errors = errors or []
        self.headers = headers or {}


def problem_response(status: int, detail: str | None = None, errors: list[dict] | None = None,
                     headers: dict | None = None) -> Response:
    body = {
        # A relative URI reference (RFC 9457 §3.1.1): the readable page's explanation of this status.
        "type": f"{PROBLEM_DOCS}#problem-{status}",
        "title": TITLES.get(status, TITLES[500] if status >= 500 else TITLES[400]),
        "status": status,
        "detail": detail or DETAILS.get(status, DETAILS[400]),
        "instance": request.path,
        "errors": errors or [],
    }
    response = Response(json.dumps(body, ensure_ascii=False), status=status, content_type=PROBLEM_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fazhi_flow"'
    return response


def from_problem(exc: ApiProblem) -> Response:
    return problem_response(exc.status, exc.detail, exc.errors, exc.headers)


def from_domain(exc: DomainError) -> Response:
    """A service's refusal: 403 and 404 as they are; a lost race and a refused state (the plain
    DomainError of a workflow event, "材料当前为……") both as 409 Conflict."""
    status = exc.status if exc.status in (403, 404, 409, 422) else 409
    return problem_response(status, exc.message, list(getattr(exc, "api_errors", [])))


# ---------------------------------------------------------------- pydantic errors in Chinese


def _message(error: dict) -> str:  # noqa: C901 - one branch per kind of error, read as a table
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return "缺少必填字段。"
    if kind == "extra_forbidden":
        return "不认识的字段，请删除。"
    if kind == "string_too_long":
        return f"最多{ctx.get('max_length')}字。"
    if kind == "string_too_short":
        return "不能为空。" if ctx.get("min_length") == 1 else f"至少{ctx.get('min_length')}字。"
    if kind.startswith("string"):
        return "必须是文字。"
    if kind.startswith("int") or kind == "float_type":
        return "必须是整数。"
    if kind == "less_than_equal":
        return f"不能大于{ctx.get('le')}。"
    if kind == "greater_than_equal":
        return f"不能小于{ctx.get('ge')}。"
    if kind.startswith("bool"):
        return "必须是 true 或 false。"
    if kind in ("literal_error", "enum"):
        return f"只能是：{ctx.get('expected', '')}。"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "必须是 JSON 对象。"
    if kind == "list_type":
        return "必须是数组。"
    if kind == "too_long":
        return f"最多{ctx.get('max_length')}项。"
    return "格式不正确。"


def validation_errors(exc, prefix: str = "") -> list[dict]:
    """The pydantic errors as [{"field", "message"}], the field as a dotted path ("values.xs")."""
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error.get("loc", ()) if part not in ("str", "int", "float", "none")]
        field = ".".join(([prefix] if prefix else []) + loc) or (prefix or "body")
        found.append({"field": field, "message": _message(error)})
    return found
