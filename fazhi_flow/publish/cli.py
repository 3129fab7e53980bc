"""``fazhi-flow render-pdfs``: the publications' PDF job (publish/pdf_job.py) run by hand."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext


@click.command("render-pdfs")
@click.option("--all", "everything", is_flag=True,
              help="也重试发布已久、自动重试已停止的生成失败的 PDF。")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="本次最多生成多少个 PDF。")
@with_appcontext
def render_pdfs_command(everything, limit):
    """生成尚未生成（或生成失败）的发布版本 PDF；调度器每分钟自动执行一次。"""
    from .pdf_job import render_pending_pdfs

    run = render_pending_pdfs(everything=everything, limit=limit)
    click.echo(f"已生成 PDF {len(run.done)} 个，生成失败 {len(run.failed)} 个，"
               f"已由其他进程生成 {len(run.taken)} 个。")
    for line in run.errors[:50]:
        click.echo(f"  {line}", err=True)
    if run.failed:
        sys.exit(1)


def register(group) -> None:
    group.add_command(render_pdfs_command)
