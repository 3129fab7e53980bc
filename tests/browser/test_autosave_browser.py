"""In a real browser: the editor saves the draft to the server while the liaison types (自动保存),
shows when, keeps the browser's own copy while the server cannot be reached, and shows a colleague's
save in between as a conflict without overwriting anything."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from fazhi_flow.models import Contribution, Revision
from fazhi_flow.services import contributions as svc
from fazhi_flow.timeutil import to_local

pytestmark = pytest.mark.browser

TYPED = "全年办理行政复议案件{{xzfy_cases}}件，\n纠错率{{xzfy_fix_rate}}%，均在法定期限内审结。"


def _stored(db, cid) -> SimpleNamespace:
    """What the database holds now, read in a transaction that is ended at once: the server thread
    writes to the same database (an expired attribute read later would begin another)."""
    db.session.expire_all()
    contribution = db.session.get(Contribution, cid)
    held = SimpleNamespace(body=contribution.body, version=contribution.version,
                           updated_at=contribution.updated_at)
    db.session.commit()
    return held


def _open_editor(person, world, db):
    """The liaison's editor, with nothing kept in the browser; also the key of the browser's copy."""
    cid, key = world.contribution.id, f"fazhi-draft:{world.liaison.id}:{world.contribution.id}"
    db.session.commit()  # reading ids may have begun a transaction: end it before the server writes
    liaison = person(world.liaison)
    page = liaison.login()
    page.goto(f"/tasks/{cid}")
    page.evaluate("window.localStorage.clear()")
    return liaison, page, key


def _backup(page, key) -> str | None:
    return page.evaluate("key => window.localStorage.getItem(key)", key)


def test_typing_is_saved_to_the_server_and_comes_back_from_it(world, db, person):
    cid = world.contribution.id
    liaison, page, key = _open_editor(person, world, db)
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.url.endswith("/autosave") else None)

    page.fill("#body", TYPED)
    status = page.locator("#autosave-status")
    status.filter(has_text="已自动保存").wait_for(timeout=10000)

    stored = _stored(db, cid)
    assert stored.body == TYPED
    assert status.inner_text() == f"已自动保存 {to_local(stored.updated_at):%H:%M}"
    assert len(posts) == 1
    liaison.shot("editor-autosaved")
    # The server has it: the browser's copy is dropped, and leaving the page asks nothing.
    assert _backup(page, key) is None

    # Reloaded without any copy in this browser, the text is the server's.
    page.evaluate("window.localStorage.clear()")
    page.reload()
    assert page.input_value("#body") == TYPED
    assert page.locator("#draft-backup").is_hidden()

    # 保存草稿 right after more typing uses the version autosave was given: no conflict with oneself.
    page.fill("#body", TYPED + "\n补充一段")
    page.click("button[name=action][value=save]")
    page.wait_for_load_state()
    assert "草稿已保存" in page.content() and "没有保存：" not in page.content()
    assert _stored(db, cid).body == TYPED + "\n补充一段"
    assert db.session.query(Revision).filter_by(contribution_id=cid).count() == 0
    db.session.commit()


def test_continuous_typing_is_saved_at_least_every_ten_seconds(world, db, person):
    cid = world.contribution.id
    _, page, key = _open_editor(person, world, db)
    posts = []
    page.on("request", lambda request: posts.append(time.monotonic()) if request.url.endswith("/autosave") else None)
    page.click("#body")
    started = time.monotonic()
    # One character every 0.4 s for 12 s: typing never pauses for the 3 s the debounce waits.
    page.locator("#body").press_sequentially("依法行政" * 7 + "法治政府建设", delay=400)
    typing_ended = time.monotonic()
    assert typing_ended - started > 11
    during = [t for t in posts if t < typing_ended]
    assert 1 <= len(during) <= 2, during
    assert during[0] - started < 11.5
    page.locator("#autosave-status").filter(has_text="已自动保存").wait_for(timeout=10000)
    page.wait_for_timeout(4000)  # the last characters, 3 s after the pause
    assert _stored(db, cid).body == page.input_value("#body")


def test_offline_keeps_the_text_in_the_browser_and_saves_when_back(world, db, person):
    cid, before = world.contribution.id, world.contribution.body
    db.session.commit()
    liaison, page, key = _open_editor(person, world, db)
    liaison.context.set_offline(True)
    page.fill("#body", TYPED)
    status = page.locator("#autosave-status")
    status.filter(has_text="自动保存失败，内容已保存在本机浏览器").wait_for(timeout=10000)
    assert _backup(page, key) == TYPED
    assert _stored(db, cid).body == before

    liaison.context.set_offline(False)
    status.filter(has_text="已自动保存").wait_for(timeout=15000)
    assert _stored(db, cid).body == TYPED
    assert _backup(page, key) is None


def test_a_colleagues_save_in_between_is_shown_and_nothing_is_overwritten(world, factory, db, person):
    colleague = factory.user("liaison", unit=world.unit, name="同事小王")
    db.session.commit()
    cid = world.contribution.id
    db.session.commit()
    _, page, key = _open_editor(person, world, db)
    contribution = db.session.get(Contribution, cid)
    svc.save_draft(contribution, colleague, "同事先保存的内容", expected_version=contribution.version)
    db.session.commit()

    page.fill("#body", TYPED)
    alert = page.locator("#autosave-alert")
    alert.filter(has_text="同事小王").wait_for(timeout=10000)
    assert "您的内容尚未保存" in alert.inner_text() and "点“保存草稿”可以看到对方保存的版本" in alert.inner_text()
    assert page.locator("#autosave-status").inner_text() == "没有自动保存"
    assert page.input_value("#body") == TYPED
    assert _backup(page, key) == TYPED
    assert _stored(db, cid).body == "同事先保存的内容"

    # No more autosaves after the conflict; 保存草稿 shows the colleague's version beside the text.
    page.fill("#body", TYPED + "\n再写一段")
    page.wait_for_timeout(4000)
    assert _stored(db, cid).body == "同事先保存的内容"
    page.click("button[name=action][value=save]")
    page.wait_for_load_state()
    assert "同事小王保存的版本" in page.content() and page.input_value("#body") == TYPED + "\n再写一段"
    assert _stored(db, cid).body == "同事先保存的内容"
    # Merging on that page is not autosaved: only 保存草稿 replaces the colleague's version.
    page.fill("#body", "合并中的文字")
    page.wait_for_timeout(4000)
    assert _stored(db, cid).body == "同事先保存的内容"
    assert "合并完成前不会自动保存" in page.locator("#autosave-status").inner_text()
    page.click("button[name=action][value=save]")
    page.wait_for_load_state()
    assert _stored(db, cid).body == "合并中的文字"


def test_save_pressed_while_an_autosave_is_on_its_way_waits_for_it(world, db, person):
    """The button posts the version the autosave is answered with, not the one it replaced."""
    cid = world.contribution.id
    _, page, _key = _open_editor(person, world, db)
    held = []
    page.route("**/autosave", lambda route: held.append(route))
    page.fill("#body", TYPED)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "no autosave was sent"
    page.fill("#body", TYPED + "\n按下保存时又写的一段")
    page.click("button[name=action][value=save]", no_wait_after=True)
    page.wait_for_timeout(500)
    assert page.url.endswith(f"/tasks/{cid}") and _stored(db, cid).body != TYPED + "\n按下保存时又写的一段"
    held[0].continue_()
    page.locator(".flash, .notice").filter(has_text="草稿已保存").first.wait_for(timeout=10000)
    assert "没有保存：" not in page.content()
    assert _stored(db, cid).body == TYPED + "\n按下保存时又写的一段"
