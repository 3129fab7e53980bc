"""The API's route registry: each operation is declared once, with what it takes and answers, and both
the Flask route and the OpenAPI 3.1 document (``openapi.build``) are made from that declaration.

    @operation("GET", "/cycles/<int:cycle_id>", summary="一份年度报告", tags=("年度报告",),
               response=CycleOut)
    def get_cycle(user, cycle_id):
        ...

The view is called as ``view(user, **path_params, body=..., query=...)`` after the token was checked
(401), the token's scope (403 for a read-only token on anything but GET), the JSON body (415, 400) and
its fields (422). It returns a pydantic model (serialised with ``response``), a ``Response`` (files) or
None (204). Each request is one unit of work: committed when the view returns, rolled back on any error.
"""
from __future__ import annotations

import json as pyjson
import logging
import re
from dataclasses import dataclass, field

from flask import Blueprint, Response, current_app, g, json, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import DomainError
from ..extensions import db
from ..web.handler import POLICY_ATTR, PUBLIC
from ..web.request import _NOT_XML
from . import tokens
from .problems import ApiProblem, from_domain, from_problem, problem_response, validation_errors

logger = logging.getLogger(__name__)

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)

# Every response status any operation may give for reasons of its own kind (token, scope, ids, query).
COMMON_ERRORS = (400, 401, 403, 404, 422)
BODY_ERRORS = (409, 413, 415)
READ_ONLY_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    tags: tuple
    description: str = ""
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple = ()
    query: type[BaseModel] | None = None
    files: dict | None = None  # content type -> description, for a binary answer
    path_schemas: dict = field(default_factory=dict)  # parameter -> JSON schema (non-int ones)

    @property
    def all_errors(self) -> list[int]:
        extra = BODY_ERRORS if self.body is not None else ()
        return sorted(set(COMMON_ERRORS) | set(extra) | set(self.errors))

    @property
    def path_params(self) -> list[tuple[str, str]]:
        """(converter, name) of each ``<converter:name>`` of the rule, in order."""
        return [(conv or "string", name) for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", self.rule)]

    @property
    def openapi_path(self) -> str:
        return PREFIX + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.rule)


OPERATIONS: list[Operation] = []


def operation(method: str, rule: str, *, summary: str, tags: tuple, **options):
    """Declare an operation (see the module docstring); ``options`` are the fields of ``Operation``."""

    def register(view):
        op = Operation(method=method, rule=rule, endpoint=view.__name__, summary=summary, tags=tags, **options)

        def run(**kwargs):
            return _execute(op, view, kwargs)

        run.__name__ = view.__name__
        run.__doc__ = view.__doc__
        # The gate of every operation is a valid token; each view asks policy about its objects.
        setattr(run, POLICY_ATTR, "authenticated")
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=run, methods=[method])
        OPERATIONS.append(op)
        return view

    return register


def current_token():
    return g.get("api_token")


def _authenticate():
    found = tokens.authenticate(request.headers.get("Authorization"))
    if found is None:
        raise ApiProblem(401, "缺少有效的访问令牌，或令牌已撤销、已过期，或账号已停用。"
                              "请在 Authorization 头中写 Bearer 和个人访问令牌。")
    token, user = found
    g.api_token = token
    g._login_user = user  # services and the audit trail read the acting person from here
    return token, user


def _execute(op: Operation, view, kwargs):
    try:
        token, user = _authenticate()
        if op.method not in READ_ONLY_METHODS and token.scope != "write":
            raise ApiProblem(403, "该令牌只有只读权限，不能修改数据。请使用读写权限的令牌。")
        if op.query is not None:
            kwargs["query"] = _parse_query(op.query)
        if op.body is not None:
            kwargs["body"] = _parse_body(op.body)
        result = view(user, **kwargs)
        response = _respond(op, result)
        db.session.commit()
        return response
    except ApiProblem as exc:
        db.session.rollback()
        if exc.status == 403:
            _audit_refusal(exc.detail)
        return from_problem(exc)
    except DomainError as exc:
        db.session.rollback()
        if exc.status == 403:
            _audit_refusal(exc.message)
        return from_domain(exc)


def _audit_refusal(message: str) -> None:
    from ..services.audit import record_refusal

    record_refusal("forbidden", message)


def _respond(op: Operation, result):
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status=204)
    model = result if isinstance(result, BaseModel) else op.response.model_validate(result)
    return json_response(model.model_dump(mode="json"), op.status)


def json_response(data, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json")


# ---------------------------------------------------------------- reading requests


def _refuse_constant(name):
    raise ValueError(name)


def _clean(value):
    """Control characters out of every string (PostgreSQL refuses NUL; DOCX any C0 control)."""
    if isinstance(value, str):
        return _NOT_XML.sub("", value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


def _parse_body(model: type[BaseModel]):
    if request.mimetype != "application/json":
        raise ApiProblem(415, "请求内容必须是 JSON，请设置 Content-Type: application/json。")
    raw = request.get_data(cache=True)
    try:
        data = pyjson.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiProblem(400, "请求内容不是有效的 JSON（UTF-8 编码）。",
                         [{"field": "body", "message": "不是有效的 JSON。"}]) from None
    try:
        return model.model_validate(_clean(data))
    except ValidationError as exc:
        raise ApiProblem(422, "提交的数据有误，没有保存任何改动。请按各字段的提示修改。",
                         validation_errors(exc)) from None


def _parse_query(model: type[BaseModel]):
    data = {key: request.args.get(key) for key in model.model_fields if key in request.args}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiProblem(422, "查询参数有误，请按提示修改。", validation_errors(exc)) from None


# ---------------------------------------------------------------- unknown paths, methods, errors


@bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(rest: str):
    """Any other address under /api/v1: 405 naming the methods when the path exists, else 404."""
    allowed = allowed_methods()
    if allowed:
        return problem_response(405, f"该地址不支持 {request.method[:10]} 请求，可用：{'、'.join(allowed)}。",
                                headers={"Allow": ", ".join(allowed)})
    return problem_response(404, "API 中没有这个地址。可用的地址见 /api/v1/openapi.json。")


setattr(not_found, POLICY_ATTR, PUBLIC)


def allowed_methods() -> list[str]:
    """The methods the request's path takes (the catch-all below aside); empty when none."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != "api.not_found":
            allowed.append(method)
    if "GET" in allowed:
        allowed.append("HEAD")
    return allowed + ["OPTIONS"] if allowed else []


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    db.session.rollback()
    status = exc.code or 500
    message = exc.description if getattr(exc, "_fazhi_message", False) else None
    if status == 405:
        return not_found("")
    return problem_response(status if status in (400, 401, 403, 404, 409, 413, 415, 422) else 400
                            if status < 500 else 500, message)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    """Anything unforeseen: logged with its traceback, answered with a Chinese 500 problem (no trace)."""
    logger.exception("API request failed: %s %s", request.method, request.path)
    db.session.rollback()
    return problem_response(500)
