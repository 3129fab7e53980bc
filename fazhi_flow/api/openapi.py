"""The OpenAPI 3.1 document, built from the registry (``registry.OPERATIONS``) and the pydantic models,
and the readable page made from the same document. Both are open without a token: they describe the
API, they hold no data."""
from __future__ import annotations

import functools

from flask import render_template
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..web.handler import public
from ..whole_numbers import DB_INT_MAX
from .problems import DETAILS, PROBLEM_TYPE, TITLES
from .registry import OPERATIONS, PREFIX, bp, json_response
from .schemas import Problem

REF = "#/components/schemas/{model}"
SUCCESS_TEXT = {200: "成功", 201: "已创建", 204: "成功，无内容"}


def _models() -> list:
    seen, wanted = set(), [(Problem, "serialization")]
    for op in OPERATIONS:
        for model, mode in ((op.body, "validation"), (op.query, "validation"), (op.response, "serialization")):
            if model is not None and (model, mode) not in seen:
                seen.add((model, mode))
                wanted.append((model, mode))
    return wanted


def _path_parameters(op) -> list[dict]:
    params = []
    for converter, name in op.path_params:
        schema = op.path_schemas.get(name) or (
            {"type": "integer", "minimum": 1, "maximum": DB_INT_MAX} if converter == "int" else {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(op, schemas: dict) -> list[dict]:
    if op.query is None:
        return []
    resolved = op.query.model_json_schema(ref_template=REF)
    required = set(resolved.get("required", []))
    params = []
    for name, schema in resolved.get("properties", {}).items():
        schema = _without_null({k: v for k, v in schema.items()
                                if k != "title" and not (k == "default" and v is None)})
        params.append({"name": name, "in": "query", "required": name in required, "schema": schema})
    schemas.update(resolved.get("$defs", {}))
    return params


def _without_null(schema: dict) -> dict:
    """A query parameter is given or left out; it cannot be null (pydantic's ``int | None`` says null)."""
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**options[0], **rest}
    return schema


def _success(op, refs: dict) -> dict:
    if op.files:
        return {"description": "文件内容",
                "headers": {"X-Content-SHA256": {"description": "文件的 SHA-256（十六进制）",
                                                 "schema": {"type": "string"}}},
                "content": {ctype: {"schema": {"type": "string", "contentMediaType": ctype}}
                            for ctype in op.files}}
    if op.response is None:
        return {"description": SUCCESS_TEXT.get(op.status, "成功")}
    return {"description": SUCCESS_TEXT.get(op.status, "成功"),
            "content": {"application/json": {"schema": refs[(op.response, "serialization")]}}}


def _responses(op, refs: dict) -> dict:
    responses = {str(op.status): _success(op, refs)}
    problem = {PROBLEM_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}}
    for status in op.all_errors:
        entry = {"description": f"{TITLES.get(status, '')}：{DETAILS.get(status, '')}", "content": problem}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    return responses


@functools.cache
def build() -> dict:
    """The whole document (built once per process: the registry does not change after start)."""
    refs, defs = models_json_schema(_models(), ref_template=REF)
    schemas = dict(defs.get("$defs", {}))
    paths: dict = {}
    for op in OPERATIONS:
        entry = {
            "operationId": op.endpoint, "summary": op.summary, "tags": list(op.tags),
            "parameters": _path_parameters(op) + _query_parameters(op, schemas),
            "responses": _responses(op, refs),
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "法治政府建设年度报告编报系统 API",
            "version": __version__,
            "description": ("以个人访问令牌（Authorization: Bearer ffp_…）访问；权限与网页相同。"
                            "错误一律为 application/problem+json（RFC 9457），detail 为中文说明，errors 逐项指出字段。"),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in dict.fromkeys(t for op in OPERATIONS for t in op.tags)],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "个人访问令牌，在“API 令牌”页面创建"}},
        },
    }


@bp.route("/openapi.json")
@public
def openapi_json():
    return json_response(build())


@bp.route("/docs")
@public
def docs():
    spec = build()
    return render_template("api/docs.html", spec=spec, prefix=PREFIX, schemas=spec["components"]["schemas"],
                           problem_titles=TITLES, problem_details=DETAILS)
