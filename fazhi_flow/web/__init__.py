"""Web blueprints."""


def register_web(app) -> None:
    """Register every blueprint, error handler and template helper on ``app``."""
