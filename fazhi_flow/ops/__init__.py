"""Running it for years: logs, health checks, metrics, configuration check, audit reading, backup
and restore, attachment storage. Each module offers ``init_app(app)`` (web hooks) and/or
``COMMANDS`` (click commands added to ``fazhi-flow``)."""
from __future__ import annotations

import importlib

WEB_MODULES = ("logs", "health", "metrics")
COMMAND_MODULES = ("check", "audit", "backup", "storage")


def init_app(app) -> None:
    for name in WEB_MODULES:
        importlib.import_module(f"{__name__}.{name}").init_app(app)


def register_commands(group) -> None:
    for name in COMMAND_MODULES:
        for command in importlib.import_module(f"{__name__}.{name}").COMMANDS:
            group.add_command(command)
