"""Click classes for the operations commands: a bad option or argument is one line and exit status 1,
like every other refusal of these commands (click's own usage errors print the usage and exit 2)."""
from __future__ import annotations

import click
from flask.cli import AppGroup


class PlainErrors:
    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise click.ClickException(exc.format_message()) from None


class PlainCommand(PlainErrors, click.Command):
    pass


class PlainGroup(PlainErrors, AppGroup):
    command_class = PlainCommand

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise click.ClickException(exc.format_message()) from None
