"""Numbers too large for the database, typed into a URL or a query string, are 'not found', never a 500."""
import pytest

HUGE = "99999999999999999999"


@pytest.mark.parametrize("path", [
    f"/tasks/{HUGE}", f"/tasks/{HUGE}/history", f"/tasks/attachments/{HUGE}", f"/review/{HUGE}",
    f"/admin/cycles/{HUGE}", f"/admin/users/{HUGE}/edit", f"/compile/{HUGE}", f"/reports/{HUGE}",
    f"/figures/contribution/{HUGE}", f"/reminders/cycles/{HUGE}/policy",
])
def test_huge_id_in_url_is_not_found(as_user, world, path):
    client = as_user(world.admin)
    response = client.get(path)
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)


def test_huge_post_id_is_not_found(as_user, world):
    client = as_user(world.admin)
    assert client.post(f"/inbox/{HUGE}/read").status_code == 404
    assert client.post(f"/admin/users/{HUGE}/reset-password").status_code == 404


@pytest.mark.parametrize("query", [f"/inbox/?page={HUGE}", f"/admin/users?unit={HUGE}",
                                   f"/dashboard/?cycle={HUGE}"])
def test_huge_number_in_query_is_ignored(as_user, world, query):
    client = as_user(world.admin)
    response = client.get(query)
    assert response.status_code in (200, 404)
    assert "Traceback" not in response.get_data(as_text=True)


def test_compile_version_numbers_out_of_range(as_user, world, db):
    world.cycle.state = "compiling"
    db.session.commit()
    client = as_user(world.admin)
    for query in (f"/compile/{world.cycle.id}/diff?b={HUGE}", f"/compile/{world.cycle.id}/diff?a={HUGE}&b=1",
                  f"/compile/{world.cycle.id}/draft.docx?version={HUGE}"):
        assert client.get(query).status_code == 404, query


def test_unknown_draft_format_is_not_found(as_user, world, db):
    world.cycle.state = "compiling"
    db.session.commit()
    client = as_user(world.admin)
    response = client.get(f"/compile/{world.cycle.id}/draft.zzz")
    assert response.status_code == 404
    assert "不支持该格式" in response.get_data(as_text=True)
