"""Packaging hook: pyproject.toml holds the metadata; this only maps the top-level folders.

templates/ and migrations/ stay at the top of the checkout (the layout Flask and Alembic users expect)
and ship inside the wheel as fazhi_flow/_templates and fazhi_flow/_migrations, where the installed
package looks for them (fazhi_flow.resource_dir).
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["fazhi_flow", "fazhi_flow.*"])
    + ["fazhi_flow._templates", "fazhi_flow._migrations"],
    package_dir={"fazhi_flow._templates": "templates", "fazhi_flow._migrations": "migrations"},
    package_data={
        "fazhi_flow": ["data/*", "static/*", "static/**/*", "web/*/static/*", "web/*/static/**/*"],
        "fazhi_flow._templates": ["*.html", "**/*.html"],
        "fazhi_flow._migrations": ["README", "alembic.ini", "*.mako", "versions/*.py"],
    },
)
