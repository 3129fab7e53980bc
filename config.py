"""Settings entry point of the checkout: the classes live in fazhi_flow/settings.py.

They moved into the package so that an installed wheel (which has no config.py beside it) finds them.
This file re-exports them for scripts and documents that name config.py. Change settings with the
``FAZHI_*`` environment variables (see README), not by editing this file.
"""
from fazhi_flow.settings import (  # noqa: F401
    CONFIGS,
    DEFAULT_SECRET,
    Config,
    DevelopmentConfig,
    ProductionConfig,
    TestingConfig,
)
