"""A throwaway Sendmail on loopback for end-to-end tests and the demo: the Sendmail lab.

One :class:`SendmailLab` is Debian's Sendmail 8.17 from the bounce factory's private root
(``tests/factory/install.sh``, which ``make test`` runs), as the factory runs it
(:class:`factory.mtas.Sendmail`: ``-bD -q1s`` in a mount and UTS namespace of its own,
named ``mx.example.test``, its ``/etc/hosts`` the lab's), with a sendmail.cf built by m4
from the factory's head, the production snippet ``contrib/sendmail/bouncefilter.mc``
(its bounce domain, socket, command and user replaced by the lab's) and the lab's peer:

- one aiosmtpd :class:`Peer` on another loopback port plays every remote host
  (``SMART_HOST``): it refuses ``bad.example.test`` with ``550 5.1.1``,
  ``soft.example.test`` with ``452 4.2.2`` and keeps everything else (see
  :meth:`SendmailLab.sink_messages`);
- the bounce domain goes by contrib's mailertable to contrib's ``bouncefilter`` mailer,
  whose command is a setting (:class:`~support.postfix_lab.Settings`' ``pipe_command``
  and ``pipe_user``, as in the Postfix lab; ``main`` holds extra m4 ``define()`` s here).

The lab speaks the Postfix lab's language where :class:`~support.bouncefilter_lab.Loop`
needs it (``run_dir``, ``configure``, ``reset``, ``queue``, ``maillog``, ``send``), so the
same loop runs on both. Sendmail has no log file without syslog: :meth:`maillog` is its
SMTP transcript (``-X``). Needs root and the factory's private root: :func:`unavailable`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from factory.mtas import PRIVATE_ROOT, MTAError, Network, Sendmail, kill_pidfile

from support.postfix_lab import (
    BOUNCE_DOMAIN,
    HARD_DOMAIN,
    HARD_REPLY,
    HOSTNAME,
    POLL_SECONDS,
    SOFT_DOMAIN,
    SOFT_REPLY,
    LabError,
    LabTimeout,
    Settings,
    SinkMessage,
    _replace,
    free_ports,
    smtp_send,
)
from support.postfix_lab import unavailable as postfix_unavailable

#: The loopback address the lab's Sendmail listens on (port 25), apart from the factory's.
ADDRESS = "127.0.0.25"
#: Where a lab makes its folder: root's, never world-writable on the way (Sendmail checks).
PARENT = "/run"
#: The Sendmail snippets shipped for production; the lab's configuration is built from them.
CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "sendmail"
CONTRIB_DOMAIN = "bounces.example.com"
CONTRIB_COMMAND = "/opt/bouncefilter/bin/bouncefilter"
CONTRIB_SOCKET = "unix:/run/bouncefilter/milter.sock"
CONTRIB_USER = "U=bouncefilter,"
CONTRIB_MAILERTABLE = "/etc/mail/mailertable"
#: What the lab's Sendmail adds to contrib's mc: sooner delay notices, no DNS, the peer.
_LAB_MC = """\
define(`confTO_QUEUEWARN', `1s')dnl
define(`confTO_QUEUERETURN', `1h')dnl
define(`confSERVICE_SWITCH_FILE', `{folder}/service.switch')dnl
define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {peer}')dnl
DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr={address}, Port=25')dnl
"""

_T = TypeVar("_T")


def unavailable() -> str | None:
    """Why no Sendmail lab can run here (not root, the factory's root missing), or ``None``."""
    reason = postfix_unavailable()  # root and the pipe user; Postfix's own programs are not needed
    if reason is not None and "root" in reason:
        return reason
    return Sendmail.missing()


class Peer:
    """The remote side: an aiosmtpd server refusing by domain and keeping the rest (in
    :attr:`received`, oldest first, as :class:`SinkMessage` with a path of its own)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.received: list[SinkMessage] = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,  # noqa: N802 - aiosmtpd's name
                          address: str, rcpt_options: list[str]) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == HARD_DOMAIN:
            return HARD_REPLY
        if domain == SOFT_DOMAIN:
            return SOFT_REPLY
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        with self.lock:
            path = self.folder / f"{len(self.received) + 1:04d}.eml"
            path.write_bytes(content)
            sender = envelope.mail_from or ""
            self.received.append(SinkMessage(path, "" if sender == "<>" else sender, tuple(envelope.rcpt_tos), content))
        return "250 2.0.0 Ok: kept"

    def clear(self) -> None:
        """Forget what was received."""
        with self.lock:
            self.received.clear()


class _Daemon(Sendmail):
    """The factory's Sendmail with the lab's mc: contrib's snippet, the peer, the bounce mailer."""

    own_hostname = True

    def __init__(self, lab: SendmailLab) -> None:
        super().__init__(lab.root / "sendmail", ADDRESS, lab.network)
        self.hostname = HOSTNAME
        self.lab = lab

    def mc(self) -> str:
        lab = self.lab
        return (self.mc_head("the bouncefilter Sendmail lab (tests/support/sendmail_lab.py)")
                + _LAB_MC.format(folder=self.folder, peer=lab.peer_port, address=ADDRESS)
                + contrib_mc(lab.settings, self.folder / "mailertable")
                + "".join(f"define(`{name}', `{value}')dnl\n" for name, value in lab.settings.main.items())
                + "MAILER(`smtp')dnl\n")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "service.switch").write_text("hosts files\n")
        mailertable = (CONTRIB / "mailertable").read_text().replace(CONTRIB_DOMAIN, BOUNCE_DOMAIN)
        self.run([str(PRIVATE_ROOT / "usr/libexec/sendmail/makemap"), "-C", "/dev/null", "hash",
                  str(self.folder / "mailertable")], input_text=mailertable)
        super().start()

    def run(self, argv: list[str], binds: dict[str, Path] | None = None, timeout: float = 60,  # type: ignore[override]
            input_text: str = "") -> str:
        done = subprocess.run(self.command(argv, binds), input=input_text.encode(), capture_output=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise MTAError(f"sendmail lab: {' '.join(argv)} exited {done.returncode}: "
                           f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def stop(self) -> None:
        super().stop()
        kill_pidfile(self.folder / "sendmail.pid")  # the queue runners it forked


def contrib_mc(settings: Settings, mailertable: Path) -> str:
    """contrib/sendmail/bouncefilter.mc for the lab: its bounce domain, the settings'
    milter socket (none: the INPUT_MAIL_FILTER line left out), pipe command and user, and
    ``mailertable``. :class:`LabError` if the snippet no longer has what the lab replaces."""
    text = (CONTRIB / "bouncefilter.mc").read_text(encoding="utf-8")
    command = settings.pipe_command
    if not command:
        raise LabError("the Sendmail lab needs a pipe_command (bouncefilter's runtime)")
    replacements = [(CONTRIB_DOMAIN, BOUNCE_DOMAIN), (f"P={CONTRIB_COMMAND},", f"P={command[0]},"),
                    ("A=bouncefilter pipe ", "A=" + " ".join(["bouncefilter", *command[1:], "pipe "])),
                    (CONTRIB_USER, f"U={settings.pipe_user},"), (CONTRIB_MAILERTABLE, str(mailertable))]
    if settings.milter:
        replacements.append((CONTRIB_SOCKET, settings.milter))
    for production, lab in replacements:
        if production not in text:
            raise LabError(f"contrib/sendmail/bouncefilter.mc no longer holds {production!r}")
        text = text.replace(production, lab)
    if not settings.milter:
        text = re.sub(r"^INPUT_MAIL_FILTER\(.*\n", "", text, flags=re.M)
    return text


class SendmailLab:
    """One Sendmail with its peer, in its own folder; see the module docstring.

    ``start()``/``stop()`` bracket its life; ``reset()`` empties the queue and what the
    peer kept between tests (and restarts Sendmail when the settings change: 0.1 s).
    """

    def __init__(self, root: Path | None = None, settings: Settings | None = None) -> None:
        self.own_root = root is None
        # Not under /tmp: Sendmail refuses maps and sockets below a world-writable folder.
        self.root = Path(tempfile.mkdtemp(prefix="bouncefilter-sendmail-lab-", dir=PARENT)) if root is None else root
        self.root.chmod(0o755)
        self.run_dir = self.root / "run"
        self.defaults = settings or Settings()
        self.settings = self.defaults
        self.peer_port = free_ports(1)[0]
        self.network = Network(self.root / "resolv.conf", self.root / "hosts")
        self.peer = Peer(self.root / "sink", self.peer_port)
        self.daemon = _Daemon(self)
        self.running = False

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> SendmailLab:
        """Write the configuration, start the peer and Sendmail."""
        for folder in (self.run_dir, self.peer.folder):
            folder.mkdir(mode=0o755, exist_ok=True)
        self.network.resolv_conf.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        self.network.hosts.write_text(f"127.0.0.1 localhost\n{ADDRESS} {HOSTNAME} mx\n")
        self.peer.controller.start()
        self.running = True
        if self.settings.pipe_command:
            self._start_daemon()
        return self

    def stop(self) -> None:
        """Stop Sendmail and the peer; safe to call twice."""
        self.daemon.stop()
        if self.running:
            self.peer.controller.stop()
        self.running = False

    def cleanup(self) -> None:
        """Stop, then delete the folder if the lab made it."""
        self.stop()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SendmailLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def configure(self, **changes: object) -> None:
        """Change :class:`Settings` fields: Sendmail is restarted with the new sendmail.cf."""
        self.settings = _replace(self.settings, changes)
        self._start_daemon()

    def reset(self, **changes: object) -> None:
        """Settings back to the defaults with ``changes``; the queue and the peer emptied
        (Sendmail is stopped for it, and started again)."""
        self.settings = _replace(self.defaults, changes)
        self.daemon.stop()
        queue = self.daemon.folder / "queue"
        for path in queue.iterdir() if queue.exists() else ():
            path.unlink()
        self.peer.clear()
        self._start_daemon()

    def _start_daemon(self) -> None:
        self.daemon.stop()
        self.daemon.processes.clear()
        try:
            self.daemon.start()
        except MTAError as exc:
            raise LabError(str(exc)) from None

    # -- mail in, mail out -----------------------------------------------------------

    def send(self, message: bytes, sender: str, recipients: Sequence[str], port: str = "smtp") -> str:
        """Send one message over SMTP; returns its queue id. ``port`` is for the Postfix
        lab's callers: Sendmail has one port (the milter leaves mail it does not sign alone)."""
        reply = smtp_send(ADDRESS, 25, message, sender, recipients)
        found = re.search(rb"2\.0\.0 (\w+) Message accepted", reply)
        return found.group(1).decode() if found else ""

    def sink_messages(self) -> list[SinkMessage]:
        """The messages the peer has kept, oldest first."""
        with self.peer.lock:
            return list(self.peer.received)

    def wait_sink(self, match: Callable[[SinkMessage], bool] = lambda m: True, count: int = 1,
                  timeout: float = 10.0) -> list[SinkMessage]:
        """Wait until ``count`` kept messages satisfy ``match``; returns them."""
        def probe() -> list[SinkMessage] | None:
            found = [message for message in self.sink_messages() if match(message)]
            return found if len(found) >= count else None
        return self.wait(probe, timeout, f"{count} message(s) at the peer")

    def queue(self) -> str:
        """Sendmail's queue listing (``mailq``)."""
        return self.daemon.run([str(self.daemon.binaries[0]), "-C", str(self.daemon.folder / "sendmail.cf"), "-bp"])

    def flush(self) -> None:
        """Run the queue now."""
        self.daemon.run([str(self.daemon.binaries[0]), "-C", str(self.daemon.folder / "sendmail.cf"), "-q"])

    def log_mark(self) -> int:
        """Where :meth:`maillog` ends now."""
        return len(self.maillog().encode())

    def maillog(self, mark: int = 0) -> str:
        """Sendmail's output and SMTP transcript from byte offset ``mark`` on."""
        return self.daemon.log().encode()[mark:].decode("utf-8", "replace")

    def wait(self, probe: Callable[[], _T | None], timeout: float, what: str) -> _T:
        """Poll ``probe`` until it returns something true; :class:`LabTimeout` with the queue."""
        deadline = time.monotonic() + timeout
        while not (found := probe()):
            if time.monotonic() > deadline:
                raise LabTimeout(f"timed out after {timeout:g} s waiting for {what}\n--- queue ---\n{self.queue()}"
                                 f"--- transcript (tail) ---\n{self.maillog()[-3000:]}")
            time.sleep(POLL_SECONDS)
        return found
