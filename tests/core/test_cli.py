"""The command line: exit codes, messages, and the one-command demo."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import func, select

from fazhi_flow.models import Contribution, ReportCycle, User


def _invoke(runner, *args):
    return runner.invoke(args=["fazhi", *args], catch_exceptions=False)


def _write(tmp_path, text):
    path = tmp_path / "cycle.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = """
cycle: {title: 测试县2025年法治政府建设年度报告, year: 2025, region: 测试县}
units: [{code: sfj, name: 县司法局}]
users: [{username: lly, name: 联络员, unit: sfj, roles: [liaison]}]
outline:
  - {title: 主要举措和成效, lead: [sfj]}
"""


def test_import_cycle_lists_changes_and_writes_only_with_yes(runner, db, tmp_path):
    from fazhi_flow.models import AuditEvent

    listed = _invoke(runner, "import-cycle", _write(tmp_path, GOOD))
    assert listed.exit_code == 1, listed.output
    assert "将导入“测试县2025年法治政府建设年度报告”" in listed.output
    assert "新建单位 sfj 县司法局" in listed.output and "新建用户 lly 联络员" in listed.output
    assert "加 --yes" in listed.output and "一次性密码" not in listed.output
    assert db.session.scalar(select(func.count()).select_from(ReportCycle)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0

    result = _invoke(runner, "import-cycle", "--yes", _write(tmp_path, GOOD))
    assert result.exit_code == 0, result.output
    assert "已导入" in result.output and "新建单位 sfj 县司法局" in result.output and "一次性密码" in result.output
    audits = db.session.scalar(select(func.count()).select_from(AuditEvent))
    again = _invoke(runner, "import-cycle", "--yes", _write(tmp_path, GOOD))
    assert again.exit_code == 0 and "没有变化" in again.output
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audits


def test_import_cycle_dry_run_lists_and_writes_nothing(runner, db, tmp_path):
    result = _invoke(runner, "import-cycle", "--dry-run", "--yes", _write(tmp_path, GOOD))
    assert result.exit_code == 0, result.output
    assert "新建单位 sfj 县司法局" in result.output and "未写入" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_import_cycle_rejects_with_message_and_exit_code(runner, db, tmp_path):
    result = _invoke(runner, "import-cycle", _write(tmp_path, GOOD.replace("lead: [sfj]", "lead: [xxx]")))
    assert result.exit_code == 1
    assert "outline[0].lead：未知的单位代码“xxx”" in result.output
    assert db.session.scalar(select(ReportCycle)) is None


def test_import_cycle_missing_file(runner, db, tmp_path):
    result = _invoke(runner, "import-cycle", str(tmp_path / "none.yaml"))
    assert result.exit_code != 0 and "无法读取文件" in result.output


def test_create_user(runner, db, factory):
    factory.unit("县司法局", code="sfj")
    db.session.commit()
    result = _invoke(runner, "create-user", "wang", "--name", "王五", "--role", "liaison", "--unit", "sfj")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.username == "wang"))
    assert user.roles == {"liaison"} and user.must_change_password
    duplicate = _invoke(runner, "create-user", "wang", "--name", "王五", "--role", "admin")
    assert duplicate.exit_code == 2 and "已存在" in duplicate.output
    no_unit = _invoke(runner, "create-user", "li", "--name", "李四", "--role", "liaison")
    assert no_unit.exit_code == 2 and "--unit" in no_unit.output


def test_status_and_transition(runner, db, factory):
    world = factory.world(contribution_state="submitted")
    db.session.commit()
    status = _invoke(runner, "status", str(world.cycle.id))
    assert status.exit_code == 0 and "区司法局" in status.output and "待审核" in status.output
    refused = _invoke(runner, "transition", "--user", world.liaison.username,
                      "--contribution", str(world.contribution.id), "approve")
    assert refused.exit_code == 1 and "操作被拒绝" in refused.output
    ok = _invoke(runner, "transition", "--user", world.reviewer.username,
                 "--contribution", str(world.contribution.id), "return", "--comment", "请补充数据")
    assert ok.exit_code == 0 and "已执行“退回修改”（return），当前状态：已退回" in ok.output
    db.session.expire_all()
    assert db.session.get(Contribution, world.contribution.id).state == "returned"
    unknown = _invoke(runner, "status", "99999")
    assert unknown.exit_code == 2 and "找不到年度报告" in unknown.output


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("fazhi-flow") is None, reason="the package is not installed (pip install -e .)")
def test_demo_one_command_serves_pages(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env["FAZHI_INSTANCE_PATH"] = str(tmp_path)
    proc = subprocess.Popen([shutil.which("fazhi-flow"), "demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    body = response.read().decode("utf-8")
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert body is not None, "the demo server did not answer"
        assert "登录" in body
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "演示账号" in output and "admin" in output and "demo-pass-2024" in output
    assert (tmp_path / "fazhi_flow.db").exists()


def test_console_script_and_flask_group_agree():
    flask_help = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "fazhi", "--help"],
                                capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
                                    os.path.dirname(os.path.abspath(__file__)))))
    assert flask_help.returncode == 0, flask_help.stderr
    for command in ("demo", "import-cycle", "create-user", "status", "transition"):
        assert command in flask_help.stdout


@pytest.mark.skipif(shutil.which("fazhi-flow") is None, reason="the package is not installed (pip install -e .)")
def test_console_script_upgrade_import_status(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAZHI_")}
    env["FAZHI_INSTANCE_PATH"] = str(tmp_path)
    script = shutil.which("fazhi-flow")

    def run(*args):
        return subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120)

    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    imported = run("import-cycle", "--yes", _write(tmp_path, GOOD))
    assert imported.returncode == 0, imported.stderr
    status = run("status", "2025")
    assert status.returncode == 0 and "测试县2025年法治政府建设年度报告" in status.stdout
    bad = run("status", "abc")
    assert bad.returncode == 2 and "无效" in bad.stderr
