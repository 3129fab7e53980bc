"""Downloads of the report carry one well-formed Content-Type (no repeated charset)."""


def test_draft_download_content_type(as_user, world, db):
    world.cycle.state = "compiling"
    db.session.commit()
    client = as_user(world.admin)
    for fmt, expected in (("txt", "text/plain; charset=utf-8"), ("html", "text/html; charset=utf-8")):
        response = client.get(f"/compile/{world.cycle.id}/draft.{fmt}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == expected
