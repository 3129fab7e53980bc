"""Common passwords are refused wherever a person chooses one; generated and demo passwords work;
a password written into a cycle file must be changed at the first login.
"""
import pytest
import yaml
from sqlalchemy import select

from fazhi_flow.models import User
from fazhi_flow.services import users as user_svc
from fazhi_flow.services.importer import CycleFileError, import_cycle
from fazhi_flow.services.users import password_problem

from .conftest import PASSWORD, FreshUserClient, login

COMMON = ["password1", "Aa123456", "p@ssw0rd", "12345678", "qwerty123", "admin123", "woaini1314",
          "Woaini1314!", "1qaz2wsx", "abc123456", "5201314a", "zhangwei123", "Fazhi@2024", "iloveyou1"]
STRONG = "huanghe-Qiao-2025"
TOO_EASY = "太容易被猜到"


@pytest.mark.parametrize("password", COMMON)
def test_common_passwords_are_refused(password):
    assert TOO_EASY in password_problem(password, "liaison1")


def test_length_and_user_name_rules():
    assert "至少需要8个字符" in password_problem("Xq9!", "")
    assert "不能超过128个字符" in password_problem("Xq9!" * 40, "")
    assert "不能包含用户名" in password_problem("Zhangsan-Sfj-2025", "zhangsan")
    assert password_problem(STRONG, "zhangsan") is None
    assert password_problem("x" * 100, "") and password_problem(STRONG * 7, "") is None  # 119 characters


def test_change_password_refuses_a_common_password_and_keeps_the_old_one(client, world, db):
    login(client, world.liaison)
    for password in ("password1", "Aa123456", "p@ssw0rd"):
        page = client.post("/password", data={"current": PASSWORD, "new": password, "confirm": password})
        assert page.status_code == 200 and TOO_EASY in page.get_data(as_text=True)
    db.session.refresh(world.liaison)
    assert world.liaison.check_password(PASSWORD)
    response = client.post("/password", data={"current": PASSWORD, "new": STRONG, "confirm": STRONG})
    assert response.status_code == 302
    db.session.refresh(world.liaison)
    assert world.liaison.check_password(STRONG)


def test_generated_one_time_passwords_pass_the_policy(db, world):
    assert all(password_problem(user_svc.one_time_password()) is None for _ in range(300))
    password = user_svc.reset_password(world.liaison, world.admin)
    assert password_problem(password, world.liaison.username) is None


def test_imported_users_get_passwords_that_pass(db, world):
    data = "用户名,姓名,角色\nimp_reviewer,审核员乙,审核人\n".encode("utf-8")
    preview = user_svc.parse_import("users", "users.csv", data)
    result = user_svc.apply_import(world.admin, preview)
    assert all(password_problem(p, name) is None for name, p in result["passwords"].items())


def _cycle_file(password) -> str:
    return yaml.safe_dump({
        "cycle": {"title": "某县2025年法治政府建设年度报告", "year": 2025, "region": "某县", "due": "2026-01-15",
                  "issuers": ["某县人民政府"], "issue_date": "2026-01-20"},
        "units": [{"code": "sfj", "name": "县司法局", "kind": "government"}],
        "users": [{"username": "filed", "name": "审核员丙", "roles": ["reviewer"], "password": password}],
        "outline": [{"title": "主要举措和成效", "lead": ["sfj"]}],
    }, allow_unicode=True)


def test_a_cycle_file_with_a_common_password_is_refused(db):
    with pytest.raises(CycleFileError) as refused:
        import_cycle(_cycle_file("Aa123456"))
    assert any("password" in line and TOO_EASY in line for line in refused.value.errors)
    db.session.rollback()
    assert db.session.scalar(select(User).where(User.username == "filed")) is None


def test_a_password_from_a_cycle_file_must_be_changed_at_first_login(app, db):
    import_cycle(_cycle_file(STRONG))
    db.session.commit()
    user = db.session.scalar(select(User).where(User.username == "filed"))
    assert user.must_change_password
    browser = FreshUserClient(app, app.response_class)
    response = login(browser, user, STRONG)
    assert response.headers["Location"] == "/password"


def test_create_user_on_the_command_line_refuses_a_common_password(runner, db):
    refused = runner.invoke(args=["fazhi", "create-user", "wang", "--name", "王五", "--role", "admin",
                                  "--password", "admin123"])
    assert refused.exit_code == 2 and TOO_EASY in refused.output
    assert db.session.scalar(select(User).where(User.username == "wang")) is None
    made = runner.invoke(args=["fazhi", "create-user", "wang", "--name", "王五", "--role", "admin",
                               "--password", STRONG])
    assert made.exit_code == 0, made.output


def test_demo_accounts_keep_their_published_password(app, db, monkeypatch):
    from werkzeug.security import generate_password_hash

    from fazhi_flow.models import org
    from fazhi_flow.services.demo import DEMO_PASSWORD, load_demo

    # Hash strength plays no part here; a cheap hash keeps the demo's many accounts fast.
    monkeypatch.setattr(org, "generate_password_hash",
                        lambda password: generate_password_hash(password, method="pbkdf2:sha256:1000"))
    load_demo()
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    assert not admin.must_change_password
    browser = FreshUserClient(app, app.response_class)
    assert login(browser, admin, DEMO_PASSWORD).headers["Location"] == "/"
