"""Public pages: published reports by region and year, every version, downloads with their SHA-256.
A publication's URL is its id alone, whatever its region: published reports are public."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, current_app, render_template, request
from markupsafe import Markup
from sqlalchemy import select

from ...extensions import db
from ...models import Publication, Region
from ...publish.html import font_stacks
from ...publish.html import report_css as build_report_css
from ...services import compile as svc
from ..errors import abort_with
from ..handler import public
from . import bp

# A published HTML file shown in the browser: its own inline styles, nothing else, no scripts.
HTML_FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def _publication_or_404(publication_id: int) -> Publication:
    publication = db.session.get(Publication, publication_id)
    if publication is None:
        abort_with(404, "该发布版本不存在。")
    return publication


@bp.route("/")
@public
def index():
    """Each region's published reports under its name; ``?region=CODE``: that region's only."""
    code = (request.args.get("region") or "").strip()
    region = None
    if code:
        region = db.session.scalar(select(Region).where(Region.code == code))
        if region is None:
            abort_with(404, f"没有代码为“{code[:20]}”的地区。")
    regions = svc.published_by_region(region.id if region is not None else None)
    return render_template("public/index.html", regions=regions, region=region, formats=svc.FORMAT_LABELS)


@bp.route("/report.css")
@public
def report_css():
    config = current_app.config
    css = build_report_css(font_stacks(config["DOCX_FONTS"], config["PDF_FONTS"]))
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/<int:publication_id>")
@public
def show(publication_id: int):
    publication = _publication_or_404(publication_id)
    html = publication.html
    # The stored file's <article> is shown inside the site layout, exactly as it was published.
    start, end = html.find('<article class="gw-report"'), html.find("</article>")
    article = Markup(html[start:end + len("</article>")]) if start >= 0 and end > start else Markup("")
    versions = svc.publications(publication.cycle)
    return render_template("public/show.html", publication=publication, article=article,
                           versions=versions[::-1], formats=svc.FORMAT_LABELS)


@bp.route("/<int:publication_id>/report.<fmt>")
@public
def download(publication_id: int, fmt: str):
    publication = _publication_or_404(publication_id)
    if fmt not in svc.FORMATS:
        abort_with(404, "不支持该格式。")
    content = svc.published_content(publication, fmt)
    response = Response(content, content_type=svc.FORMATS[fmt][0])  # carries its charset
    name = quote(svc.download_name(publication, fmt))
    inline = fmt in ("html", "txt", "pdf") and not request.args.get("download")
    response.headers["Content-Disposition"] = f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{name}"
    response.headers["X-Content-SHA256"] = publication.digest(fmt)
    if fmt == "html":
        response.headers["Content-Security-Policy"] = HTML_FILE_CSP
    response.headers["Cache-Control"] = "public, max-age=86400, immutable"
    return response
