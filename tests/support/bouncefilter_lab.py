"""bouncefilter in the Postfix lab: the milter, the pipe transport and the whole loop.

:class:`Loop` puts bouncefilter on both paths of a running :class:`~postfix_lab.PostfixLab`,
as contrib/postfix wires it in production: ``bouncefilter milter`` on the submission
port, and ``bouncefilter pipe`` as the ``bouncefilter`` pipe service, run by Postfix as
an unprivileged user, both writing one SQLite database. Mail sent through the lab then
comes back as real bounces, which the tests, the demo (``tests/demo.py``) and the
benchmarks read from the database.

The pipe user cannot enter a 0700 home, where a checkout may lie: :func:`pipe_runtime`
installs what the pipe runs in a world-readable folder of the lab first. The building
blocks (:func:`write_config`, :class:`MilterProcess`) also serve the milter's own tests
and bench/milter.py. Complaints and auto-replies come from :func:`complaint` and
:func:`out_of_office`, written around a message as it left.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from support.postfix_lab import (
    BOUNCE_DOMAIN,
    PIPE_USER,
    POLL_SECONDS,
    SYSTEM_PYTHON,
    LabError,
    LabTimeout,
    end_process,
    listening,
    unix_listening,
)

#: The VERP signing key of every configuration :func:`write_config` writes.
VERP_KEY = "lab-signing-key-0123456789abcdef"


def checkout_python() -> str:
    """The interpreter with bouncefilter and pymilter: the checkout's .venv, else this one."""
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, its finished threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_config(path: Path, accounts: Mapping[str, bool], socket: str = "", level: str = "INFO",
                 forward: Mapping[str, str] | None = None, engine: str = "",
                 suppression: Mapping[str, str] | None = None, busy_timeout_ms: int | None = None) -> Path:
    """Write a bouncefilter.yaml for the lab at ``path``; returns ``path``.

    The database lies beside it, VERP addresses use the lab's bounce domain and
    :data:`VERP_KEY`, logs go to standard error. ``accounts`` maps a sender domain to
    tracking on or off; each account is named after its domain's first label.
    ``forward`` maps a sender domain to one target of that account, as YAML flow text;
    ``engine`` is ``milter.engine`` (default: the configuration's default).
    ``suppression`` maps a sender domain to that account's ``suppression`` settings, as
    YAML flow text (``{enforce: discard}``). ``busy_timeout_ms``: ``database_busy_timeout_ms``.
    """
    lines = [
        f"database: {path.parent / 'bouncefilter.db'}",
        *([f"database_busy_timeout_ms: {busy_timeout_ms}"] if busy_timeout_ms is not None else []),
        "verp:",
        f"  domain: {BOUNCE_DOMAIN}",
        f"  keys: [{VERP_KEY}]",
        "milter:",
        "  on_error: accept",  # as contrib/postfix/main.cf pairs it with milter_default_action
        *([f"  socket: {socket}"] if socket else []),
        *([f"  engine: {engine}"] if engine else []),
        "logging:",
        "  target: stderr",
        f"  level: {level}",
        "accounts:",
    ]
    for domain, tracking in accounts.items():
        lines += [f"  - name: {domain.split('.')[0]}", f"    domains: [{domain}]", f"    tracking: {str(tracking).lower()}"]
        if forward and domain in forward:
            lines.append(f"    forward: [{forward[domain]}]")
        if suppression and domain in suppression:
            lines.append(f"    suppression: {suppression[domain]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o644)
    return path


# -- what the pipe user runs ------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """An installation of bouncefilter the pipe user can run (see :func:`pipe_runtime`)."""

    folder: Path

    @property
    def python(self) -> Path:
        """Its interpreter."""
        return self.folder / "bin" / "python"

    @property
    def command(self) -> Path:
        """Its ``bouncefilter`` console script, as pip would write it."""
        return self.folder / "bin" / "bouncefilter"


#: The console script pip writes for ``bouncefilter = bouncefilter.cli.main:main``.
_SCRIPT = """\
#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from bouncefilter.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def pipe_runtime(folder: Path) -> Runtime:
    """Install bouncefilter in ``folder`` so that the pipe user can run it.

    Postfix runs the pipe as an unprivileged user, who cannot enter a 0700 home where
    the checkout and its .venv may lie (postfix-lab.md, pitfall 5). So the lab builds
    what a production install holds: a virtual environment made from ``/usr/bin/python3``
    (``folder`` must lie in a world-traversable place), with the bouncefilter package of
    this interpreter, the distributions it requires (not the test tools) and its console
    script, byte-compiled and readable by all. Needs this interpreter to have the system
    Python's version, as the checkout's .venv has. About a second.
    """
    import bouncefilter

    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        raise LabError(f"{SYSTEM_PYTHON} is Python {version}, this interpreter {sys.version_info[:2]}: "
                       f"run the lab from a venv made from {SYSTEM_PYTHON} (make venv)")
    runtime = Runtime(folder)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = Path(subprocess.run([str(runtime.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    shutil.copytree(Path(bouncefilter.__file__).parent, site / "bouncefilter")
    for distribution in _required("bouncefilter"):
        for file in distribution.files or ():
            if ".." not in file.parts:  # their console scripts are not needed
                (site / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(str(file.locate())), site / file)
    runtime.command.write_text(_SCRIPT.format(python=runtime.python), encoding="utf-8")
    subprocess.run([str(runtime.python), "-m", "compileall", "-q", str(site)], check=True)
    for path in (folder, *folder.rglob("*")):
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | (0o555 if path.is_dir() or path == runtime.command or mode & 0o100 else 0o444))
    return runtime


def _required(name: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``name`` requires, directly or not (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [name]
    while pending:
        for requirement in importlib.metadata.requires(pending.pop()) or ():
            wanted, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            key = re.split(r"[\s<>=!~\[(]", wanted.strip(), maxsplit=1)[0].lower().replace("_", "-")
            if key not in found:
                found[key] = importlib.metadata.distribution(key)
                pending.append(key)
    return list(found.values())


def as_user(user: str) -> dict[str, object]:
    """Keyword arguments for :mod:`subprocess` that run a command as ``user`` (from root)."""
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"}}


# -- the milter -------------------------------------------------------------------------


class MinimalMilter:
    """bench/minimal_milter.py, the benchmarks' yardstick, as a child process on a unix socket."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.postfix_spec = f"unix:{socket}"
        socket.unlink(missing_ok=True)
        script = Path(__file__).resolve().parents[2] / "bench" / "minimal_milter.py"
        # -P: with bench/ first on the path, ``import Milter`` would import bench/milter.py.
        self.process = subprocess.Popen([checkout_python(), "-P", str(script), self.postfix_spec],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LabError("bench/minimal_milter.py did not start")
            time.sleep(POLL_SECONDS)
        socket.chmod(0o666)  # Postfix's cleanup runs as postfix

    def terminate(self) -> None:
        """Send SIGTERM."""
        self.process.terminate()

    def stop(self) -> None:
        """SIGTERM, then wait for it."""
        self.process.terminate()
        self.process.wait(30)


class MilterProcess:
    """``bouncefilter milter`` as a child process, on a unix socket (a path) or on TCP (a port).

    ``postfix_spec`` is the socket as ``smtpd_milters`` names it. ``python`` is the
    interpreter that has bouncefilter and pymilter (default: this one).
    """

    def __init__(self, config: Path, socket: Path | int, log: Path, python: str = "") -> None:
        self.config = config
        self.socket = socket
        self.log = log
        self.python = python or sys.executable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def spec(self) -> str:
        """The socket as bouncefilter's ``--socket`` takes it."""
        return f"inet:{self.socket}@127.0.0.1" if isinstance(self.socket, int) else f"unix:{self.socket}"

    @property
    def postfix_spec(self) -> str:
        """The socket as Postfix's ``smtpd_milters`` takes it."""
        return f"inet:127.0.0.1:{self.socket}" if isinstance(self.socket, int) else f"unix:{self.socket}"

    def start(self, timeout: float = 15.0) -> MilterProcess:
        """Start it and wait until it accepts connections; :class:`LabError` with its output if
        it will not. A socket file left by an earlier milter is removed first: it would
        look ready before this one listens."""
        if isinstance(self.socket, Path):
            self.socket.unlink(missing_ok=True)
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [self.python, "-m", "bouncefilter", "milter", "--config", str(self.config), "--socket", self.spec],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LabError(f"bouncefilter milter did not listen on {self.spec}:\n{self.log.read_text()}")
            time.sleep(POLL_SECONDS)
        return self

    def terminate(self) -> None:
        """Send SIGTERM (libmilter then takes a few seconds to exit)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, SIGKILL if it lingers past ``timeout``; returns its exit code."""
        if self.process is None:
            return None
        self.terminate()
        end_process(self.process, timeout, terminate=False)
        return self.process.returncode

    def _listening(self) -> bool:
        if isinstance(self.socket, int):
            return listening(self.socket)
        return unix_listening(self.socket)


# -- the whole loop ---------------------------------------------------------------------


class Lab(Protocol):
    """What :class:`Loop` needs of a lab: the Postfix lab and the Sendmail lab
    (tests/support/sendmail_lab.py) both have it."""

    root: Path
    run_dir: Path

    def configure(self, **changes: object) -> None:
        """Apply settings (``milter``, ``keep_return_path``, ``pipe_user``, ``pipe_command``)."""

    def reset(self, **changes: object) -> None:
        """Empty the queue and what was received; the defaults with ``changes``."""

    def queue(self) -> str:
        """The queue listing, for a timeout's message."""

    def maillog(self, mark: int = 0) -> str:
        """The MTA's log, for a timeout's message."""


class Loop:
    """bouncefilter on both paths of a running lab, sharing one database.

    ``accounts``, ``forward`` and ``suppression`` as for :func:`write_config`; ``folder``
    is where in the lab its files live (``LAB/bouncefilter`` by default). :meth:`start` installs the runtime, makes the
    database folder the pipe user's, checks the configuration and creates the database as
    that user (``bouncefilter check-config``, ``bouncefilter db migrate``, as an
    administrator would), starts the milter (as root, from the same
    runtime) and points the lab at both; :meth:`stop` stops the milter. Everything lives
    in ``LAB/FOLDER`` and ``LAB/runtime``.
    """

    def __init__(self, lab: Lab, accounts: Mapping[str, bool], pipe_user: str = PIPE_USER,
                 forward: Mapping[str, str] | None = None, suppression: Mapping[str, str] | None = None,
                 folder: str = "bouncefilter", engine: str = "", busy_timeout_ms: int | None = None) -> None:
        self.lab = lab
        self.engine = engine
        self.busy_timeout_ms = busy_timeout_ms
        self.accounts = dict(accounts)
        self.forward = dict(forward or {})
        self.suppression = dict(suppression or {})
        self.pipe_user = pipe_user
        self.folder = lab.root / folder
        self.config = self.folder / "bouncefilter.yaml"
        self.database = self.folder / "bouncefilter.db"
        self.runtime = Runtime(lab.root / "runtime")
        self.milter: MilterProcess | None = None

    def start(self) -> Loop:
        """Install, create the database, start the milter, configure Postfix; see the class."""
        self.runtime = pipe_runtime(self.runtime.folder)
        user = pwd.getpwnam(self.pipe_user)
        self.folder.mkdir(exist_ok=True)
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o755)
        write_config(self.config, self.accounts, forward=self.forward, suppression=self.suppression,
                     engine=self.engine, busy_timeout_ms=self.busy_timeout_ms)
        self.bouncefilter("check-config")  # as contrib/postfix says; it keeps a parsed copy for the pipe
        self.bouncefilter("db", "migrate")
        self.milter = MilterProcess(self.config, self.lab.run_dir / "loop-milter.sock", self.folder / "milter.log",
                                    str(self.runtime.python)).start()
        self.lab.configure(**self.settings())
        return self

    def stop(self) -> int | None:
        """Stop the milter (a few seconds: libmilter); returns its exit code."""
        return self.milter.stop() if self.milter else None

    def running(self) -> Iterator[Loop]:
        """For a module's fixture: start, yield the loop, stop; then fail unless the
        milter exited 0 on SIGTERM."""
        try:
            yield self.start()
        finally:
            code = self.stop()
        assert code == 0, f"the milter exited {code} on SIGTERM:\n{self.folder.joinpath('milter.log').read_text()}"

    def emptied(self) -> Lab:
        """For a test's fixture: the lab emptied with the loop's settings, the database too."""
        self.lab.reset(**self.settings())
        self.clear()
        return self.lab

    def settings(self) -> dict[str, object]:
        """The lab's settings that put bouncefilter on both paths (for ``lab.reset``)."""
        assert self.milter is not None, "start() the loop first"
        return {"milter": self.milter.postfix_spec, "keep_return_path": True, "pipe_user": self.pipe_user,
                "pipe_command": (str(self.runtime.command), "--config", str(self.config))}

    def bouncefilter(self, *args: str) -> str:
        """Run ``bouncefilter ARGS`` as the pipe user; its standard output (LabError on failure)."""
        result = subprocess.run([str(self.runtime.command), "--config", str(self.config), *args],
                                capture_output=True, text=True, timeout=60, **as_user(self.pipe_user))  # type: ignore[call-overload]
        if result.returncode != 0:
            raise LabError(f"bouncefilter {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return str(result.stdout)

    def clear(self) -> None:
        """Delete every stored row (between tests)."""
        with self.connect() as conn:
            for table in ("outbox", "bounces", "raw_messages", "messages"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names

    def remote_copy(self, raw_id: int) -> bytes:
        """A stored message as another host would send it again: without the Return-Path
        the MTA added on delivery, CRLF line ends."""
        from bouncefilter import store

        conn = store.connect(str(self.database))
        try:
            raw = store.raw_message(conn, raw_id)
        finally:
            conn.close()
        assert raw is not None, f"no raw message {raw_id}"
        return _crlf_bytes(re.sub(rb"\AReturn-Path: <[^>]*>\r?\n", b"", raw))

    def connect(self) -> sqlite3.Connection:
        """A connection to the loop's database, rows as :class:`sqlite3.Row`."""
        conn = sqlite3.connect(self.database, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        """The rows of a query on the loop's database."""
        conn = self.connect()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def wait_rows(self, sql: str, *args: object, count: int = 1, timeout: float = 15.0) -> list[sqlite3.Row]:
        """Wait until the query returns at least ``count`` rows; returns them."""
        return _wait(lambda: _enough(self.rows(sql, *args), count), timeout, f"{count} row(s) of {sql!r} {args}",
                     self.lab)


def _enough(rows: list[sqlite3.Row], count: int) -> list[sqlite3.Row] | None:
    return rows if len(rows) >= count else None


def _wait(probe: Callable[[], list[sqlite3.Row] | None], timeout: float, what: str,
          lab: Lab) -> list[sqlite3.Row]:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise LabTimeout(f"timed out after {timeout:g} s waiting for {what}\n--- queue ---\n{lab.queue()}"
                             f"--- maillog (tail) ---\n{lab.maillog()[-4000:]}")
        time.sleep(POLL_SECONDS)
    return found


# -- mail that comes back without an MTA's DSN ---------------------------------------------


def complaint(original: bytes, recipient: str, *, to: str = f"fbl@{BOUNCE_DOMAIN}",
              reporter: str = "isp.example.net", feedback_type: str = "abuse") -> bytes:
    """An RFC 5965 (ARF) complaint by a mailbox provider about ``original``, the message
    as it reached ``recipient`` there, sent to ``to`` (a feedback loop address)."""
    boundary = f"arf-{os.urandom(6).hex()}"
    return _crlf(f"""\
From: Feedback Loop <fbl@{reporter}>
To: <{to}>
Subject: Complaint about a message to {recipient}
Date: {email.utils.formatdate()}
Message-ID: {email.utils.make_msgid(domain=reporter)}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for a message received from IP 127.0.0.1.
A user of {reporter} marked it as spam.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: ExampleFBL/2.1
Version: 1
Original-Rcpt-To: <{recipient}>
Arrival-Date: {email.utils.formatdate()}
Reporting-MTA: dns; mx.{reporter}
Source-IP: 127.0.0.1

--{boundary}
Content-Type: message/rfc822
Content-Disposition: inline

""").encode() + _crlf_bytes(original).rstrip(b"\r\n") + _crlf(f"\n\n--{boundary}--\n").encode()


def out_of_office(original: bytes, mailbox: str, verp: str) -> bytes:
    """An RFC 3834 out-of-office answer from ``mailbox`` to ``original``, sent back to
    its envelope sender ``verp``."""
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    subject = _header(head, "Subject")
    message_id = _header(head, "Message-ID")
    domain = mailbox.rpartition("@")[2]
    return _crlf(f"""\
From: <{mailbox}>
To: <{verp}>
Subject: Out of office: {subject}
Date: {email.utils.formatdate()}
Message-ID: {email.utils.make_msgid(domain=domain)}
In-Reply-To: {message_id}
References: {message_id}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Thank you for your message. I am out of the office until Monday with
limited access to email, and will answer when I am back.
""").encode()


def _header(head: str, name: str) -> str:
    unfolded = re.sub(r"\n[ \t]+", " ", head)
    found = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", unfolded, re.I | re.M)
    return found.group(1).strip() if found else ""


def _crlf(text: str) -> str:
    return re.sub(r"\r?\n", "\r\n", text)


def _crlf_bytes(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)
