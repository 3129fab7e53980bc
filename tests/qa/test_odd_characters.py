"""Odd characters typed into forms: rare CJK and emoji are kept, a NUL character never breaks a save.

PostgreSQL refuses NUL in text; a browser can send one (pasted from a binary file), so it must not
reach the database as a 500.
"""
from fazhi_flow.models import Contribution


def test_rare_characters_are_kept(as_user, world, db):
    client = as_user(world.liaison)
    text = "𠀀😀第二段 <script>alert(1)</script>"
    response = client.post(f"/tasks/{world.contribution.id}",
                           data={"body": text, "version": world.contribution.version})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contribution, world.contribution.id).body == text
    page = client.get(f"/tasks/{world.contribution.id}").get_data(as_text=True)
    assert "𠀀😀" in page and "<script>alert(1)" not in page


def test_nul_character_in_draft_is_dropped_not_an_error(as_user, world, db):
    client = as_user(world.liaison)
    response = client.post(f"/tasks/{world.contribution.id}",
                           data={"body": "第一段\x00第二段", "version": world.contribution.version})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Contribution, world.contribution.id).body == "第一段第二段"


def test_nul_character_in_review_comment(as_user, world, db):
    world.contribution.state = "submitted"
    db.session.commit()
    client = as_user(world.reviewer)
    response = client.post(f"/review/{world.contribution.id}/return",
                           data={"comment": "请补充\x00数据", "version": world.contribution.version})
    assert response.status_code in (302, 303)
    db.session.expire_all()
    assert db.session.get(Contribution, world.contribution.id).state == "returned"


def test_nul_character_in_a_search(as_user, world):
    client = as_user(world.admin)
    response = client.get("/admin/users?q=%00联络")
    assert response.status_code == 200
    assert "联络员" in response.get_data(as_text=True)


def test_attachment_upload_is_not_altered_by_the_nul_filter(as_user, world, db):
    import io

    from fazhi_flow.models import Attachment

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    client = as_user(world.liaison)
    response = client.post(f"/tasks/{world.contribution.id}", content_type="multipart/form-data",
                           data={"body": "正文", "version": world.contribution.version,
                                 "file": (io.BytesIO(png), "照片.png")})
    assert response.status_code == 302
    attachment = db.session.query(Attachment).one()
    download = client.get(f"/tasks/attachments/{attachment.id}")
    assert download.data == png
    download.close()
