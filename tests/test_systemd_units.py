"""The hardening in contrib/systemd lets the daemons do their work.

There is no systemd to start the units under here, so the milter runs under strace
instead, serving mail, and every system call it makes is checked against what its unit
allows: ``SystemCallFilter`` (groups expanded by ``systemd-analyze syscall-filter``),
``RestrictAddressFamilies`` and ``MemoryDenyWriteExecute``. A call the filter lacks
would kill the daemon with SIGSYS in production, at the first message or at start.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bouncefilter_lab import write_config
from milter_client import PostfixClient

UNITS = Path(__file__).resolve().parent.parent / "contrib" / "systemd"
TRACED_CALL = re.compile(r"^\d+ +(\w+)\(", re.MULTILINE)
SOCKET_FAMILY = re.compile(r"^\d+ +socket(?:pair)?\((AF_\w+)", re.MULTILINE)


def unit_values(unit: str, key: str) -> list[str]:
    """Every value of ``key`` in the unit file, in order."""
    text = (UNITS / unit).read_text(encoding="utf-8")
    return [line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith(f"{key}=")]


def syscall_groups() -> dict[str, list[str]]:
    """systemd's system call groups: name (``@...``) to members (calls and groups)."""
    output = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    members: list[str] = []
    for line in output.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.split()[0], [])
        elif line.strip() and not line.strip().startswith("#"):
            members.append(line.split()[0])
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    """The system calls that ``names`` (calls and ``@groups``) stand for."""
    calls: set[str] = set()
    pending = list(names)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name.startswith("@"):
            pending.extend(groups[name])
        else:
            calls.add(name)
    return calls


def allowed_calls(unit: str) -> set[str]:
    """What the unit's ``SystemCallFilter`` lines allow: the first is an allow list, each
    ``~`` line takes its calls out again."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for value in unit_values(unit, "SystemCallFilter"):
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    return allowed


class TracedMilter:
    """``bouncefilter milter`` started under ``strace -f``, on a unix socket."""

    def __init__(self, folder: Path, engine: str) -> None:
        config = write_config(folder / "bouncefilter.yaml", {"shop.example.test": True}, engine=engine)
        socket_path, self.trace = folder / "milter.sock", folder / "strace.txt"
        self.spec = f"unix:{socket_path}"
        self.tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-s", "200", "-o", str(self.trace), sys.executable, "-m", "bouncefilter", "milter",
             "--config", str(config), "--socket", self.spec],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if self.tracer.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the milter did not start under strace")
            time.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM the milter, wait for it and strace to end; the whole trace."""
        children = Path(f"/proc/{self.tracer.pid}/task/{self.tracer.pid}/children")
        for pid in children.read_text().split() if children.exists() else ():
            subprocess.run(["kill", "-TERM", pid], check=False)
        try:
            self.tracer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.tracer.send_signal(signal.SIGKILL)
            self.tracer.wait()
        return self.trace.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def traced_milter(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TracedMilter]:
    tmp_path.chmod(0o755)
    milter = TracedMilter(tmp_path, request.param)
    yield milter
    milter.stop()


@pytest.mark.slow
@pytest.mark.parametrize("traced_milter", ["asyncio", "libmilter"], indirect=True)
def test_the_milter_makes_only_the_system_calls_its_unit_allows(traced_milter):
    for queue_id, sender in (("4TRK", "<orders@shop.example.test>"), ("4OTH", "<someone@other.example.test>")):
        client = PostfixClient(traced_milter.spec)
        client.negotiate()
        replies = client.message(sender, ["<customer@dest.example.test>"],
                                 [("Return-Path", "<returns@shop.example.test>"), ("Subject", "Your order")], queue_id)
        assert replies[-1] == (b"c", b"")
        client.quit()
    time.sleep(0.5)  # the writer thread's next round (every 100 ms) records the message
    text = traced_milter.stop()
    assert "bouncefilter milter stopped" in text, "the trace does not reach the milter's end"
    used = set(TRACED_CALL.findall(text))
    unit = "bouncefilter-milter.service"
    assert used - allowed_calls(unit) == set()
    assert set(SOCKET_FAMILY.findall(text)) <= set(" ".join(unit_values(unit, "RestrictAddressFamilies")).split())
    if unit_values(unit, "MemoryDenyWriteExecute") == ["yes"]:
        assert not re.search(r"mprotect\([^)]*PROT_EXEC|mmap\([^)]*PROT_WRITE\|PROT_EXEC", text)
