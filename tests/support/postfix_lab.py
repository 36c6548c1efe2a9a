"""A throwaway Postfix on loopback for end-to-end tests and benchmarks.

One :class:`PostfixLab` is one self-contained Postfix instance run by root from its own
folder (``etc`` = config_directory, ``spool`` = queue, ``data``, ``maillog``), with three
``smtp-sink`` peers playing the remote side:

- ``accept``: takes every message and saves it under ``sink/`` (see :class:`SinkMessage`);
- ``hard``: answers every RCPT with ``550 5.1.1`` (the domain ``bad.example.test``);
- ``soft``: answers every RCPT with ``452 4.2.2`` (the domain ``soft.example.test``).

Every other domain relays to the accepting peer. The Postfix configuration is built from
the production snippets in ``contrib/postfix`` (main.cf, master.cf, the transport map),
with the lab's bounce domain (``bounces.example.test``), folders, pipe user and pipe
command put in place of the production names, on top of the lab's own lines (loopback,
no DNS, the daemons) and the lab's peers: so the snippets are tested with it (see
:func:`contrib_master`). Mail for the bounce domain goes to contrib's ``bouncefilter``
pipe service, whose command is a setting: by default a small saver script that stores
each delivery with its envelope under ``bounces/`` (see :class:`PipeDelivery`); with
:func:`pipe_runtime`, the real ``bouncefilter pipe``. Two smtpd ports: ``submission``
(contrib's submission service: ``smtpd_milters`` from the settings and a cleanup service
that keeps a submitted ``Return-Path:``) and ``mx`` (no milters: the inbound path for
bounces).

No DNS, no syslog (the log is ``maillog``), every service ``chroot = n``, retries every
second. The facts behind each setting are in ``../shared/postfix-lab.md``. Needs root and
the ``postfix`` package (``smtp-sink`` comes with it): see :func:`unavailable`.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

HOSTNAME = "mx.example.test"
BOUNCE_DOMAIN = "bounces.example.test"
HARD_DOMAIN = "bad.example.test"
SOFT_DOMAIN = "soft.example.test"
HARD_REPLY = "550 5.1.1 Recipient address rejected: User unknown"
SOFT_REPLY = "452 4.2.2 Mailbox full"
#: The interpreter the pipe user runs: never one under a 0700 home (postfix-lab.md, pitfall 5).
SYSTEM_PYTHON = "/usr/bin/python3"
#: The pipe user when the settings name none: neither root nor postfix.
PIPE_USER = "nobody"
POLL_SECONDS = 0.02

_T = TypeVar("_T")


class LabError(RuntimeError):
    """The lab could not be started, configured or stopped; the message says why."""


class LabTimeout(AssertionError):
    """Waiting for mail timed out; the message carries the queue and the log's tail."""


def unavailable() -> str | None:
    """Why no lab can run here (not root, Postfix missing), or ``None`` when it can."""
    if os.geteuid() != 0:
        return "the Postfix lab needs root (postfix start refuses other users)"
    for program in ("postfix", "postsuper", "postqueue", "smtp-sink"):
        if shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"the Postfix lab needs {program} (apt-get install postfix; make test installs it)"
    try:
        pwd.getpwnam("postfix")
        pwd.getpwnam(PIPE_USER)
    except KeyError as exc:
        return f"the Postfix lab needs the system user {exc.args[0]}"
    return None


@dataclass(frozen=True)
class Settings:
    """What a test may change in a running lab (:meth:`PostfixLab.configure`).

    ``milter``: the submission port's ``smtpd_milters`` (``unix:/path``, ``inet:host:port``
    or empty). ``keep_return_path``: the submission port uses contrib's cleanup service,
    which keeps a submitted ``Return-Path:`` header for the milter; otherwise Postfix drops
    it before milters see it. ``pipe_command``: the program (with its first arguments)
    that stands where contrib/postfix/master.cf names ``/opt/bouncefilter/bin/bouncefilter``;
    contrib's ``pipe --queue-id ${queue_id} ${sender} ${recipient}`` follows it. Empty: the
    lab's saver script. ``pipe_user``: the pipe service's ``user=``. ``main``: extra
    main.cf parameters, overriding the lab's and contrib's.
    """

    milter: str = ""
    keep_return_path: bool = True
    pipe_command: tuple[str, ...] = ()
    pipe_user: str = PIPE_USER
    main: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SinkMessage:
    """One message saved by the accepting smtp-sink: its envelope as received, and content."""

    path: Path
    sender: str  # the MAIL FROM address without <>, empty for the null sender
    recipients: tuple[str, ...]
    message: bytes  # header and body as the peer received them

    @classmethod
    def read(cls, path: Path) -> SinkMessage:
        """Parse one smtp-sink dump file (``-d``): its X-* lines, its Received:, the message."""
        lines = path.read_bytes().split(b"\n")
        fields: dict[str, list[str]] = {}
        index = 0
        while index < len(lines) and lines[index].startswith(b"X-"):
            name, _, value = lines[index].decode("utf-8", "replace").partition(":")
            fields.setdefault(name.lower(), []).append(value.strip())
            index += 1
        if index < len(lines) and lines[index].startswith(b"Received:"):
            index += 1
            while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
                index += 1
        body = b"\n".join(lines[index:])
        if body.endswith(b"\n\n"):
            body = body[:-1]  # smtp-sink appends an empty line
        return cls(
            path=path,
            sender=_bare(fields.get("x-mail-args", [""])[0]),
            recipients=tuple(_bare(args) for args in fields.get("x-rcpt-args", [])),
            message=body,
        )


@dataclass(frozen=True)
class PipeDelivery:
    """One message the saver script got from the pipe transport, with its argv."""

    path: Path
    queue_id: str
    sender: str  # as pipe(8) expanded ${sender}: empty for a DSN (null_sender=)
    recipient: str
    message: bytes

    @classmethod
    def read(cls, path: Path) -> PipeDelivery:
        """Parse one file written by the saver: its argv as JSON on one line, then the message.

        The argv is contrib's: ``pipe --queue-id QUEUEID SENDER RECIPIENT``.
        """
        envelope, _, message = path.read_bytes().partition(b"\n")
        argv = json.loads(envelope)
        queue_id = argv[argv.index("--queue-id") + 1] if "--queue-id" in argv else ""
        return cls(path=path, queue_id=queue_id, sender=argv[-2], recipient=argv[-1], message=message)


def make_message(
    sender: str,
    to: str,
    subject: str = "Lab message",
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: str = "Hello from the bouncefilter Postfix lab.\n",
) -> bytes:
    """A small RFC 5322 message with a fresh Message-ID; ``headers`` come first, in order."""
    lines = [f"{name}: {value}" for name, value in headers]
    lines += [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {email.utils.formatdate(localtime=False)}",
        f"Message-ID: {email.utils.make_msgid(domain='sender.example.test')}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        body,
    ]
    return "\n".join(lines).replace("\n", "\r\n").encode("ascii")


class PostfixLab:
    """One Postfix instance with its peers, in its own folder; see the module docstring.

    ``start()`` and ``stop()`` bracket its life (``stop`` leaves no process behind and
    is safe to call twice); ``reset()`` empties the queue and the saved mail between tests.
    """

    def __init__(self, root: Path | None = None, settings: Settings | None = None, save_sink: bool = True) -> None:
        """Prepare a lab under ``root`` (default: a fresh folder in the system's temp dir).

        ``save_sink=False``: the accepting peer saves nothing (for benchmarks).
        """
        self.save_sink = save_sink
        self.own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="bouncefilter-lab-")) if root is None else root
        self.defaults = settings or Settings()
        self.settings = self.defaults
        self.etc = self.root / "etc"
        self.spool = self.root / "spool"
        self.sink = self.root / "sink"
        self.bounces = self.root / "bounces"
        self.run_dir = self.root / "run"
        self.log_file = self.root / "maillog"
        self.saver = self.root / "bin" / "save-delivery"
        self.ports = dict(zip(("submission", "mx", "accept", "hard", "soft"), free_ports(5)))
        self.sinks: dict[str, subprocess.Popen[bytes]] = {}
        self.running = False

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> PostfixLab:
        """Write the configuration, start the peers, check and start Postfix."""
        try:
            self._prepare()
            self._start_sinks()
            self._write_config()
            self.postfix("check")
            self.postfix("start")
            self.running = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Postfix (``abort`` and SIGKILL if it will not), the peers and any leftover."""
        if self.running or self._master_pid():
            self._stop_postfix()
        self.running = False
        for process in self.sinks.values():
            end_process(process)
        self.sinks.clear()
        self._kill_leftovers()

    def cleanup(self) -> None:
        """Stop, then delete the folder if the lab made it (unless $BOUNCEFILTER_LAB_KEEP)."""
        self.stop()
        if self.own_root and not os.environ.get("BOUNCEFILTER_LAB_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def reset(self, **changes: object) -> None:
        """Empty the queue, the sink and the saved deliveries; settings back to the defaults
        with ``changes`` applied (Postfix reloads only when that differs from now)."""
        wanted = _replace(self.defaults, changes)
        if wanted != self.settings:
            self._apply(wanted)
        self.run(["postsuper", "-c", str(self.etc), "-d", "ALL"])
        for folder in (self.sink, self.bounces):
            for path in folder.iterdir():
                if path.is_file():
                    path.unlink()

    def configure(self, **changes: object) -> None:
        """Change :class:`Settings` fields, rewrite the configuration and reload Postfix.

        Returns once ``master`` has reloaded: new connections and deliveries see the change.
        """
        self._apply(_replace(self.settings, changes))

    def _apply(self, settings: Settings) -> None:
        self.settings = settings
        self._write_config()
        master = self._master_pid()
        if master is None:
            raise LabError("Postfix is not running")
        # What "postfix reload" does, without its 2 s of checks (the lab writes valid files).
        # master logs the reload before it acts; it is done when it has replaced its children.
        old = _children(master)
        os.kill(master, signal.SIGHUP)
        self._wait(lambda: _reloaded(master, old), 10.0, "Postfix to reload")

    def __enter__(self) -> PostfixLab:
        try:
            return self.start()
        except BaseException:
            self.cleanup()  # the error carries the log's tail
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- mail in, mail out -----------------------------------------------------------

    def send(self, message: bytes, sender: str, recipients: Sequence[str], port: str = "submission") -> str:
        """Send one message over SMTP to ``port`` (``submission`` or ``mx``); returns its queue id.

        Raises :class:`smtplib.SMTPResponseException` when Postfix refuses any step.
        """
        reply = smtp_send("127.0.0.1", self.ports[port], message, sender, recipients)
        found = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        return found.group(1).decode() if found else ""

    def sink_messages(self) -> list[SinkMessage]:
        """The messages the accepting peer has finished receiving, oldest first."""
        paths = [path for path in self.sink.iterdir() if path.is_file()]
        # smtp-sink writes while it receives and closes the file at the end: a file it
        # still holds open (looked up after the listing) is incomplete.
        busy = _open_files(self.sinks["accept"].pid)
        paths = sorted((p for p in paths if str(p) not in busy), key=lambda p: p.stat().st_mtime_ns)
        return [SinkMessage.read(path) for path in paths]

    def deliveries(self) -> list[PipeDelivery]:
        """The messages the saver script has stored, oldest first."""
        paths = sorted(self.bounces.glob("*.eml"))
        return [PipeDelivery.read(path) for path in paths]

    def wait_sink(
        self, match: Callable[[SinkMessage], bool] = lambda m: True, count: int = 1, timeout: float = 10.0
    ) -> list[SinkMessage]:
        """Wait until ``count`` saved messages satisfy ``match``; returns them."""
        return self._wait(_at_least(self.sink_messages, match, count), timeout, f"{count} message(s) in the sink")

    def wait_deliveries(
        self, match: Callable[[PipeDelivery], bool] = lambda d: True, count: int = 1, timeout: float = 10.0
    ) -> list[PipeDelivery]:
        """Wait until the pipe's saver has stored ``count`` messages satisfying ``match``."""
        return self._wait(_at_least(self.deliveries, match, count), timeout, f"{count} pipe delivery(ies)")

    def wait_log(self, pattern: str, mark: int = 0, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the maillog after ``mark`` matches the regular expression ``pattern``."""
        return self._wait(lambda: re.search(pattern, self.maillog(mark), re.M), timeout, f"log line /{pattern}/")

    def maillog(self, mark: int = 0) -> str:
        """Postfix's log from byte offset ``mark`` (see :meth:`log_mark`) to the end."""
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(mark)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """The log's current end, to read only what comes after it."""
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def queue(self) -> str:
        """``postqueue -p``: what is still queued."""
        return self.run(["postqueue", "-c", str(self.etc), "-p"], check=False).stdout

    def flush(self) -> None:
        """``postqueue -f``: retry deferred mail now."""
        self.run(["postqueue", "-c", str(self.etc), "-f"])

    # -- commands --------------------------------------------------------------------

    def postfix(self, command: str) -> None:
        """``postfix -c ETC COMMAND``; raises :class:`LabError` with the log's tail on failure."""
        self.run(["postfix", "-c", str(self.etc), command])

    def run(self, argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an admin command; on failure raise :class:`LabError` with its output and the log."""
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=admin_env())
        if check and result.returncode != 0:
            raise LabError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}{result.stderr}\n"
                f"--- maillog (tail) ---\n{self._log_tail()}"
            )
        return result

    # -- internals -------------------------------------------------------------------

    def _prepare(self) -> None:
        nobody = pwd.getpwnam(PIPE_USER)
        self.root.chmod(0o755)  # mkdtemp gives 0700; postfix and the pipe user must get through
        for folder in (self.etc, self.spool, self.root / "bin", self.run_dir):
            folder.mkdir(mode=0o755, exist_ok=True)
        for folder in (self.sink, self.bounces):  # written by smtp-sink and the saver, as nobody
            folder.mkdir(mode=0o755, exist_ok=True)
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        self.saver.write_text(_SAVER.format(folder=str(self.bounces)), encoding="utf-8")
        self.saver.chmod(0o755)

    def _start_sinks(self) -> None:
        common = ["smtp-sink", "-u", PIPE_USER, "-h", "peer.example.test"]
        behaviours = {
            "accept": ["-d", f"{self.sink}/%H%M%S."] if self.save_sink else [],
            "hard": ["-f", "RCPT", "-B", HARD_REPLY],
            "soft": ["-r", "RCPT", "-b", SOFT_REPLY],
        }
        for name, options in behaviours.items():
            with (self.root / f"smtp-sink-{name}.log").open("wb") as log:
                self.sinks[name] = subprocess.Popen(
                    [*common, *options, f"127.0.0.1:{self.ports[name]}", "256"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, env=admin_env(),
                )
        for name, process in self.sinks.items():
            self._wait(lambda: process.poll() is not None or listening(self.ports[name]) or None, 10.0,
                       f"smtp-sink {name} to listen")
            if process.poll() is not None:
                raise LabError(f"smtp-sink {name} exited: {(self.root / f'smtp-sink-{name}.log').read_text()}")

    def _write_config(self) -> None:
        files = {
            "main.cf": _main_cf(self),
            "master.cf": _master_cf(self),
            "bouncefilter-transport": _transport(self),
        }
        past = time.time() - 60
        for name, text in files.items():
            path = self.etc / name
            path.write_text(text, encoding="utf-8")
            # Postfix waits (up to 2 s) until a file it loads is no longer "being modified".
            os.utime(path, (past, past))

    def _master_pid(self) -> int | None:
        try:
            pid = int((self.spool / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _stop_postfix(self) -> None:
        self.run(["postfix", "-c", str(self.etc), "stop"], check=False)
        if self._gone(self._master_pid, 5.0):
            return
        self.run(["postfix", "-c", str(self.etc), "abort"], check=False)
        if not self._gone(self._master_pid, 2.0):
            pid = self._master_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)

    def _kill_leftovers(self) -> None:
        """SIGKILL what still runs in the lab's folder (Postfix daemons chdir to the queue)."""
        if not self._gone(lambda: processes_in(self.root), 3.0):
            for pid in processes_in(self.root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _gone(self, probe: Callable[[], object], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while probe():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def _wait(self, probe: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise LabTimeout(
                    f"timed out after {timeout:g} s waiting for {what}\n--- queue ---\n{self.queue()}"
                    f"--- maillog (tail) ---\n{self._log_tail()}"
                )
            time.sleep(POLL_SECONDS)

    def _log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.maillog().splitlines()[-lines:])


def _main_cf(lab: PostfixLab) -> str:
    """main.cf: the lab's own lines (no local delivery, no DNS, loopback only, quick
    retries; postfix-lab.md), then contrib/postfix/main.cf's, then the settings' extras."""
    accept = f"smtp:[127.0.0.1]:{lab.ports['accept']}"
    parameters = {
        "compatibility_level": "3.6",
        "queue_directory": str(lab.spool),
        "data_directory": str(lab.root / "data"),  # postfix check creates it (pitfall 2)
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": HOSTNAME,
        "mydomain": "example.test",
        "myorigin": "$myhostname",
        "mydestination": "",
        "local_transport": "error:5.1.1 local delivery disabled in the lab",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "smtp_dns_support_level": "disabled",
        "smtp_host_lookup": "native",
        "lmtp_host_lookup": "native",
        "default_transport": accept,
        "relay_transport": accept,
        "recipient_delimiter": "+",
        "maillog_file": str(lab.log_file),
        "maillog_file_prefixes": str(lab.root),  # else every postfix command fails silently
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "delay_warning_time": "1s",
        "biff": "no",
        "append_dot_mydomain": "no",
        "smtputf8_enable": "no",
    }
    parameters.update(contrib_main(lab.etc))
    parameters.update(lab.settings.main)
    return "".join(f"{name} = {value}\n" for name, value in parameters.items())


#: The daemons of Debian's master.cf, every one ``chroot = n`` (a private Postfix cannot
#: chroot into its own folder): for any throwaway Postfix (the lab, the bounce factory).
DAEMONS = """\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def _master_cf(lab: PostfixLab) -> str:
    """master.cf: the lab's own services (the MX port, the daemons Debian's master.cf
    would hold, all ``chroot = n``), then contrib/postfix/master.cf's, adapted."""
    own = f"""\
127.0.0.1:{lab.ports['mx']} inet n - n - - smtpd
  -o syslog_name=postfix/mx
  -o smtpd_milters=
{DAEMONS}"""
    command = lab.settings.pipe_command or (SYSTEM_PYTHON, "-S", str(lab.saver))
    services = contrib_master(
        lab.etc, submission=f"127.0.0.1:{lab.ports['submission']}", milter=lab.settings.milter,
        keep_return_path=lab.settings.keep_return_path, pipe_user=lab.settings.pipe_user, pipe_command=command,
    )
    return own + services


def _transport(lab: PostfixLab) -> str:
    """The transport map: contrib's line for the bounce domain, then the lab's peers."""
    return (_contrib("bouncefilter-transport", lab.etc)
            + f"{HARD_DOMAIN}\tsmtp:[127.0.0.1]:{lab.ports['hard']}\n"
            + f"{SOFT_DOMAIN}\tsmtp:[127.0.0.1]:{lab.ports['soft']}\n")


# -- contrib/postfix, made the lab's ------------------------------------------------------

#: The Postfix snippets shipped for production; the lab's configuration is built from them.
CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "postfix"
#: The production names in the snippets: the bounce domain, Postfix's config folder, the
#: installed command and the pipe user.
CONTRIB_DOMAIN = "bounces.example.com"
CONTRIB_ETC = "/etc/postfix/"
CONTRIB_COMMAND = "/opt/bouncefilter/bin/bouncefilter"
CONTRIB_USER = "bouncefilter"
#: Options of contrib's submission service the lab cannot honour (no certificate, no SASL).
LAB_WITHOUT = frozenset({"smtpd_tls_security_level", "smtpd_sasl_auth_enable", "smtpd_tls_auth_only"})


def _contrib(name: str, etc: Path) -> str:
    """A contrib/postfix file with the lab's bounce domain and config folder in it."""
    text = (CONTRIB / name).read_text(encoding="utf-8")
    return text.replace(CONTRIB_DOMAIN, BOUNCE_DOMAIN).replace(CONTRIB_ETC, f"{etc}/")


def _logical_lines(text: str) -> list[list[str]]:
    """Postfix's logical lines: each a first line and its continuation lines (which start
    with white space); comments and blank lines left out."""
    entries: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and entries:
            entries[-1].append(line.strip())
        else:
            entries.append([line.strip()])
    return entries


def contrib_main(etc: Path) -> dict[str, str]:
    """The parameters contrib/postfix/main.cf sets, for a lab whose config folder is ``etc``."""
    parameters = {}
    for entry in _logical_lines(_contrib("main.cf", etc)):
        name, equals, value = " ".join(entry).partition("=")
        if not equals:
            raise LabError(f"contrib/postfix/main.cf: not a 'name = value' line: {entry[0]!r}")
        parameters[name.strip()] = value.strip()
    return parameters


def contrib_master(
    etc: Path, *, submission: str, milter: str, keep_return_path: bool, pipe_user: str, pipe_command: Sequence[str]
) -> str:
    """contrib/postfix/master.cf's services, adapted to the lab.

    Every service runs unchrooted; the ``submission`` service listens on ``submission``
    (host:port) with ``smtpd_milters=milter``, without the TLS and SASL options
    (:data:`LAB_WITHOUT`) and, unless ``keep_return_path``, without contrib's cleanup
    service; the pipe service runs as ``pipe_user`` the program ``pipe_command`` in place
    of the installed ``bouncefilter``. :class:`LabError` if the snippet no longer has
    what the lab replaces.
    """
    lines = []
    found = set()
    for entry in _logical_lines(_contrib("master.cf", etc)):
        fields = entry[0].split()
        if len(fields) != 8:
            raise LabError(f"contrib/postfix/master.cf: not a service line: {entry[0]!r}")
        fields[4] = "n"
        options = entry[1:]
        if fields[0] == "submission":
            found.add("submission")
            fields[0] = submission
            options = _submission_options(options, milter, keep_return_path)
        elif fields[7] == "pipe":
            found.add("pipe")
            options = _pipe_options(options, pipe_user, pipe_command)
        lines += [" ".join(fields), *(f"  {option}" for option in options)]
    if found != {"submission", "pipe"}:
        raise LabError(f"contrib/postfix/master.cf: no {' or '.join({'submission', 'pipe'} - found)} service")
    return "\n".join(lines) + "\n"


def _submission_options(options: Sequence[str], milter: str, keep_return_path: bool) -> list[str]:
    kept = []
    for option in options:
        name = option.removeprefix("-o ").partition("=")[0].strip()
        if name in LAB_WITHOUT or (name == "cleanup_service_name" and not keep_return_path):
            continue
        kept.append(f"-o smtpd_milters={milter}" if name == "smtpd_milters" else option)
    return kept


def _pipe_options(options: Sequence[str], user: str, command: Sequence[str]) -> list[str]:
    text = "\n".join(options)
    for production, lab in ((f"user={CONTRIB_USER} ", f"user={user} "),
                            (f"argv={CONTRIB_COMMAND} ", f"argv={_pipe_argv(command)} ")):
        if production not in text:
            raise LabError(f"contrib/postfix/master.cf: the pipe service has no {production.strip()!r}")
        text = text.replace(production, lab)
    return text.split("\n")


def _pipe_argv(words: Sequence[str]) -> str:
    """Words for pipe(8)'s ``argv=``: one holding white space goes in ``{ }`` (Postfix >= 3.0)."""
    return " ".join(f"{{{word}}}" if re.search(r"\s", word) else word for word in words)


#: The pipe transport's stand-in: store the message with its argv, atomically (tmp + rename).
_SAVER = '''\
"""bouncefilter Postfix lab: save one pipe(8) delivery (argv as JSON, then the message)."""
import json, os, sys, time
folder = {folder!r}
name = "%d-%d" % (time.time_ns(), os.getpid())
temporary = os.path.join(folder, "." + name + ".tmp")
with open(temporary, "wb") as handle:
    handle.write(json.dumps(sys.argv[1:]).encode() + b"\\n")
    handle.write(sys.stdin.buffer.read())
os.rename(temporary, os.path.join(folder, name + ".eml"))
'''


def _replace(settings: Settings, changes: Mapping[str, object]) -> Settings:
    """``settings`` with ``changes``; a pipe command given as any sequence becomes a tuple."""
    if "pipe_command" in changes:
        changes = {**changes, "pipe_command": tuple(changes["pipe_command"])}  # type: ignore[arg-type]
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def _at_least(
    read: Callable[[], list[_T]], match: Callable[[_T], bool], count: int
) -> Callable[[], list[_T] | None]:
    def probe() -> list[_T] | None:
        found = [item for item in read() if match(item)]
        return found if len(found) >= count else None

    return probe


def _bare(args: str) -> str:
    """The address of an SMTP command argument string: ``<a@b> SIZE=1`` -> ``a@b``."""
    first = args.split(" ", 1)[0] if args else ""
    return first[1:-1] if first.startswith("<") and first.endswith(">") else first


def smtp_send(host: str, port: int, message: bytes, sender: str, recipients: Sequence[str]) -> bytes:
    """Send one message over SMTP to ``host:port`` step by step; the reply to its DATA.

    Raises :class:`smtplib.SMTPResponseException` when the server refuses any step.
    """
    with smtplib.SMTP(host, port, local_hostname="client.example.test", timeout=30) as smtp:
        smtp.ehlo()
        code, reply = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.data(message)
    return reply


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_listening(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False


def admin_env() -> dict[str, str]:
    """The environment for Postfix's commands: sbin on PATH, no inherited MAIL_CONFIG."""
    env = {key: value for key, value in os.environ.items() if key != "MAIL_CONFIG"}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    return env


def _state(pid: int) -> str:
    """The process state letter from /proc (``Z`` for a zombie), empty when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[0]


def _alive(pid: int) -> bool:
    # Orphans stay zombies for a while here (postfix-lab.md, pitfall 12): Z means gone.
    return _state(pid) not in ("", "Z", "X")


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: {pid: command name}."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        state, parent = rest.split()[:2]
        if int(parent) == pid and state not in ("Z", "X"):
            found[int(entry)] = name
    return found


def _reloaded(master: int, old: Mapping[int, str]) -> bool:
    """Whether ``master`` has replaced the children ``old`` (qmgr runs again, none of them)."""
    now = _children(master)
    return not set(old) & set(now) and "qmgr" in now.values()


def _open_files(pid: int) -> set[str]:
    """The paths of the files process ``pid`` has open."""
    found: set[str] = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for descriptor in descriptors:
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{descriptor}"))
        except OSError:
            continue
    return found


def processes_in(root: Path) -> list[int]:
    """Live processes whose working directory lies under ``root``, ourselves excluded."""
    found = []
    prefix = str(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (cwd == prefix or cwd.startswith(prefix + "/")) and _alive(int(entry)):
            found.append(int(entry))
    return found


def end_process(process: subprocess.Popen[bytes], timeout: float = 3.0, terminate: bool = True) -> None:
    """Terminate one child we started, then kill it if it lingers; always reap it."""
    if process.poll() is None:
        if terminate:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

