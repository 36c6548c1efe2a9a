"""The linter and the type checker, run as tests so that ``make test`` runs them: ruff over
the package, the tests and the benchmarks (pyproject.toml's ``[tool.ruff]``), and
``mypy --strict`` over the pure rooms (:data:`test_layers.PURE`: core, classify, the pipe's
correlation), whose every
``type: ignore`` must still be needed (``--strict`` warns of unused ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_layers import PACKAGE, PURE

ROOT = PACKAGE.parent
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    done = run(str(BIN / "ruff"), "check", "bouncefilter", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_core_is_strictly_typed() -> None:
    paths = sorted(str(path.relative_to(ROOT)) for name in PURE
                   for path in (PACKAGE / name.replace(".", "/"), PACKAGE / f"{name.replace('.', '/')}.py") if path.exists())
    done = run(str(BIN / "mypy"), "--strict", "--no-incremental", *paths)
    assert done.returncode == 0, done.stdout + done.stderr
