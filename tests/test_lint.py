"""The linter and the type checker, run as tests so that ``make test`` runs them: ruff over
the package, the tests and the benchmarks (pyproject.toml's ``[tool.ruff]``), and
``mypy --strict`` over the whole package, whose every
``type: ignore`` must still be needed (``--strict`` warns of unused ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_layers import PACKAGE

ROOT = PACKAGE.parent
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    done = run(str(BIN / "ruff"), "check", "bouncefilter", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_is_strictly_typed() -> None:
    done = run(str(BIN / "mypy"), "--strict", "--no-incremental", "bouncefilter")
    assert done.returncode == 0, done.stdout + done.stderr
