"""Placeholder, filled in by its owner."""

COMMANDS: tuple = ()
