"""The reminder commands of ``fazhi-flow``: remind, deliver, scheduler (added to the ``fazhi`` group)."""
from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext


def _parse_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"“{value}”不是有效时间，请写成 2025-01-02T09:00+08:00 的形式。") from None


@click.command("remind")
@click.option("--at", "at_", metavar="时间", help="按该时刻执行扫描，如 2025-01-02T09:00+08:00；默认现在。"
              "不带时区时按配置的 TIMEZONE 理解。")
@click.option("--dry-run", is_flag=True, help="只列出将要发出的提醒，不写入数据库。")
@click.option("--region", "region_code", metavar="地区代码",
              help="只列出该地区的提醒（须与 --dry-run 一起使用：扫描总是一次处理所有地区）。")
@with_appcontext
def remind_command(at_, dry_run, region_code):
    """执行一次催报提醒扫描（所有地区），并列出加入待发消息的提醒。"""
    from ..cli import resolve_region
    from ..timeutil import cn_datetime_text, zone_label
    from .jobs import sweep

    region = resolve_region(region_code)
    if region is not None and not dry_run:
        # One sweep covers every region under one lock and unique keys (each reminder exactly once);
        # a sweep of one region alone would only make that guarantee harder to keep.
        click.secho("催报扫描一次处理所有地区，不能只扫描一个地区；--region 只能与 --dry-run 一起使用，"
                    "列出该地区将发出的提醒。", fg="red", err=True)
        sys.exit(2)
    moment = _parse_at(at_)
    result = sweep(moment, dry_run=dry_run)
    if result.locked_out:
        click.echo("另一个调度进程正在执行扫描，本次跳过。")
        return
    # In the configured zone (TIMEZONE, Beijing time by default), not the server's.
    when = f"{cn_datetime_text(result.at)}（{zone_label()}）"
    # By the cycle's region, not its title: every region's template cycle has the same title.
    queued = [q for q in result.queued if region is None or q.region_id == region.id]
    for q in queued:
        click.echo(q.line())
    verb = "将加入" if dry_run else "已加入"
    where = f"地区“{region.name}”" if region is not None else ""
    skipped = "" if region is not None else f"（已发过而跳过 {result.skipped_existing} 条）"
    click.echo(f"{when}：{where}{verb}待发消息的提醒 {len(queued)} 条{skipped}"
               + ("；试运行，未写入数据库。" if dry_run else "。"))


@click.command("deliver")
@click.option("--at", "at_", metavar="时间", help="按该时刻投递（测试用）；默认现在。")
@with_appcontext
def deliver_command(at_):
    """投递一次待发消息（电子邮件、群机器人）。"""
    from .jobs import deliver

    result = deliver(_parse_at(at_))
    click.echo(f"已发送 {result.sent} 条，待重试 {result.retried} 条，发送失败 {result.dead} 条，"
               f"已取消 {result.cancelled} 条，推迟 {result.deferred} 条。")
    for line in result.errors[:50]:
        click.echo(f"  {line}", err=True)
    if result.dead:
        sys.exit(1)


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """作为独立进程运行调度器：定时扫描催报提醒、投递待发消息、生成发布版本的 PDF（按 Ctrl+C 停止）。"""
    from .scheduler import run_blocking_scheduler

    app = current_app._get_current_object()
    click.echo(f"调度器已启动：每{app.config.get('REMINDER_SWEEP_SECONDS', 300)}秒扫描提醒，"
               f"每{app.config.get('OUTBOX_DELIVER_SECONDS', 30)}秒投递待发消息，"
               f"每{app.config.get('PDF_RENDER_SECONDS', 60)}秒生成新发布版本的 PDF。按 Ctrl+C 停止。")
    run_blocking_scheduler(app)


def register(group) -> None:
    for command in (remind_command, deliver_command, scheduler_command):
        group.add_command(command)
