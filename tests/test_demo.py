"""``make demo`` runs through: the whole loop on its own throwaway Postfix, ending with the
suppression list at work (the demo is what a newcomer runs first; it must not rot)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent / "demo.py"


@pytest.mark.postfix
@pytest.mark.slow
def test_the_demo_runs_the_whole_loop_and_refuses_a_suppressed_address():
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "8 records stored" in out and "suppression.created   carl@bad.example.test" in out
    assert ("RCPT TO:<carl@bad.example.test>  550 5.1.1 <carl@bad.example.test>: suppressed by bouncefilter since "
            in out)
    assert "RCPT TO:<ann@example.org>  250 accepted" in out
    assert "nothing left running" in out
    folder = out.split("bouncefilter demo in ", 1)[1].split("\n", 1)[0]
    shutil.rmtree(folder, ignore_errors=True)
