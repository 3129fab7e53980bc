"""``fazhi-flow audit``: the trail in a terminal, one line per row, oldest first; filters by date (Beijing
time), user and action; text or CSV; bad input is one message and exit status 1."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fazhi_flow.models import AuditEvent, TransitionLog
from fazhi_flow.ops.audit import audit_command

T0 = datetime(2025, 3, 1, 2, 0)  # 2025-03-01 10:00 Beijing time


@pytest.fixture()
def trail(world, factory, db):
    w = world
    hostile = factory.user("liaison", unit=w.other_unit, name="=cmd|' /C calc'!A0", username="hostile")
    rows = [
        AuditEvent(actor_id=w.liaison.id, action="contribution.save", target=f"contribution:{w.contribution.id}",
                   detail={"chars": 12}, ip="10.0.0.5", created_at=T0),
        TransitionLog(contribution_id=w.contribution.id, event="submit", from_state="draft", to_state="submitted",
                      actor_id=w.liaison.id, created_at=T0 + timedelta(days=1)),
        TransitionLog(contribution_id=w.contribution.id, event="return", from_state="submitted",
                      to_state="returned", actor_id=w.reviewer.id, comment="第一段\n请补充\t数据",
                      created_at=T0 + timedelta(days=2)),
        AuditEvent(actor_id=hostile.id, action="auth.login_failed", target="user:=cmd|' /C calc'!A0",
                   detail={"reason": "unknown_user"}, ip="10.0.0.9", created_at=T0 + timedelta(days=3, hours=15)),
    ]
    db.session.add_all(rows)
    db.session.commit()
    return w


def run(runner, *args):
    return runner.invoke(audit_command, list(args))


def lines(result):
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.output.splitlines()]


def test_one_line_per_row_oldest_first(runner, trail):
    out = lines(run(runner, "--since", "2025-03-01"))
    assert len(out) == 4 and all(len(line) == 10 for line in out)
    assert [line[0] for line in out] == ["2025-03-01 10:00:00", "2025-03-02 10:00:00", "2025-03-03 10:00:00",
                                         "2025-03-05 01:00:00"]
    assert out[0][2:7] == ["联络员", trail.liaison.username, "保存材料", "contribution.save",
                           f"contribution:{trail.contribution.id}"]
    assert out[0][7] == "报送材料：区司法局 · 严格规范执法" and out[0][8] == "字数：12" and out[0][9] == "10.0.0.5"
    assert out[1][4:6] == ["材料流转：提交审核", "flow:contribution:submit"]
    # A comment's line breaks and tabs do not break the line or its columns.
    assert out[2][8] == "待审核 → 已退回；意见：第一段 请补充 数据"
    assert out[3][2:5] == ["=cmd|' /C calc'!A0", "hostile", "登录失败"]  # text output: as typed


def test_date_range_in_beijing_time(runner, trail):
    # 2025-03-04 17:00 UTC is 5 March in Beijing.
    assert [line[0][:10] for line in lines(run(runner, "--since", "2025-03-02", "--until", "2025-03-04"))] == [
        "2025-03-02", "2025-03-03"]
    assert [line[4] for line in lines(run(runner, "--since", "2025年3月5日"))] == ["登录失败"]
    assert lines(run(runner, "--since", "2025-03-06")) == []


def test_filter_by_user_and_action(runner, trail):
    out = lines(run(runner, "--since", "2025-03-01", "--user", trail.reviewer.username))
    assert [line[5] for line in out] == ["flow:contribution:return"]
    out = lines(run(runner, "--since", "2025-03-01", "--user", trail.liaison.username,
                    "--action", "contribution.save"))
    assert [line[5] for line in out] == ["contribution.save"]
    out = lines(run(runner, "--since", "2025-03-01", "--action", "flow:contribution:submit"))
    assert [line[3] for line in out] == [trail.liaison.username]


def test_csv(runner, trail):
    result = run(runner, "--since", "2025-03-01", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0][0] == "时间（北京时间）" and len(rows) == 5
    assert rows[3][8] == "待审核 → 已退回；意见：第一段\n请补充\t数据"  # CSV keeps the text as it is
    assert rows[4][6] == "user:=cmd|' /C calc'!A0"
    assert rows[4][2] == "'=cmd|' /C calc'!A0"  # a name never becomes a formula in a spreadsheet


def test_list_actions(runner, db):
    result = run(runner, "--list-actions")
    assert result.exit_code == 0
    assert "auth.login_failed\t登录失败" in result.output
    assert "flow:cycle:sign\t报告流转：签发" in result.output


@pytest.mark.parametrize("args, message", [
    ((), "请用 --since 给出开始日期"),
    (("--since", "2025-02-30"), "开始日期“2025-02-30”不是有效日期"),
    (("--since", "yesterday"), "开始日期“yesterday”不是有效日期"),
    (("--since", "2025-03-05", "--until", "2025-03-01"), "结束日期早于开始日期"),
    (("--since", "2025-03-01", "--until", "3月"), "结束日期“3月”不是有效日期"),
    (("--since", "2025-03-01", "--user", "nobody"), "找不到用户“nobody”"),
    (("--since", "2025-03-01", "--user", " "), "找不到用户"),
    (("--since", "2025-03-01", "--action", "user.explode"), "未知的操作代码“user.explode”"),
    # Bad option values are click's one line (not its usage text), with the same status 1.
    (("--since", "2025-03-01", "--format", "xml"), "--format"),
    (("--since", "2025-03-01", "--colour"), "--colour"),
])
def test_bad_input_is_one_message_and_status_1(runner, trail, args, message):
    result = run(runner, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_installed_command(trail, db, database_url, tmp_path):
    """The console script, as the IT department runs it: output on stdout, errors on stderr, status."""
    exe = shutil.which("fazhi-flow", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("fazhi-flow console script not installed in this environment")
    env = {**os.environ, "FAZHI_DATABASE_URL": database_url, "FAZHI_INSTANCE_PATH": str(tmp_path)}
    username = trail.reviewer.username
    db.session.commit()  # end the test's transaction: on SQLite it holds the write lock
    ok = subprocess.run([exe, "audit", "--since", "2025-03-01", "--user", username],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert [line.split("\t")[5] for line in ok.stdout.splitlines()] == ["flow:contribution:return"]
    bad = subprocess.run([exe, "audit", "--since", "2025-3-99"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 1
    assert "不是有效日期" in bad.stderr and "Traceback" not in bad.stderr and bad.stdout == ""
