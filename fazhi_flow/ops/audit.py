"""``fazhi-flow audit``: the audit trail (the same rows as the admin page 审计日志) in a terminal, one
line per row, oldest first, as text or CSV."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from .clickutil import PlainCommand


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


class _Echo:
    """A text stream for csv.writer that writes through click (stdout, or the test runner's)."""

    @staticmethod
    def write(text: str) -> None:
        click.echo(text, nl=False)


def _one_line(value: str) -> str:
    # Comments and typed names may hold line breaks and tabs; a row must stay one line of columns.
    return " ".join(str(value).split()) if value else ""


@click.command("audit", cls=PlainCommand)
@click.option("--since", metavar="日期", help="从该日（北京时间，含当天）起，如 2025-01-31。必填。")
@click.option("--until", metavar="日期", help="到该日（含当天）为止；默认至今。")
@click.option("--user", "username", metavar="用户名", help="只看该用户的操作。")
@click.option("--action", metavar="操作代码", help="只看一种操作，如 auth.login_failed 或 flow:contribution:return"
              "（--list-actions 列出全部）。")
@click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text", show_default=True,
              help="text：以制表符分隔的文本；csv：带表头的CSV（UTF-8）。")
@click.option("--list-actions", is_flag=True, help="列出可用的操作代码及其名称后退出。")
@click.option("--region", "region_code", metavar="地区代码", help="只看该地区的记录（如 430903）；默认全部地区。")
@with_appcontext
def audit_command(since, until, username, action, fmt, list_actions, region_code):
    """按时间顺序列出审计日志（操作记录和流程流转），每条一行。"""
    from sqlalchemy import select

    from ..extensions import db
    from ..models import User
    from ..services import audit as svc

    if list_actions:
        for key, label in svc.action_choices():
            click.echo(f"{key}\t{svc.action_label(key)}" if key.startswith(svc.FLOW_PREFIX) else f"{key}\t{label}")
        return
    if not since:
        _fail("请用 --since 给出开始日期，如 --since 2025-01-01。")
    try:
        start = svc.parse_date(since, "开始日期")
        end = svc.parse_date(until, "结束日期")
    except svc.FilterError as exc:
        _fail(exc.message)
    if end is not None and end < start:
        _fail("结束日期早于开始日期。")
    if action and action not in dict(svc.action_choices()):
        _fail(f"未知的操作代码“{action[:60]}”。用 fazhi-flow audit --list-actions 查看全部操作代码。")
    user_id = None
    if username is not None:
        username = username.strip()
        user_id = db.session.scalar(select(User.id).where(User.username == username)) if username else None
        if user_id is None:
            _fail(f"找不到用户“{username[:60]}”（请写用户名）。")
    region_id = None
    if region_code is not None:
        from ..services.regions import find_region

        region = find_region(region_code)
        if region is None:
            click.echo(f"找不到地区代码“{region_code.strip()[:40]}”。请用行政区划代码（如 430903）。", err=True)
            sys.exit(2)
        region_id = region.id
    q = svc.AuditQuery(action=action or "", since=start, until=end, user_id=user_id, region_id=region_id)
    rows = svc.iter_rows(q, newest_first=False, release=True)
    if fmt == "csv":
        svc.write_csv(rows, _Echo(), bom=False)
        return
    for row in rows:
        values = svc.export_values(row)
        values[0] = values[0].strftime("%Y-%m-%d %H:%M:%S")
        click.echo("\t".join(_one_line(v) for v in values))


COMMANDS = (audit_command,)
