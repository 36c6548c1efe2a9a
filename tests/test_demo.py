"""``make demo`` runs through, on Postfix and with ``MTA=sendmail`` on Sendmail: the whole
loop on its own throwaway MTA, ending with the suppression list at work (the demo is what
a newcomer runs first; it must not rot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent / "demo.py"


@pytest.mark.slow
@pytest.mark.parametrize("mta", [pytest.param("postfix", marks=pytest.mark.postfix),
                                 pytest.param("sendmail", marks=pytest.mark.sendmail)])
def test_the_demo_runs_the_whole_loop_and_refuses_a_suppressed_address(mta):
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "MTA": mta})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"bouncefilter demo ({mta}) in " in out
    assert "8 records stored" in out and "suppression.created   carl@bad.example.test" in out
    assert "RCPT TO:<carl@bad.example.test>  550 5.1.1 <carl@bad.example.test>" in out
    assert ": suppressed by bouncefilter since " in out
    assert "RCPT TO:<ann@example.org>  250 accepted" in out
    assert "nothing left running" in out
    folder = out.split(f"bouncefilter demo ({mta}) in ", 1)[1].split("\n", 1)[0]
    shutil.rmtree(folder, ignore_errors=True)


def test_an_unknown_mta_is_a_usage_error():
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "MTA": "exim"})
    assert done.returncode == 2 and "MTA must be postfix or sendmail, not 'exim'" in done.stderr
