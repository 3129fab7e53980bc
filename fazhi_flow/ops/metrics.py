"""Placeholder, filled in by its owner."""


def init_app(app) -> None:
    return None
