"""The ``fazhi-flow`` commands (also ``flask --app wsgi fazhi ...``)."""
from __future__ import annotations

import click
from flask.cli import AppGroup, FlaskGroup

fazhi = AppGroup("fazhi", help="法治政府建设年度报告编报系统 管理命令")


def _make_app():
    from . import create_app

    return create_app()


def main() -> None:
    """Console script entry point: the ``fazhi`` group plus Flask-Migrate's ``db`` group."""
    from flask_migrate.cli import db as db_group

    group = FlaskGroup(name="fazhi-flow", create_app=_make_app, add_default_commands=False,
                       add_version_option=False, load_dotenv=False,
                       help="法治政府建设年度报告编报系统 管理命令")
    for name, command in fazhi.commands.items():
        group.add_command(command, name)
    group.add_command(db_group, "db")
    group.main(prog_name="fazhi-flow")
