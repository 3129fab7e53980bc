"""The packages' layering: notifications never reach into the reminders, and the working-day calendar
(fazhi_flow.workdays) sits below both, so neither needs the other to count a deadline.

Checked twice: statically (every import statement of a package's modules, including those inside
functions, read with ast) and at run time (each module imported in a fresh interpreter, then
``sys.modules`` inspected), so a cycle cannot come back through a late import either.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import fazhi_flow

PACKAGE = Path(fazhi_flow.__file__).parent

# Package (or module) -> the fazhi_flow packages it must never import, directly or through another.
FORBIDDEN = {
    "notify": ("reminders",),
    "workdays": ("reminders", "notify", "services", "web", "pages"),
}


def _modules(name: str) -> list[tuple[str, Path]]:
    """(dotted name, file) of every module of ``fazhi_flow.<name>`` (a package or a single module)."""
    single = PACKAGE / f"{name}.py"
    if single.is_file():
        return [(f"fazhi_flow.{name}", single)]
    out = []
    for path in sorted((PACKAGE / name).rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((dotted, path))
    return out


def _imported(dotted: str, path: Path) -> set[str]:
    """Absolute names of the fazhi_flow modules a module's import statements name."""
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "fazhi_flow" or name.startswith("fazhi_flow.")}


def _reaches(name: str, forbidden: str) -> bool:
    target = f"fazhi_flow.{forbidden}"
    return name == target or name.startswith(target + ".")


def test_import_statements_respect_the_layers():
    wrong = []
    for layer, forbidden in FORBIDDEN.items():
        for dotted, path in _modules(layer):
            for name in sorted(_imported(dotted, path)):
                wrong += [f"{dotted} imports {name}" for f in forbidden if _reaches(name, f)]
    assert not wrong, "\n".join(wrong)


PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith("fazhi_flow."))))
"""


def _loaded_by(dotted: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, dotted], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_each_module_alone_loads_no_forbidden_package():
    wrong = []
    for layer, forbidden in FORBIDDEN.items():
        for dotted, _ in _modules(layer):
            loaded = _loaded_by(dotted)
            wrong += [f"import {dotted} loads {m}" for m in loaded for f in forbidden if _reaches(m, f)]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The static reading itself: relative, absolute and function-level imports are all named."""
    module = tmp_path / "probe.py"
    module.write_text("from ..reminders.jobs import deliver\n"
                      "def later():\n    import fazhi_flow.reminders.dispatch\n"
                      "from ..workdays import due_status\n", encoding="utf-8")
    names = _imported("fazhi_flow.notify.probe", module)
    assert {"fazhi_flow.reminders.jobs", "fazhi_flow.reminders.dispatch", "fazhi_flow.workdays"} <= names
    assert _reaches("fazhi_flow.reminders.jobs", "reminders") and not _reaches("fazhi_flow.workdays", "reminders")
    assert {m for m, _ in _modules("notify")} >= {"fazhi_flow.notify", "fazhi_flow.notify.messages"}
