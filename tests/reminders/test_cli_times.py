"""`fazhi remind` prints its time in the TIMEZONE setting's zone (Beijing time by default), whatever the
server's own zone; a bad FAZHI_TIMEZONE stops the start with a message."""
import time

import pytest

from fazhi_flow import create_app


@pytest.fixture()
def server_in_new_york(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_remind_prints_beijing_time_on_a_server_elsewhere(factory, db, runner, server_in_new_york):
    factory.world()
    db.session.commit()
    # 01:00 UTC = 09:00 in Beijing = 20:00 the day before in New York.
    result = runner.invoke(args=["fazhi", "remind", "--at", "2025-01-07T01:00+00:00", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "2025年1月7日 09:00（北京时间）：将加入待发消息的提醒" in result.output
    assert "2025-01-06" not in result.output and "20:00" not in result.output


def test_remind_follows_the_time_zone_setting(app, factory, db, runner):
    factory.world()
    db.session.commit()
    saved = app.config["TIMEZONE"]
    app.config["TIMEZONE"] = "Asia/Urumqi"
    try:
        result = runner.invoke(args=["fazhi", "remind", "--at", "2025-01-07T01:00+00:00", "--dry-run"])
    finally:
        app.config["TIMEZONE"] = saved
    assert result.exit_code == 0 and "2025年1月7日 07:00（Asia/Urumqi）" in result.output


def test_a_bad_time_zone_setting_stops_the_start_with_a_message(monkeypatch):
    monkeypatch.setenv("FAZHI_TIMEZONE", "Beijing")
    with pytest.raises(RuntimeError, match="FAZHI_TIMEZONE 必须是时区名称，如 Asia/Shanghai，而不是“Beijing”"):
        create_app("testing")
