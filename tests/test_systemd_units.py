"""The hardening in contrib/systemd lets the daemons do their work.

There is no systemd to start the units under here, so each daemon runs its unit's
``ExecStart`` under strace instead, doing its work (the milter serving mail with either
engine, gunicorn serving the API, the forwarder sending by SMTP and web hook) and
stopping, and every system call it makes is checked against what its unit allows:
``SystemCallFilter`` (groups expanded by ``systemd-analyze syscall-filter``),
``RestrictAddressFamilies`` and ``MemoryDenyWriteExecute``. A call the filter lacks
would kill the daemon with SIGSYS in production, at the first message or at start.

The forwarder runs as an unprivileged user, as its unit does: as root SQLite makes a
call (``fchown``) that its filter refuses. The milter and the API run as root; their
filters keep the calls root adds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api_data import fetch, seed
from support.bouncefilter_lab import pipe_runtime, write_config
from support.forward_lab import KEY, Hooks, Mailbox, free_port, hook, make_site
from support.milter_client import PostfixClient

UNITS = Path(__file__).resolve().parent.parent / "contrib" / "systemd"
TRACED_CALL = re.compile(r"^\d+ +(\w+)\(", re.MULTILINE)
SOCKET_FAMILY = re.compile(r"^\d+ +socket(?:pair)?\((AF_\w+)", re.MULTILINE)


def unit_values(unit: str, key: str) -> list[str]:
    """Every value of ``key`` in the unit file, in order (continued lines joined)."""
    text = (UNITS / unit).read_text(encoding="utf-8").replace("\\\n", " ")
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


class Traced:
    """``argv`` run under ``strace -f`` (every thread and child process), until :meth:`stop`."""

    def __init__(self, folder: Path, argv: list[str], env: dict[str, str] | None = None, user: str = "") -> None:
        self.trace = folder / "strace.txt"
        self.tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-s", "200", "-o", str(self.trace), *(["-u", user] if user else []), *argv],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
        )

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if self.tracer.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{what} did not start under strace")
            time.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM the traced program, wait for it and strace to end; the whole trace."""
        children = Path(f"/proc/{self.tracer.pid}/task/{self.tracer.pid}/children")
        for pid in children.read_text().split() if children.exists() else ():
            os.kill(int(pid), signal.SIGTERM)
        try:
            self.tracer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.tracer.send_signal(signal.SIGKILL)
            self.tracer.wait()
        return self.trace.read_text(encoding="utf-8", errors="replace")


def assert_allowed_by(unit: str, trace: str) -> None:
    """Every call, socket and mapping in ``trace`` is one the unit lets through."""
    used = set(TRACED_CALL.findall(trace))
    assert used, "the trace is empty"
    assert used - allowed_calls(unit) == set()
    assert set(SOCKET_FAMILY.findall(trace)) <= set(" ".join(unit_values(unit, "RestrictAddressFamilies")).split())
    if unit_values(unit, "MemoryDenyWriteExecute") == ["yes"]:
        # One line each: a call strace cut off (``<unfinished ...>``) must not run on into the next
        # line's harmless PROT_READ|PROT_EXEC mapping of a library.
        assert not re.search(r"mprotect\([^)\n]*PROT_EXEC|mmap\([^)\n]*PROT_WRITE\|PROT_EXEC", trace)


def executable(unit: str, port: int = 0, bin_folder: Path = Path(sys.executable).parent) -> list[str]:
    """The unit's ``ExecStart``, its program taken from ``bin_folder`` (default: this
    virtual environment's), bound to ``port``."""
    (command,) = unit_values(unit, "ExecStart")
    argv = command.split()
    argv[0] = str(bin_folder / Path(argv[0]).name)
    return [re.sub(r"^127\.0\.0\.1:\d+$", f"127.0.0.1:{port}", arg) for arg in argv]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["asyncio", "libmilter"])
def test_the_milter_makes_only_the_system_calls_its_unit_allows(tmp_path, engine):
    tmp_path.chmod(0o755)
    socket_path = tmp_path / "milter.sock"
    config = write_config(tmp_path / "bouncefilter.yaml", {"shop.example.test": True}, socket=f"unix:{socket_path}",
                          engine=engine)
    milter = Traced(tmp_path, executable("bouncefilter-milter.service"), {"BOUNCEFILTER_CONFIG": str(config)})
    milter.wait_until(socket_path.exists, "the milter")
    for queue_id, sender in (("4TRK", "<orders@shop.example.test>"), ("4OTH", "<someone@other.example.test>")):
        client = PostfixClient(f"unix:{socket_path}")
        client.negotiate()
        replies = client.message(sender, ["<customer@dest.example.test>"],
                                 [("Return-Path", "<returns@shop.example.test>"), ("Subject", "Your order")], queue_id)
        assert replies[-1] == (b"c", b"")
        client.quit()
    time.sleep(0.5)  # the writer thread's next round (every 100 ms) records the message
    trace = milter.stop()
    assert "bouncefilter milter stopped" in trace, "the trace does not reach the milter's end"
    assert_allowed_by("bouncefilter-milter.service", trace)


@pytest.mark.slow
def test_the_api_under_gunicorn_makes_only_the_system_calls_its_unit_allows(tmp_path):
    served = seed(tmp_path)
    port = free_port()
    api = Traced(tmp_path, executable("bouncefilter-api.service", port), {"BOUNCEFILTER_CONFIG": served.config_path})
    api.wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), "gunicorn")
    rows = fetch(f"http://127.0.0.1:{port}/v1/bounces/2026-11-01/2026-11-04", served.tokens["shop"]).json()
    assert rows and all(row["account"] == "shop" for row in rows)  # type: ignore[index, union-attr]
    assert fetch(f"http://127.0.0.1:{port}/v1/bounces/2026-11-01/x", served.tokens["shop"]).status == 400
    trace = api.stop()
    assert "Shutting down: Master" in trace
    assert_allowed_by("bouncefilter-api.service", trace)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder that an unprivileged user may write in (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="bouncefilter-units-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["bouncefilter-forward-once.service", "bouncefilter-forward.service"])
def test_the_forwarder_makes_only_the_system_calls_its_unit_allows(shared_folder, unit):
    # As an unprivileged user, as the unit runs it (as root, SQLite also calls fchown,
    # which the forwarder's filter, ~@privileged, refuses), from an installation that
    # user can read (the checkout may lie in root's home).
    runtime = pipe_runtime(shared_folder / "runtime")
    with Mailbox() as box, Hooks([KEY]) as hooks:
        site = make_site(shared_folder, f"{{type: smtp, to: bounces@shop.example.com}}, {hook(hooks.url('/events'))}",
                         port=box.port)
        site.bounce()
        for path in shared_folder.glob("bf.db*"):
            path.chmod(0o666)
        forwarder = Traced(shared_folder, executable(unit, bin_folder=runtime.folder / "bin"),
                           {"BOUNCEFILTER_CONFIG": str(site.config)}, user="nobody")
        deadline = time.monotonic() + 60
        while not (box.envelopes and hooks.received) and time.monotonic() < deadline:
            time.sleep(0.1)
        trace = forwarder.stop()
    assert len(box.envelopes) == 1 and len(hooks.received) == 1
    assert_allowed_by(unit, trace)


def _answers(url: str) -> bool:
    try:
        return fetch(url).status == 200
    except OSError:
        return False
