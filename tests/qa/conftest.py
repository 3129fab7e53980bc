"""Fixtures of the acceptance checks: the demo's users of each role, login through the real form."""
from fazhi_flow.testing import PASSWORD, FreshUserClient, login  # noqa: F401  (used by the tests here)
