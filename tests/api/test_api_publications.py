"""Published reports through the API: a county's people list and download their own county's versions
(the SHA-256 header equals the file's own hash); the sibling county's are not found; the city's 督导
reads both; the OpenAPI document and its readable page describe every operation."""
from __future__ import annotations

import hashlib

from fazhi_flow.api.registry import OPERATIONS
from fazhi_flow.models import Publication
from tests.regions.isolation_world import build_world

from .test_api_workflow import api_for, assert_problem


def test_own_publications_listed_and_downloaded_with_their_hash(client, db):
    world = build_world(db)
    mine, theirs = world.a.published.publication, world.b.published.publication
    api = api_for(client, db, world.a.people.liaison)

    listed = api.get("/publications").json
    assert [p["id"] for p in listed["items"]] == [mine.id] and listed["total"] == 1
    detail = api.get(f"/publications/{mine.id}").json
    assert detail["title"] == mine.title and detail["version"] == mine.version
    files = {f["format"]: f for f in detail["files"]}
    assert set(files) == {"txt", "html", "docx", "pdf"}
    for fmt in ("txt", "html", "docx"):
        answer = client.get(files[fmt]["url"], headers=api.headers)
        assert answer.status_code == 200
        digest = hashlib.sha256(answer.data).hexdigest()
        assert answer.headers["X-Content-SHA256"] == digest == files[fmt]["sha256"]
        assert answer.headers["Content-Type"].startswith(files[fmt]["content_type"].split(";")[0])
        assert "attachment" in answer.headers["Content-Disposition"]
    pdf = client.get(files["pdf"]["url"], headers=api.headers)
    if mine.pdf_ready:
        assert hashlib.sha256(pdf.data).hexdigest() == pdf.headers["X-Content-SHA256"] == files["pdf"]["sha256"]
    else:
        assert files["pdf"]["ready"] is False and files["pdf"]["sha256"] is None
        assert_problem(pdf, 409)

    for path in (f"/publications/{theirs.id}", f"/publications/{theirs.id}/files/txt"):
        assert_problem(api.get(path), 404)
    assert_problem(api.get(f"/publications/{mine.id}/files/exe"), 404)


def test_a_pending_pdf_is_a_409_problem(client, db):
    world = build_world(db)
    publication = world.a.published.publication
    # As the publish step leaves it while the PDF renders in the background (the row is immutable
    # to the ORM; the renderer's own statement fills it in later).
    db.session.connection().execute(Publication.__table__.update().where(Publication.__table__.c.id == publication.id)
                                    .values(pdf_status="pending", pdf=None, pdf_sha256=None))
    db.session.commit()
    api = api_for(client, db, world.a.people.admin)
    pdf = {f["format"]: f for f in api.get(f"/publications/{publication.id}").json["files"]}["pdf"]
    assert pdf == {**pdf, "ready": False, "sha256": None}
    assert "尚未生成" in assert_problem(api.get(f"/publications/{publication.id}/files/pdf"), 409)["detail"]
    # The document declares that answer for the operation.
    spec = client.get("/api/v1/openapi.json").json
    assert "409" in spec["paths"]["/api/v1/publications/{publication_id}/files/{fmt}"]["get"]["responses"]


def test_the_city_oversight_reads_both_counties(client, db):
    world = build_world(db)
    api = api_for(client, db, world.city_people.oversight)
    ids = sorted(p["id"] for p in api.get("/publications").json["items"])
    assert ids == sorted([world.a.published.publication.id, world.b.published.publication.id])
    # A county's cycles are not the city's to read through the API's cycle operations.
    assert_problem(api.get(f"/cycles/{world.a.work.cycle.id}"), 404)


def test_openapi_document_describes_every_operation(client, db):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    spec = answer.json
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["bearer"] == {**spec["components"]["securitySchemes"]["bearer"],
                                                               "type": "http", "scheme": "bearer"}
    declared = {(op.method.lower(), op.openapi_path) for op in OPERATIONS}
    found = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert found == declared and len(found) >= 17
    schemas = spec["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            assert statuses & {"200", "201", "204"}, (method, path)
            assert {"401", "404"} <= statuses, (method, path)
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert response["content"] == {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}}
            for param in op["parameters"]:
                if param["in"] == "path" and param["schema"].get("type") == "integer":
                    assert param["schema"]["maximum"] == 2**31 - 1
            if method in ("put", "post"):
                body = op["requestBody"]["content"]["application/json"]["schema"]
                name = body["$ref"].rsplit("/", 1)[1]
                assert schemas[name]["additionalProperties"] is False
    # Text limits are the database's: the draft's body as the service allows.
    assert schemas["DraftIn"]["properties"]["body"]["maxLength"] == 50_000


def test_readable_page_lists_every_operation_in_chinese(client, db):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "接口一览" in html
    # Nothing from outside (no CDN): every script and style is the site's own.
    assert "http://" not in html.split("<main", 1)[0] and "https://" not in html.split("<main", 1)[0]
    for op in OPERATIONS:
        assert op.openapi_path in html and op.summary in html
    # Each problem's "type" points at its row.
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 422, 500):
        assert f'id="problem-{status}"' in html
