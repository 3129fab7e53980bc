"""A file or a text too large for the editor comes back as a message above the kept text.

The request limit (MAX_CONTENT_LENGTH) would otherwise refuse the whole 保存草稿 — the typed text
included — with a bare 413 page.
"""
import io

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from fazhi_flow.models import Attachment, Contribution


def _page(response):
    return response.get_data(as_text=True)


def _post_multipart(client, url, fields):
    # Encoded here in memory: the test client spools large bodies to a temporary file it never closes.
    boundary, body = encode_multipart(fields)
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_file_over_the_request_limit_keeps_the_text(app, as_user, world, db):
    client = as_user(world.liaison)
    big = b"%PDF-1.4\n" + b"0" * (app.config["MAX_CONTENT_LENGTH"] + 1024)
    typed = "刚才认真写下的一段材料，不能丢。"
    response = _post_multipart(client, f"/tasks/{world.contribution.id}", {
        "body": typed, "version": str(world.contribution.version), "action": "upload",
        "file": FileStorage(io.BytesIO(big), "扫描件.pdf", content_type="application/pdf")})
    assert response.status_code == 400
    page = _page(response)
    assert typed in page and "MB" in page
    db.session.expire_all()
    assert db.session.query(Attachment).count() == 0
    assert db.session.get(Contribution, world.contribution.id).body != typed


def test_text_over_the_form_field_limit_keeps_the_text(as_user, world, db):
    client = as_user(world.liaison)
    typed = "𠀀" * 200_000  # 800 KB of UTF-8, more than a form field may hold by default
    response = _post_multipart(client, f"/tasks/{world.contribution.id}",
                               {"body": typed, "version": str(world.contribution.version)})
    assert response.status_code == 400
    page = _page(response)
    assert "正文过长" in page and typed in page
