"""The layers, checked on the source: the pure core (record types, VERP, accounts, the
classifier and its parsers) imports only the standard library and itself, never an edge;
and only the store imports sqlite3.

Read with :mod:`ast`, so a function-local import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bouncefilter"

#: The pure core: no I/O, clock or randomness; only the standard library and each other.
CORE = frozenset(
    """record verp accounts lazy mime view status dsn dsntext arf autoreply challenge original
    textbounce heuristic reasons phrases wording window classify lhost correlation""".split()
)
#: The store is the only module that speaks SQL: the others hold a store.Connection and
#: catch store.DatabaseError, never sqlite3's names.
SQL_MODULES = frozenset({"store"})


def module_name(path: Path) -> str:
    """``lhost/exim.py`` -> ``lhost.exim``; ``lhost/__init__.py`` -> ``lhost``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports anywhere in it: ``bouncefilter.x`` as ``x``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "bouncefilter":
                found.update(alias.name for alias in node.names)
            else:
                found.add(node.module)
    return {name.removeprefix("bouncefilter.") for name in found}


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def in_core(name: str) -> bool:
    return name.split(".")[0] in CORE


@pytest.mark.parametrize("name", sorted(name for name in MODULES if in_core(name)))
def test_the_core_imports_only_the_standard_library_and_itself(name: str) -> None:
    outside = sorted(
        imported for imported in imports(MODULES[name])
        if not (imported in MODULES and in_core(imported)) and imported.split(".")[0] not in sys.stdlib_module_names
    )
    edges = sorted(imported for imported in imports(MODULES[name]) if imported in MODULES and not in_core(imported))
    assert (outside, edges) == ([], []), f"{name} imports {outside + edges}"


def test_only_the_store_uses_sqlite() -> None:
    users = {name for name, path in MODULES.items() if "sqlite3" in imports(path)}
    assert users == SQL_MODULES


def test_every_core_module_exists() -> None:
    """The list above names real modules (a rename must update it)."""
    assert CORE <= {name.split(".")[0] for name in MODULES}
