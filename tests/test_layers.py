"""The layers, checked on the source.

- ``core/`` (record types, VERP, accounts, time windows) imports only the standard
  library and itself; ``classify/`` only those and itself; the pipe's token correlation
  only the core. None of them does I/O, reads the clock or draws random numbers.
- The four flows (``milter/``, ``pipe/``, ``forward/``, ``api/``) never import one another:
  what they share lives below them (core, classify, config, store), and only the CLI
  starts them.
- Only ``store/`` imports sqlite3: the others hold a ``store.Connection`` and catch
  ``store.DatabaseError``, never sqlite3's names.

Read with :mod:`ast`, so a function-local import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bouncefilter"

#: What each pure room may import besides the standard library (itself included).
PURE = {
    "core": {"core"},
    "classify": {"core", "classify"},
    "pipe.correlation": {"core"},
    "milter.decision": {"core", "classify"},
}
FLOWS = ("milter", "pipe", "forward", "api")


def module_name(path: Path) -> str:
    """``classify/mta/exim.py`` -> ``classify.mta.exim``; ``classify/mta/__init__.py`` -> ``classify.mta``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in it: ``bouncefilter.x.y`` as ``x.y``, and
    ``from bouncefilter.x import y`` as ``x.y`` when ``y`` is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                inner = f"{node.module}.{alias.name}".removeprefix("bouncefilter.")
                found.add(inner if inner in MODULES else node.module)
    return {name.removeprefix("bouncefilter.") for name in found}


def room(name: str) -> str:
    """The pure room ``name`` belongs to, or the top-level package it is in."""
    return next((pure for pure in PURE if name == pure or name.startswith(pure + ".")), name.split(".")[0])


@pytest.mark.parametrize("name", sorted(name for name in MODULES if room(name) in PURE))
def test_the_pure_rooms_import_only_the_standard_library_and_what_lies_below(name: str) -> None:
    allowed = PURE[room(name)]
    wrong = sorted(imported for imported in imports(MODULES[name])
                   if room(imported) not in allowed and imported.split(".")[0] not in sys.stdlib_module_names)
    assert wrong == [], f"{name} imports {wrong}"


@pytest.mark.parametrize("flow", FLOWS)
def test_a_flow_never_imports_another(flow: str) -> None:
    crossing = sorted({f"{name} -> {imported}" for name in MODULES if name.split(".")[0] == flow
                       for imported in imports(MODULES[name])
                       if imported.split(".")[0] in FLOWS and imported.split(".")[0] != flow})
    assert crossing == []


def test_only_the_store_uses_sqlite() -> None:
    users = {name.split(".")[0] for name, path in MODULES.items() if "sqlite3" in imports(path)}
    assert users == {"store"}


def test_every_pure_room_exists() -> None:
    """The rooms named above are real (a rename must update them)."""
    assert set(PURE) <= set(MODULES)


def test_only_the_program_imports_the_cli() -> None:
    """The CLI sits on top: nothing but ``python -m bouncefilter`` imports it."""
    importers = sorted(name for name, path in MODULES.items()
                       if name.split(".")[0] != "cli" and any(i.split(".")[0] == "cli" for i in imports(path)))
    assert importers == ["__main__"]
