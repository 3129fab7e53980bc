"""Published reports (已发布报告) of the caller's region, and their files with their SHA-256."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from .. import policy
from ..extensions import db
from ..models import Publication, ReportCycle
from ..services import compile as compile_svc
from . import schemas as S
from .loading import publication_or_404
from .problems import ApiProblem
from .registry import operation

TAG = "已发布报告"
FORMAT_SCHEMA = {"type": "string", "enum": list(compile_svc.FORMATS)}
# The stored files are read only when one is downloaded.
_NO_FILES = (defer(Publication.text), defer(Publication.html), defer(Publication.docx), defer(Publication.pdf))


def item(p: Publication) -> dict:
    return dict(id=p.id, cycle_id=p.cycle_id, year=p.year, region=p.region, title=p.title, version=p.version,
                published_at=p.published_at, correction_note=p.correction_note, pdf_status=p.pdf_status)


@operation("GET", "/publications", summary="已发布的报告", tags=(TAG,), response=S.PublicationList,
           query=S.PublicationQuery, description="本地区（督导：及下级地区）已发布的各版报告，新的在前，分页。")
def list_publications(user, query: S.PublicationQuery):
    where = (Publication.cycle_id.in_(select(ReportCycle.id).where(policy.publication_search_clause(user))),)
    total = db.session.scalar(select(func.count()).select_from(Publication).where(*where)) or 0
    offset = (query.page - 1) * query.per_page
    rows = [] if offset >= total else list(db.session.scalars(
        select(Publication).where(*where).options(*_NO_FILES)
        .order_by(Publication.published_at.desc(), Publication.id.desc()).offset(offset).limit(query.per_page)))
    return S.PublicationList(items=[S.PublicationItem(**item(p)) for p in rows], page=query.page,
                             per_page=query.per_page, total=total)


@operation("GET", "/publications/<int:publication_id>", summary="一个发布版本及其文件", tags=(TAG,),
           response=S.PublicationDetail)
def get_publication(user, publication_id: int):
    p = publication_or_404(user, publication_id)
    files = []
    for fmt, (content_type, _) in compile_svc.FORMATS.items():
        ready = fmt != "pdf" or p.pdf_ready
        files.append(S.PublicationFile(format=fmt, content_type=content_type, ready=ready,
                                       sha256=p.digest(fmt) if ready else None,
                                       url=url_for("api.get_publication_file", publication_id=p.id, fmt=fmt)))
    return S.PublicationDetail(**item(p), files=files)


@operation("GET", "/publications/<int:publication_id>/files/<fmt>", summary="下载发布的文件", tags=(TAG,),
           path_schemas={"fmt": FORMAT_SCHEMA}, errors=(409,),
           files={content_type: f"{compile_svc.FORMAT_LABELS[fmt]}文件" for fmt, (content_type, _)
                  in compile_svc.FORMATS.items()},
           description="响应头 X-Content-SHA256 是文件的 SHA-256，与发布时记录的相同。PDF 尚未生成时返回 409。")
def get_publication_file(user, publication_id: int, fmt: str):
    p = publication_or_404(user, publication_id)
    if fmt not in compile_svc.FORMATS:
        raise ApiProblem(404, f"不支持该格式，可选：{'、'.join(compile_svc.FORMATS)}。")
    if fmt == "pdf" and not p.pdf_ready:
        raise ApiProblem(409, "这一版的 PDF 尚未生成（或生成失败），请稍后再试或下载其他格式。")
    content = compile_svc.published_content(p, fmt)
    response = Response(content, content_type=compile_svc.FORMATS[fmt][0])
    name = quote(compile_svc.download_name(p, fmt))
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{name}"
    response.headers["X-Content-SHA256"] = p.digest(fmt)
    return response
