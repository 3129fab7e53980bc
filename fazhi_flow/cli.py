"""The ``fazhi-flow`` commands (also ``flask --app wsgi fazhi ...``)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import func, select

from .errors import DomainError
from .whole_numbers import optional_int

fazhi = AppGroup("fazhi", help="法治政府建设年度报告编报系统 管理命令")


class WholeNumber(click.ParamType):
    """A command-line number read like every number users give (ASCII digits, within ``low..high``)."""

    name = "整数"

    def __init__(self, low: int = 0, high: int = 2**31 - 1):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        number = optional_int(value if isinstance(value, int) else str(value), self.low, self.high)
        if number is None:
            self.fail(f"“{str(value)[:40]}”不是{self.low}到{self.high}之间的整数（只写阿拉伯数字）。", param, ctx)
        return number


def _fail(message: str, code: int = 1):
    click.secho(message, fg="red", err=True)
    sys.exit(code)


# Every command that reads or writes a region's material takes the region by its code.
region_option = click.option("--region", "region_code", metavar="地区代码",
                             help="地区代码（如 430903）：只在该地区中查找年度报告、单位和用户。")


def resolve_region(code: str | None):
    """The region with ``code``, or None when no code is given; an unknown code ends the command (2)."""
    if code is None:
        return None
    from .services.regions import find_region

    region = find_region(code)
    if region is None:
        _fail(f"找不到地区代码“{code.strip()[:40]}”。请用行政区划代码（如 430903），系统管理员可在“地区管理”中查看。", 2)
    return region


def resolve_cycle(value: str, region=None):
    """Find a cycle by id or by year (the year must be unique, within ``region`` when one is given:
    two regions may both have a 2025 cycle). An id of another region's cycle is not found."""
    from .extensions import db
    from .models import ReportCycle

    number = optional_int(value)
    if number is None:
        _fail(f"年度报告“{value[:40]}”无效：请给出编号或年份。", 2)
    if number >= 1900:
        q = select(ReportCycle).where(ReportCycle.year == number).order_by(ReportCycle.id)
        if region is not None:
            q = q.where(ReportCycle.region_id == region.id)
        cycles = list(db.session.scalars(q))
        if len(cycles) == 1:
            return cycles[0]
        if len(cycles) > 1:
            _fail(f"{number}年有多份年度报告，请用 --region 指定地区，或改用编号："
                  + "、".join(f"{c.id}（{c.owner.name} {c.owner.code}，{c.region}）" for c in cycles), 2)
    cycle = db.session.get(ReportCycle, number)
    if cycle is None or (region is not None and cycle.region_id != region.id):
        where = f"地区“{region.name}”中" if region is not None else ""
        _fail(f"{where}找不到年度报告“{value}”。", 2)
    return cycle


def _only_region():
    """The installation's one region (created when there is none yet); with several, --region is needed."""
    from .extensions import db
    from .models import Region
    from .models.org import DEFAULT_REGION_CODE, DEFAULT_REGION_NAME

    regions = list(db.session.scalars(select(Region).limit(2)))
    if len(regions) > 1:
        _fail("系统中有多个地区，请用 --region 指定地区代码（如 --region 430903）。", 2)
    if regions:
        return regions[0]
    region = Region(code=DEFAULT_REGION_CODE, name=DEFAULT_REGION_NAME, level="county")
    db.session.add(region)
    db.session.flush()
    return region


def _user(username: str):
    from .extensions import db
    from .models import User

    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        _fail(f"找不到用户“{username}”。", 2)
    return user


def _same_region(actor, region) -> None:
    """The workflow checks an actor's role, not the region: a person acts on their own region only."""
    if actor.region_id != region.id:
        _fail(f"操作被拒绝：用户“{actor.username}”属于地区“{actor.region.name}”，"
              f"不能操作地区“{region.name}”的年度报告和材料。", 1)


def upgrade_database() -> None:
    """Create or upgrade the schema to the newest migration."""
    from flask_migrate import upgrade

    upgrade(directory=current_app.extensions["migrate"].directory)


@fazhi.command("import-cycle")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="确认写入：先列出全部改动，加上此项才写入数据库。")
@click.option("--dry-run", is_flag=True, help="只检查文件并列出改动，不写入数据库。")
@click.option("--strict", is_flag=True, help="有无人可审核、无人填报等警告时也拒绝导入。")
@region_option
@click.option("--as", "username", metavar="用户名", help="以该用户的身份导入（按其权限检查地区）；不写则以系统运维身份导入。")
def import_cycle_command(path, yes, dry_run, strict, region_code, username):
    """导入（或更新）年度报告定义文件 PATH（YAML）：先列出将新建、修改、删除的每一项，加 --yes 才写入。"""
    from .extensions import db
    from .services.importer import import_cycle_file

    region = resolve_region(region_code)
    actor = _user(username) if username is not None else None
    try:
        result = import_cycle_file(path, actor, strict=strict, region=region)
    except DomainError as exc:
        db.session.rollback()
        click.secho("导入失败，数据库未作任何修改：", fg="red", err=True)
        for line in getattr(exc, "errors", None) or [exc.message]:
            click.echo(f"  - {line}", err=True)
        sys.exit(1)
    for line in result.warnings:
        click.secho(f"警告：{line}", fg="yellow", err=True)
    write = yes and not dry_run
    _echo_changes(result, written=write)
    if not write:
        db.session.rollback()
        if dry_run:
            click.echo("文件检查通过（试运行，未写入）。")
            return
        if result.changed:
            _fail("以上改动尚未写入数据库：核对无误后，加 --yes 重新运行以导入。", 1)
        return
    db.session.commit()
    if result.passwords:
        click.echo("新用户的一次性密码（首次登录后须修改）：")
        for name, password in result.passwords.items():
            click.echo(f"  {name}\t{password}")


def _echo_changes(result, written: bool) -> None:
    """Every change, one line each, then the counts; the same list the web preview shows."""
    cycle = result.title + (f"（编号 {result.cycle.id}）" if written and result.cycle.id else "")
    if not result.changed:
        click.echo(f"“{cycle}”（{result.region_label}）：文件与数据库一致，没有变化。")
        return
    head = "已导入" if written else "将导入"
    click.echo(f"{head}“{cycle}”（地区：{result.region_label}），共{len(result.changes)}处改动：")
    for line in result.lines():
        click.echo(f"  {line}")
    click.echo(result.summary() + "。")


@fazhi.command("create-user")
@click.argument("username")
@click.option("--name", required=True, help="姓名")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["admin", "reviewer", "liaison", "unit_head", "leader", "oversight", "sysadmin"]),
              help="角色，可多次给出")
@click.option("--unit", help="所属单位代码（联络员、单位负责人必填），在 --region 的地区中查找")
@click.option("--email", help="电子邮箱")
@click.option("--password", help="密码；不给出时生成一次性密码，首次登录须修改")
@region_option
def create_user_command(username, name, roles, unit, email, password, region_code):
    """创建用户账号（属于 --region 指定的地区；系统只有一个地区时可不写）。"""
    import secrets

    from .extensions import db
    from .models import Unit, User
    from .services.audit import record

    region = resolve_region(region_code) or _only_region()
    if db.session.scalar(select(User).where(User.username == username)):
        _fail(f"用户名“{username}”已存在。", 2)
    unit_row = None
    if unit:
        unit_row = db.session.scalar(select(Unit).where(Unit.code == unit, Unit.region_id == region.id))
        if unit_row is None:
            _fail(f"地区“{region.name}”（{region.code}）中找不到单位代码“{unit}”。", 2)
    if {"liaison", "unit_head"} & set(roles) and unit_row is None:
        _fail("联络员和单位负责人必须用 --unit 指定所属单位。", 2)
    if password is not None:
        from .services.users import password_problem

        problem = password_problem(password, username)
        if problem:
            _fail(problem, 2)
    user = User(username=username, name=name, email=email, unit=unit_row, region=region)
    user.set_roles(roles)
    one_time = password is None
    temporary = secrets.token_urlsafe(9) if one_time else None
    user.set_password(password or temporary)
    user.must_change_password = one_time
    db.session.add(user)
    record(None, "user.create", f"user:{username}", roles=sorted(roles), via="cli", region=region.code,
           region_id=region.id)
    db.session.commit()
    click.echo(f"已在地区“{region.name}”（{region.code}）创建用户 {username}（{user.role_labels}）。")
    if one_time:
        click.echo(f"一次性密码：{temporary}（首次登录后须修改）")


@fazhi.command("status")
@click.argument("cycle")
@region_option
def status_command(cycle, region_code):
    """在终端显示年度报告 CYCLE（编号或年份）的报送进度。"""
    from .extensions import db
    from .models import Contribution, Section, Unit
    from .workflow.states import CONTRIBUTION_STATE_LABELS, CONTRIBUTION_STATES

    cycle = resolve_cycle(cycle, resolve_region(region_code))
    click.echo(f"{cycle.title}（编号 {cycle.id}）  状态：{cycle.state_label}")
    rows = db.session.execute(
        select(Unit.name, Contribution.state, func.count())
        .join(Unit, Unit.id == Contribution.unit_id)
        .where(Contribution.cycle_id == cycle.id)
        .group_by(Unit.name, Contribution.state)
    ).all()
    if not rows:
        click.echo("尚无报送材料（年度报告还未开始征集）。")
        return
    table: dict[str, dict[str, int]] = {}
    for unit, state, count in rows:
        table.setdefault(unit, {})[state] = count
    header = ["单位"] + [CONTRIBUTION_STATE_LABELS[s] for s in CONTRIBUTION_STATES] + ["合计"]
    click.echo("\t".join(header))
    totals = {s: 0 for s in CONTRIBUTION_STATES}
    for unit in sorted(table):
        counts = [table[unit].get(s, 0) for s in CONTRIBUTION_STATES]
        for s, n in zip(CONTRIBUTION_STATES, counts):
            totals[s] += n
        click.echo("\t".join([unit] + [str(n) for n in counts] + [str(sum(counts))]))
    click.echo("\t".join(["合计"] + [str(totals[s]) for s in CONTRIBUTION_STATES] + [str(sum(totals.values()))]))
    sections = db.session.scalar(select(func.count()).select_from(Section).where(Section.cycle_id == cycle.id))
    done = totals["approved"]
    click.echo(f"章节 {sections} 个；已通过 {done}/{sum(totals.values())} 份材料。")


@fazhi.command("transition")
@click.option("--user", "username", required=True, help="以该用户的身份操作")
@click.option("--contribution", "contribution_id", type=WholeNumber(1), help="报送材料编号")
@click.option("--cycle", "cycle_arg", help="年度报告编号或年份")
@click.option("--comment", help="意见或理由（退回、重新打开等必填）")
@region_option
@click.argument("event")
def transition_command(username, contribution_id, cycle_arg, comment, region_code, event):
    """以某用户身份触发一个流程操作 EVENT（如 submit、approve、return、open、compile）。"""
    from .extensions import db
    from .models import Contribution
    from .services.contributions import apply_event
    from .services.cycles import apply_cycle_event
    from .workflow.states import CONTRIBUTION_EVENT_LABELS, CYCLE_EVENT_LABELS

    if (contribution_id is None) == (cycle_arg is None):
        _fail("请给出 --contribution 或 --cycle 其中之一。", 2)
    region = resolve_region(region_code)
    actor = _user(username)
    # The year of --cycle is looked up in --region, else in the acting user's own region.
    region = region or actor.region
    # No separate check here: fire() asks fazhi_flow.policy who may fire the event, the same rule the
    # web pages use, and its refusal names the reason (state, cycle, actor).
    try:
        if contribution_id is not None:
            target = db.session.get(Contribution, contribution_id)
            if target is None or target.cycle.region_id != region.id:
                _fail(f"地区“{region.name}”中找不到报送材料 {contribution_id}。", 2)
            _same_region(actor, target.cycle.owner)
            apply_event(target, event, actor, comment=comment)
            event_label = CONTRIBUTION_EVENT_LABELS.get(event, event)
        else:
            target = resolve_cycle(cycle_arg, region)
            _same_region(actor, target.owner)
            apply_cycle_event(target, event, actor, comment=comment)
            event_label = CYCLE_EVENT_LABELS.get(event, event)
        label = target.state_label
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        _fail(f"操作被拒绝：{exc.message}", 1)
    click.echo(f"已执行“{event_label}”（{event}），当前状态：{label}。")
    if cycle_arg is not None and event == "open":
        from .services.stuck import stuck_messages

        for line in stuck_messages(target):
            click.secho(f"警告：{line}", fg="yellow", err=True)


@fazhi.command("diagrams")
@click.option("--check", is_flag=True, help="只检查 README 中的状态图是否最新。")
def diagrams_command(check):
    """根据流转表重新生成 README 中的两张状态图。"""
    from . import ROOT
    from .workflow.diagrams import render_into

    readme = Path(ROOT) / "README.md"
    if not readme.is_file():  # an installed wheel has no README beside it
        _fail("找不到 README.md：此命令只能在源码目录中运行。", 1)
    text = readme.read_text(encoding="utf-8")
    fresh = render_into(text)
    if check:
        if fresh != text:
            _fail("README 中的状态图已过期，请运行 fazhi-flow diagrams。", 1)
        click.echo("状态图是最新的。")
        return
    readme.write_text(fresh, encoding="utf-8")
    click.echo("已更新 README 中的状态图。")


@fazhi.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=WholeNumber(1, 65535))
@click.option("--no-serve", is_flag=True, help="只准备演示数据，不启动网站。")
def demo_command(host, port, no_serve):
    """一条命令运行演示：建库或升级、载入演示年度报告和各角色账号、启动网站（和定时任务）。"""
    from .services.demo import DEMO_PASSWORD, load_demo

    upgrade_database()
    cycle, created, accounts = load_demo()
    click.echo(("已载入" if created else "演示数据已存在：") + f"“{cycle.title}”")
    click.echo(f"数据库：{current_app.config['SQLALCHEMY_DATABASE_URI']}")
    click.echo(f"演示账号（密码均为 {DEMO_PASSWORD}）：")
    for username, label in accounts:
        click.echo(f"  {username:<10} {label}")
    from .extensions import db

    # End this command's transaction: on SQLite an open one holds the write lock for as long as the
    # server runs, and the scheduler and every request would wait on it.
    db.session.commit()
    db.session.remove()
    if no_serve:
        return
    app = current_app._get_current_object()
    app.config["BASE_URL"] = f"http://{host}:{port}"
    if app.config.get("SCHEDULER_IN_PROCESS"):
        try:
            from .reminders.scheduler import start_in_process_scheduler
        except ImportError:
            pass
        else:
            start_in_process_scheduler(app)
            click.echo("定时任务（催报、消息投递）已在本进程中启动。")
    click.secho(f"请用浏览器打开 http://{host}:{port}/ （按 Ctrl+C 停止）", fg="green")
    demo_server(host, port, app).serve_forever()


def demo_server(host: str, port: int, app):
    """The demo's Werkzeug server (Flask refuses app.run() inside a CLI command)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        # No Werkzeug/Python versions in the Server header: they only help an attacker pick exploits.
        server_version = "fazhi-flow"
        sys_version = ""

        def version_string(self) -> str:
            return self.server_version

    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    server.log_startup()
    return server


@fazhi.command("export")
@click.argument("cycle")
@click.option("--format", "fmt", required=True, type=click.Choice(["docx", "pdf", "html", "txt"]),
              help="文件格式")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="输出文件路径")
@click.option("--version", "version", type=WholeNumber(1), help="发布版本号（不写则导出当前合并稿）")
@region_option
def export_command(cycle, fmt, output, version, region_code):
    """导出年度报告 CYCLE（编号，或唯一的年份如 2024）的当前合并稿或某个发布版本。"""
    from .services.compile import export_report

    target = resolve_cycle(cycle, resolve_region(region_code))
    try:
        content, _name = export_report(target, fmt, version=version)
    except DomainError as exc:
        _fail(exc.message, 1)
    Path(output).write_bytes(content)
    what = f"第{version}版发布版本" if version else "当前合并稿"
    click.echo(f"已导出{target.title}的{what}（{fmt}，{len(content)}字节）到 {output}")


from .reminders.cli import register as _register_reminder_commands

_register_reminder_commands(fazhi)

from .publish.cli import register as _register_publish_commands

_register_publish_commands(fazhi)

from .ops import register_commands as _register_ops_commands

_register_ops_commands(fazhi)


def _make_app():
    from . import create_app

    return create_app()


def main() -> None:
    """Console script entry point: the ``fazhi`` group plus Flask-Migrate's ``db`` group."""
    from flask_migrate.cli import db as db_group

    class Cli(FlaskGroup):
        def list_commands(self, ctx):
            # The app also offers these commands as the "fazhi" group for `flask`; don't list it twice.
            return [name for name in super().list_commands(ctx) if name != "fazhi"]

    group = Cli(name="fazhi-flow", create_app=_make_app, add_default_commands=False,
                       add_version_option=False, load_dotenv=False,
                       help="法治政府建设年度报告编报系统 管理命令")
    for name, command in fazhi.commands.items():
        group.add_command(command, name)
    group.add_command(db_group, "db")
    group.main(prog_name="fazhi-flow")
