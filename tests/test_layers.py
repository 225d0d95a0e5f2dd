"""The sans-IO rule: nothing under ``smtpcore/protocol/`` does I/O.

DESIGN.md: "A test imports every module there and asserts none of them
imports socket, ssl, asyncio, select or time."  Two independent checks:

* Runtime: a fresh interpreter imports only the protocol modules and
  reports which modules appeared in ``sys.modules``.  ``smtpcore/__init__``
  imports the client (and with it socket and ssl), so the subprocess stubs
  the ``smtpcore`` package instead of executing its ``__init__``.  ``time``
  cannot be checked this way: CPython's import system loads it at start-up.
* Static: an AST scan of the import statements of the protocol modules and
  of every smtpcore module they import, transitively.  This one covers
  ``time`` too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import smtpcore

PACKAGE = Path(smtpcore.__file__).resolve().parent
PROTOCOL = PACKAGE / "protocol"
FORBIDDEN = frozenset({"socket", "ssl", "asyncio", "select", "time"})
# What start-up already imported cannot be told apart at run time.
RUNTIME_FORBIDDEN = FORBIDDEN - {"time"}

# Runs in a fresh ``python -I -S``: argv[1] is the package directory, the
# rest are the modules to import.  Prints what was loaded before and after.
_PROBE = """
import importlib, json, sys, types
package = types.ModuleType("smtpcore")
package.__path__ = [sys.argv[1]]
sys.modules["smtpcore"] = package
before = sorted(sys.modules)
for name in sys.argv[2:]:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": sorted(sys.modules)}))
"""


def protocol_modules() -> list[str]:
    names = sorted(
        f"smtpcore.protocol.{path.stem}"
        for path in PROTOCOL.glob("*.py")
        if path.stem != "__init__"
    )
    return ["smtpcore.protocol", *names]


def probe(modules: list[str]) -> tuple[set[str], set[str]]:
    """Import ``modules`` in a fresh interpreter.

    Returns:
        The modules loaded before the imports, and those they added.
    """
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _PROBE, str(PACKAGE), *modules],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    report = json.loads(done.stdout)
    before = set(report["before"])
    return before, set(report["after"]) - before


def test_every_protocol_module_is_found() -> None:
    modules = protocol_modules()
    for name in ("connection", "dialogue", "replies", "data", "state"):
        assert f"smtpcore.protocol.{name}" in modules


def test_protocol_imports_no_io_module_at_run_time() -> None:
    modules = protocol_modules()
    before, added = probe(modules)
    assert not RUNTIME_FORBIDDEN & before, "start-up already loaded an I/O module"
    assert set(modules) <= added  # the imports really happened here
    assert not RUNTIME_FORBIDDEN & added


def test_run_time_probe_sees_the_client_import_io() -> None:
    # The control: the same probe on a module that does I/O must fail.
    _, added = probe(["smtpcore.client"])
    assert {"socket", "ssl", "select"} <= added


def imported_names(source: str, package: str) -> set[str]:
    """Every absolute module name an import statement (or a call to
    ``importlib.import_module`` / ``__import__`` with a literal) names in
    ``source``; relative imports are resolved against ``package``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # "from smtpcore.protocol import replies" imports a submodule.
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr == "import_module"
                )
            )
        ):
            names.add(node.args[0].value)
    return names


def imports_of(path: Path) -> set[str]:
    """:func:`imported_names` of a module file of the smtpcore package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
    return imported_names(path.read_text(encoding="utf-8"), package)


def module_path(name: str) -> Path | None:
    """The source file of an smtpcore module, or None if it is not one."""
    parts = name.split(".")
    if parts[0] != "smtpcore":
        return None
    base = PACKAGE.parent.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def static_closure() -> dict[Path, set[str]]:
    """The protocol modules and every smtpcore module they import,
    transitively, each with the names it imports."""
    pending = sorted(PROTOCOL.glob("*.py"))
    seen: dict[Path, set[str]] = {}
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen[path] = imports_of(path)
        for name in seen[path]:
            found = module_path(name)
            # smtpcore/__init__ is the public facade: it re-exports the
            # client (DESIGN.md), so it is not part of the core; the run-time
            # test imports the core without it.
            if found is not None and found != PACKAGE / "__init__.py":
                pending.append(found)
    return seen


def test_protocol_source_imports_no_io_module() -> None:
    closure = static_closure()
    assert PACKAGE / "errors.py" in closure  # the core raises smtpcore errors
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            name for name in names if name.split(".")[0] in FORBIDDEN
        )
        for path, names in closure.items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os, socket",
        "from select import poll",
        "import asyncio.streams",
        "__import__('ssl')",
        "importlib.import_module('time')",
    ],
)
def test_static_scan_catches_every_import_form(source: str) -> None:
    # The control: the scanner must see each way of importing.
    names = imported_names(source, "smtpcore.protocol")
    assert {name.split(".")[0] for name in names} & FORBIDDEN


def test_static_scan_sees_the_transport_import_io() -> None:
    names = imports_of(PACKAGE / "transport.py")
    assert {"socket", "ssl", "select"} <= {name.split(".")[0] for name in names}
