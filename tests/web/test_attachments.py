"""Evidence attachments: type by content, size limit, generated names, who may download."""
import io
import os

import pytest
from sqlalchemy import select

from fazhi_flow.models import Attachment
from fazhi_flow.services import attachments as service

from . import files


def _upload(client, world, name, data, body="正文"):
    return client.post(
        f"/tasks/{world.contribution.id}",
        data={"body": body, "version": world.contribution.version, "action": "upload",
              "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize("name,maker,ctype", [
    ("检查记录.pdf", files.pdf, "application/pdf"),
    ("现场照片.PNG", files.png, "image/png"),
    ("现场.jpeg", files.jpg, "image/jpeg"),
    ("台账.docx", files.docx, "wordprocessingml"),
    ("统计表.xlsx", files.xlsx, "spreadsheetml"),
])
def test_accepted_types_are_stored_under_generated_names(as_user, world, db, app, name, maker, ctype):
    client = as_user(world.liaison)
    data = maker()
    r = _upload(client, world, name, data)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    row = db.session.scalar(select(Attachment))
    assert row.filename == name and ctype in row.content_type and row.size == len(data)
    assert name not in row.stored_name and len(row.stored_name.split(".")[0]) == 32
    path = service.storage_path(row.stored_name)
    assert path.read_bytes() == data
    assert str(path).startswith(app.config["UPLOAD_FOLDER"]) and "static" not in str(path)
    with client.get(f"/tasks/attachments/{row.id}") as download:
        assert download.status_code == 200 and download.data == data
        assert "attachment" in download.headers["Content-Disposition"]


@pytest.mark.parametrize("name,data,message", [
    ("病毒.exe", b"MZ\x90\x00", "不支持"),
    ("伪装.pdf", b"MZ\x90\x00 this is not a pdf", "不是有效的"),
    ("图片改名.pdf", files.png(), "不是有效的"),
    ("宏.docx", files.docm(), "不是有效的"),
    ("表格当文档.docx", files.xlsx(), "不是有效的"),
    ("空文件.pdf", b"", "是空的"),
    ("无扩展名", b"%PDF-1.4", "不支持"),
])
def test_refused_files_change_nothing_and_keep_the_text(as_user, world, db, name, data, message):
    client = as_user(world.liaison)
    r = _upload(client, world, name, data, body="我刚写的正文")
    text = r.get_data(as_text=True)
    assert r.status_code == 400 and message in text
    assert "我刚写的正文" in text
    assert db.session.scalar(select(Attachment)) is None


def test_size_limit(as_user, world, db, app):
    app.config["ATTACHMENT_MAX_BYTES"] = 1000
    try:
        client = as_user(world.liaison)
        r = _upload(client, world, "大文件.pdf", files.pdf() + b"0" * 2000)
        assert r.status_code == 400 and "超过了" in r.get_data(as_text=True)
    finally:
        app.config.pop("ATTACHMENT_MAX_BYTES")
    assert db.session.scalar(select(Attachment)) is None


def test_download_only_by_those_allowed(as_user, world, db, factory):
    client = as_user(world.liaison)
    _upload(client, world, "记录.pdf", files.pdf())
    row = db.session.scalar(select(Attachment))
    url = f"/tasks/attachments/{row.id}"
    allowed = [world.liaison, world.unit_head, world.reviewer, world.admin, world.leader]
    refused = [world.other_liaison, world.outsider_reviewer]
    for user in allowed:
        with as_user(user).get(url) as response:
            assert response.status_code == 200, user.name
    for user in refused:
        assert as_user(user).get(url).status_code == 403, user.name
    assert as_user(world.liaison).get("/tasks/attachments/999999").status_code == 404


def test_delete_attachment(as_user, world, db):
    client = as_user(world.liaison)
    _upload(client, world, "记录.pdf", files.pdf())
    row = db.session.scalar(select(Attachment))
    path = service.storage_path(row.stored_name)
    other = as_user(world.other_liaison)
    assert other.post(f"/tasks/{world.contribution.id}/attachments/{row.id}/delete").status_code == 403
    client = as_user(world.liaison)
    r = client.post(f"/tasks/{world.contribution.id}/attachments/{row.id}/delete")
    assert r.status_code == 302
    assert db.session.scalar(select(Attachment)) is None and not os.path.exists(path)


def test_detect_type_by_content():
    assert service.detect_type(files.pdf()) == "pdf"
    assert service.detect_type(files.docx()) == "docx"
    assert service.detect_type(files.xlsx()) == "xlsx"
    assert service.detect_type(b"PK\x03\x04garbage") is None
    assert service.clean_filename("../../etc/passwd") == "passwd"
    assert service.clean_filename("a\x00b.pdf") == "ab.pdf"


def test_a_rolled_back_upload_leaves_no_file(world, db):
    stored = service.add_attachment(world.contribution, world.liaison, "照片.png", files.png()).stored_name
    assert service.storage_path(stored).exists()
    db.session.rollback()  # e.g. a later step of the same request failed
    assert not service.storage_path(stored).exists()
    kept = service.add_attachment(world.contribution, world.liaison, "照片.png", files.png()).stored_name
    db.session.commit()
    db.session.rollback()  # a later, unrelated rollback must not touch committed files
    assert service.storage_path(kept).exists()
