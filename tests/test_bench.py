"""The benchmark scripts under bench/ still start: each prints its usage (their imports of
the package and of tests/support are what rots first), and the one that needs no Postfix
runs through on small sizes. Their figures are measured by hand (docs/figures.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if path.name != "minimal_milter.py")  # that one is a milter


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_script_starts_and_says_how_to_run_it(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")


def test_the_suppression_benchmark_runs_through_on_small_sizes():
    done = subprocess.run([sys.executable, str(BENCH / "suppression.py"), "--bounces", "20", "--listings", "1000",
                           "--lookups", "1000"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^count: .* median extra -?\d+ us$", done.stdout, re.M)
    assert re.search(r"^lookup: 1,000 listings in \d+ MB; find \d+ ns", done.stdout, re.M)
