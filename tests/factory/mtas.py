"""The MTAs of the factory, one class each, every one configured from scratch.

Each MTA runs as root from its own folder, listens on its own loopback address (port
25), names itself ``<name>.example.test``, delivers by MX lookups through the factory's
name server (so every domain goes where the zone says), and is tuned to give up within
seconds: a queue lifetime of :data:`LIFETIME` seconds, retries every second or two, a
delay notice after :data:`WARN_AFTER` seconds where the MTA can send one, connection and
greeting timeouts of a few seconds.

Every process of an MTA runs in a private mount namespace (:meth:`Network.command`)
whose ``/etc/resolv.conf`` and ``/etc/hosts`` are the factory's, plus bind mounts for
the compiled-in paths an MTA insists on (dma's ``/etc/dma``, OpenSMTPD's spool and
control socket), so nothing outside the factory's folders is read or written and no
lookup leaves loopback.

The binaries other than Postfix's come from the private root made by
``tests/factory/install.sh`` (:data:`PRIVATE_ROOT`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.situations import SITUATIONS, Expectation, Situation

from support.postfix_lab import DAEMONS

#: Where ``install.sh`` unpacks the MTAs (its FACTORY_ROOT, plus ``/root``).
PRIVATE_ROOT = Path(os.environ.get("FACTORY_ROOT", "/opt/bouncefilter-factory")) / "root"
#: Seconds after which every MTA gives up on a message it could not deliver.
LIFETIME = 25
#: Seconds after which an MTA that can sends its delay notice.
WARN_AFTER = 8
#: Connect and greeting timeouts, in seconds.
CONNECT_TIMEOUT = 3
GREETING_TIMEOUT = 4


class MTAError(RuntimeError):
    """An MTA could not be configured, started or stopped; the message says why."""


@dataclass(frozen=True)
class Network:
    """What every MTA needs to know of the factory: its folder's resolver files."""

    resolv_conf: Path
    hosts: Path

    def command(self, argv: list[str], binds: dict[str, Path] | None = None, hostname: str = "") -> list[str]:
        """``argv`` run in a fresh mount namespace with the factory's resolver files and
        ``binds`` (target path in the namespace -> our folder) bind-mounted; with
        ``hostname``, in a UTS namespace of its own too, where the host is so named (for
        MTAs that take their name from gethostname(2))."""
        mounts = {"/etc/resolv.conf": self.resolv_conf, "/etc/hosts": self.hosts, **(binds or {})}
        script = "".join(f'mount --bind "{source}" "{target}" && ' for target, source in mounts.items())
        namespaces = ["--mount", "--propagation", "private"]
        if hostname:
            namespaces.append("--uts")
            script += f"hostname {hostname} && "
        return ["unshare", *namespaces, "sh", "-c", script + 'exec "$@"', "sh", *argv]


class MTA:
    """One MTA instance; subclasses write the configuration and run the binaries."""

    name: ClassVar[str]
    #: Whether the MTA is configured to send delay notices (then expected for temporary situations).
    sends_delay_notices: ClassVar[bool] = False
    #: Situations (by name) the MTA cannot bring to a bounce in the factory, and why.
    unsupported: ClassVar[dict[str, str]] = {}
    #: The binaries the MTA needs, checked by :meth:`missing`.
    binaries: ClassVar[tuple[Path, ...]] = ()

    def __init__(self, folder: Path, address: str, network: Network) -> None:
        self.folder = folder
        self.address = address
        self.network = network
        self.hostname = f"{self.name}.example.test"
        self.processes: list[subprocess.Popen[bytes]] = []

    @classmethod
    def expectation(cls, situation: Situation) -> Expectation:
        """What this MTA's notices for ``situation`` stand for: by default the situation's
        reason, with a delay notice first for a temporary one if the MTA sends them."""
        delay = situation.reason if cls.sends_delay_notices and situation.temporary else None
        return Expectation(situation.reason, situation.hard, delay)

    @classmethod
    def situations(cls) -> tuple[Situation, ...]:
        """The situations this MTA runs (all but :attr:`unsupported`)."""
        return tuple(situation for situation in SITUATIONS if situation.name not in cls.unsupported)

    @classmethod
    def missing(cls) -> str | None:
        """What of this MTA is not installed, or ``None``."""
        for binary in cls.binaries:
            if not binary.exists():
                return f"{binary} (run tests/factory/install.sh; make test does)"
        return None

    def start(self) -> None:
        """Write the configuration and start the daemon; return once it accepts SMTP."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process the MTA started; safe to call twice."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def submit(self, sender: str, recipient: str, message: bytes) -> None:
        """Hand one message to the MTA (by default over SMTP to its address)."""
        with smtplib.SMTP(self.address, 25, local_hostname="client.example.test", timeout=30) as client:
            client.sendmail(sender, [recipient], message)

    def tick(self) -> None:
        """Called about once a second while the factory waits (e.g. to run the queue)."""

    def log(self) -> str:
        """The MTA's log so far, for a failing test's message."""
        return ""

    # helpers

    #: Whether the MTA's processes run in a UTS namespace named after it (:meth:`Network.command`).
    own_hostname: ClassVar[bool] = False

    def command(self, argv: list[str], binds: dict[str, Path] | None = None) -> list[str]:
        """``argv`` as run in the MTA's namespaces."""
        return self.network.command(argv, binds, self.hostname if self.own_hostname else "")

    def run(self, argv: list[str], binds: dict[str, Path] | None = None, timeout: float = 60) -> str:
        """Run one command in the MTA's namespace to completion; MTAError if it fails."""
        done = subprocess.run(self.command(argv, binds), capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise MTAError(f"{self.name}: {' '.join(argv)} exited {done.returncode}: "
                           f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def spawn(self, argv: list[str], log: Path, binds: dict[str, Path] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process in the MTA's namespace, output to ``log``."""
        with log.open("ab") as output:
            process = subprocess.Popen(
                self.command(argv, binds), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def wait_listening(self, timeout: float = 20) -> None:
        """Wait until the MTA answers on its SMTP port with a 220 greeting."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP(self.address, 25, local_hostname="probe.example.test", timeout=5) as client:
                    client.noop()
                return
            except (OSError, smtplib.SMTPException) as exc:
                last = str(exc)
                time.sleep(0.2)
        raise MTAError(f"{self.name} did not start listening on {self.address}:25 ({last})\n{self.log()[-3000:]}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def kill_pidfile(path: Path, timeout: float = 10) -> None:
    """Terminate the process whose pid ``path`` holds (if any) and wait for it to end."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for PID 1 to reap it counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# --------------------------------------------------------------------------- Postfix


class Postfix(MTA):
    """The system's Postfix 3.7, as a throwaway instance (see ``../shared/postfix-lab.md``).

    Delay notices: ``delay_warning_time``; give-up: ``maximal_queue_lifetime``.
    """

    name = "postfix"
    sends_delay_notices = True
    binaries = (Path("/usr/sbin/postfix"),)

    def main_cf(self) -> str:
        d = self.folder
        return f"""\
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {self.hostname}
mydomain = example.test
myorigin = $myhostname
mydestination =
local_transport = error:5.1.1 local delivery disabled in the factory
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtp_bind_address = {self.address}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_dns_support_level = enabled
smtp_host_lookup = dns
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = {LIFETIME}s
bounce_queue_lifetime = {LIFETIME}s
delay_warning_time = {WARN_AFTER}s
smtp_connect_timeout = {CONNECT_TIMEOUT}s
smtp_helo_timeout = {GREETING_TIMEOUT}s
biff = no
append_dot_mydomain = no
smtputf8_enable = no
"""

    # inet_interfaces cannot name an address of 127/8 other than 127.0.0.1 (postfix check
    # finds no such interface and exits 1, silently): the smtpd service names it instead.
    MASTER_CF = "{address}:25 inet n - n - - smtpd\n" + DAEMONS

    def start(self) -> None:
        etc = self.folder / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (self.folder / "spool").mkdir(mode=0o755, exist_ok=True)  # not data/: postfix check makes it
        self.folder.chmod(0o755)
        (etc / "main.cf").write_text(self.main_cf())
        (etc / "master.cf").write_text(self.MASTER_CF.format(address=self.address))
        self.run(["postfix", "-c", str(etc), "check"])
        self.run(["postfix", "-c", str(etc), "start"])
        self.wait_listening()

    def stop(self) -> None:
        etc = self.folder / "etc"
        if (etc / "main.cf").exists():
            subprocess.run(["postfix", "-c", str(etc), "stop"], capture_output=True, check=False)
            kill_pidfile(self.folder / "spool" / "pid" / "master.pid")

    def log(self) -> str:
        return _tail(self.folder / "maillog")


# --------------------------------------------------------------------------- Exim


#: What remains of an Exim delay warning whose reply it cut: the status's meaning.
_EXIM_CUT_DELAYS = {"speeding": "blocked", "toomanyconn": "securityerror"}


class Exim(MTA):
    """Exim 4.96 (Debian's exim4-daemon-light) from the private root, with a configuration
    of its own (not Debian's split one). Retry rule ``F,<LIFETIME>s,2s``: every 2 s until
    the lifetime is over, then the next failure bounces; ``delay_warning`` sends one
    delay notice."""

    name = "exim"
    sends_delay_notices = True
    binaries = (PRIVATE_ROOT / "usr/sbin/exim4",)

    @classmethod
    def expectation(cls, situation: Situation) -> Expectation:
        """When no connection could be made at all, Exim's notices name no cause: the bounce
        says "retry timeout exceeded", the delay notice only the address (the refusals are
        in its log alone). Words naming nothing stand for ``expired``, in both."""
        if situation.name == "refused":
            return Expectation("expired", False, delay_reason="expired",
                               note="Exim's notices say only 'retry timeout exceeded' for a refused connection")
        if situation.name in _EXIM_CUT_DELAYS:
            # Exim's delay warning sometimes cuts the remote's reply after about thirty
            # characters ("421 4.7.0 Too many concurren"): then only the status survives,
            # read for what RFC 3463 says of it.
            return Expectation(situation.reason, situation.hard, delay_reason=situation.reason,
                               delay_also=(_EXIM_CUT_DELAYS[situation.name],),
                               note="Exim's delay warning may keep only the reply's first thirty characters")
        return super().expectation(situation)

    def configuration(self) -> str:
        d = self.folder
        return f"""\
primary_hostname = {self.hostname}
qualify_domain = {self.hostname}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
local_interfaces = <; {self.address}.25
daemon_smtp_ports = 25
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
keep_environment =
acl_smtp_rcpt = acl_rcpt
delay_warning = {WARN_AFTER}s:1h
timeout_frozen_after = 2m
ignore_bounce_errors_after = 1m

begin acl

acl_rcpt:
  accept hosts = <; 127.0.0.0/8
  deny   message = relay not permitted

begin routers

remote:
  driver = dnslookup
  transport = remote_smtp
  no_more

begin transports

remote_smtp:
  driver = smtp
  interface = {self.address}
  helo_data = {self.hostname}
  connect_timeout = {CONNECT_TIMEOUT}s
  command_timeout = {GREETING_TIMEOUT}s
  hosts_try_chunking =
  hosts_try_prdr =

begin retry

*   *   F,{LIFETIME}s,2s

begin rewrite
"""

    def start(self) -> None:
        exim_user = pwd.getpwnam("Debian-exim")
        for sub in ("spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.folder / sub, exim_user.pw_uid, exim_user.pw_gid)
        self.folder.chmod(0o755)
        config = self.folder / "exim.conf"
        config.write_text(self.configuration())
        config.chmod(0o644)
        # Exim re-executes itself by its compiled-in path (/usr/sbin/exim4) for every queue
        # run: in its namespace the private root's sbin stands in for the system's.
        binds = {"/usr/sbin": PRIVATE_ROOT / "usr/sbin"}
        self.run(["/usr/sbin/exim4", "-C", str(config), "-bV"], binds)
        self.run(["/usr/sbin/exim4", "-C", str(config), "-bd", "-q1s"], binds)
        self.wait_listening()

    def stop(self) -> None:
        kill_pidfile(self.folder / "exim.pid")

    def log(self) -> str:
        return "".join(_tail(self.folder / "log" / f"{kind}log") for kind in ("main", "panic", "reject"))


# --------------------------------------------------------------------------- Sendmail


class Sendmail(MTA):
    """Sendmail 8.17 from the private root, its sendmail.cf made with m4 from sendmail-cf.
    Queue run every second (``-q1s``), ``Timeout.queuewarn`` for the delay notice and
    ``Timeout.queuereturn`` to give up."""

    name = "sendmail"
    sends_delay_notices = True
    binaries = (PRIVATE_ROOT / "usr/libexec/sendmail/sendmail", PRIVATE_ROOT / "usr/share/sendmail/cf/m4/cf.m4")

    def mc_head(self, purpose: str) -> str:
        """The start of a sendmail.mc for a private Sendmail in :attr:`folder`: its queue,
        pid and status files there, no aliases, no interface probing, no canonification,
        no MSA port, a relay for anyone from any domain, delivery in the background, logging at level 14;
        ``purpose`` is its comment. The factory's and the lab's (tests/support/sendmail_lab.py)
        add their own lines and MAILER()s."""
        d = self.folder
        cf = PRIVATE_ROOT / "usr/share/sendmail/cf"
        return f"""\
divert(-1)
# {purpose}
divert(0)dnl
include(`{cf}/m4/cf.m4')dnl
VERSIONID(`bouncefilter {self.name}')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{self.hostname}')dnl
define(`QUEUE_DIR', `{d}/queue')dnl
define(`STATUS_FILE', `{d}/statistics')dnl
define(`confPID_FILE', `{d}/sendmail.pid')dnl
define(`ALIAS_FILE', `')dnl
define(`confHOSTS_FILE', `/etc/hosts')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDEF_USER_ID', `mail:mail')dnl
define(`confMIN_QUEUE_AGE', `0')dnl
define(`confDELIVERY_MODE', `background')dnl
define(`confPRIVACY_FLAGS', `goaway')dnl
define(`confCON_EXPENSIVE', `False')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confLOG_LEVEL', `14')dnl
FEATURE(`promiscuous_relay')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`nocanonify')dnl
FEATURE(`no_default_msa')dnl
"""

    def mc(self) -> str:
        return self.mc_head("the bounce factory's Sendmail: relays everything by MX, gives up within seconds") + f"""\
define(`confTO_QUEUEWARN', `{WARN_AFTER}s')dnl
define(`confTO_QUEUERETURN', `{LIFETIME}s')dnl
define(`confTO_CONNECT', `{CONNECT_TIMEOUT}s')dnl
define(`confTO_ICONNECT', `{CONNECT_TIMEOUT}s')dnl
define(`confTO_INITIAL', `{GREETING_TIMEOUT}s')dnl
define(`confTO_HELO', `{GREETING_TIMEOUT}s')dnl
define(`confTO_MAIL', `{GREETING_TIMEOUT}s')dnl
define(`confTO_RCPT', `{GREETING_TIMEOUT}s')dnl
define(`SMTP_MAILER_FLAGS', `')dnl
FEATURE(`accept_unqualified_senders')dnl
DAEMON_OPTIONS(`Family=inet, Name=MTA, Addr={self.address}, Port=25')dnl
CLIENT_OPTIONS(`Family=inet, Addr={self.address}')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""

    def start(self) -> None:
        queue = self.folder / "queue"
        queue.mkdir(parents=True, exist_ok=True)
        queue.chmod(0o700)
        self.folder.chmod(0o755)
        (self.folder / "statistics").touch()
        (self.folder / "sendmail.mc").write_text(self.mc())
        built = subprocess.run(["m4", str(self.folder / "sendmail.mc")], capture_output=True, check=False)
        if built.returncode != 0:
            raise MTAError(f"sendmail: m4 failed: {built.stderr.decode(errors='replace')}")
        (self.folder / "sendmail.cf").write_bytes(built.stdout)
        binary = str(self.binaries[0])
        log = self.folder / "sendmail.log"
        # -bD: the daemon in the foreground (its log on stderr with -v? no: syslog is absent,
        # so -X traces SMTP sessions to a file, which is the log a failing test shows).
        self.spawn([binary, "-C", str(self.folder / "sendmail.cf"), "-bD", "-q1s",
                    "-X", str(self.folder / "transcript")], log)
        self.wait_listening()

    def log(self) -> str:
        return _tail(self.folder / "sendmail.log") + _tail(self.folder / "transcript")[-20000:]


# --------------------------------------------------------------------------- OpenSMTPD


class OpenSMTPD(MTA):
    """OpenSMTPD 6.8 from the private root, in the foreground (``-d``: its log on stderr).

    Its compiled-in paths are bind-mounted in its namespace: the queue
    (``/var/spool/smtpd``) and the control socket's folder (``/run``), so ``smtpctl``
    reaches this instance only. ``queue ttl`` gives up, ``bounce warn-interval`` sends
    the delay notice. Its scheduler waits minutes between retries (compiled in), so
    :meth:`tick` runs ``smtpctl schedule all`` every two seconds, as an administrator
    flushing the queue would.
    """

    name = "opensmtpd"
    sends_delay_notices = True
    own_hostname = True  # its bounces' From: and Reporting-MTA come from gethostname(2)
    binaries = (PRIVATE_ROOT / "usr/sbin/smtpd", PRIVATE_ROOT / "usr/sbin/smtpctl")
    #: Situations it cannot finish within the factory's deadline, and why.
    unsupported = {
        "timeout": "its SMTP client waits 300 s for a greeting (compiled in), past the factory's deadline",
    }

    @classmethod
    def expectation(cls, situation: Situation) -> Expectation:
        """OpenSMTPD 6.8 gives up with a notice that names no cause: "<rcpt>: Envelope
        expired" (under ``Action: delayed``, though the message is gone from the queue), so
        what it stands for is ``expired``, a final bounce, never hard. The delay notice
        before it keeps the reply's meaning. A domain with no MX is a temporary failure
        to OpenSMTPD ("No MX found for domain"), so it too warns, then expires."""
        if situation.name == "nomx":
            # "No MX found for domain", under a temporary status: the domain accepts no
            # mail (sisimai's notaccept for these words), not yet for good.
            return Expectation("expired", False, delay_reason="notaccept",
                               note="OpenSMTPD's expiry notice says only 'Envelope expired'")
        if situation.temporary:
            return Expectation("expired", False, delay_reason=situation.reason,
                               note="OpenSMTPD's expiry notice says only 'Envelope expired'")
        return super().expectation(situation)

    def binds(self) -> dict[str, Path]:
        return {"/var/spool/smtpd": self.folder / "spool", "/run": self.folder / "run"}

    def configuration(self) -> str:
        return f"""\
queue ttl {LIFETIME}s
bounce warn-interval {WARN_AFTER}s
listen on {self.address} port 25 hostname {self.hostname}
action "relay" relay helo {self.hostname} src {self.address}
match from any for any action "relay"
"""

    def start(self) -> None:
        for sub in ("spool", "run"):
            (self.folder / sub).mkdir(mode=0o711, exist_ok=True)
        self.folder.chmod(0o755)
        config = self.folder / "smtpd.conf"
        config.write_text(self.configuration())
        self.run([str(self.binaries[0]), "-n", "-f", str(config)], self.binds())
        self.spawn([str(self.binaries[0]), "-d", "-f", str(config)], self.folder / "smtpd.log", self.binds())
        self.wait_listening()
        self._last_schedule = 0.0

    def tick(self) -> None:
        if time.monotonic() - self._last_schedule >= 2:
            self._last_schedule = time.monotonic()
            subprocess.run(self.command([str(self.binaries[1]), "schedule", "all"], self.binds()),
                           capture_output=True, timeout=30, check=False)

    def log(self) -> str:
        return _tail(self.folder / "smtpd.log")


# --------------------------------------------------------------------------- dma


class DMA(MTA):
    """dma 0.13, the DragonFly Mail Agent, from the private root: no daemon, no SMTP
    server. :meth:`submit` runs ``dma -f SENDER RCPT`` with the message on stdin (in its
    namespace, where ``/etc/dma`` is this instance's folder); dma forks a delivery process
    that tries at once and bounces permanent failures at once.

    A temporary failure it retries for five days (``MAX_TIMEOUT``, compiled in), measured
    from its queue file's modification time. The factory fast-forwards those five days:
    :meth:`tick` backdates the queue files of messages older than :data:`LIFETIME`
    seconds by six days and runs ``dma -q``, which wakes the sleeping delivery process;
    its next failure finds the message too old and bounces it, exactly as it would on
    the sixth day. dma sends no delay notices.
    """

    name = "dma"
    binaries = (PRIVATE_ROOT / "usr/sbin/dma",)
    unsupported = {
        "timeout": "it waits minutes for a greeting (compiled in), past the factory's deadline",
    }
    FAST_FORWARD = 6 * 24 * 3600

    @classmethod
    def expectation(cls, situation: Situation) -> Expectation:
        """dma's give-up bounce replaces the last error with "Could not deliver for the last
        432000 seconds. Giving up.": it names no cause, so it stands for ``expired``."""
        if situation.temporary:
            return Expectation("expired", False, note="dma's give-up bounce names no cause")
        return super().expectation(situation)

    def binds(self) -> dict[str, Path]:
        return {"/etc/dma": self.folder / "etc"}

    def start(self) -> None:
        etc = self.folder / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        spool = self.folder / "spool"
        spool.mkdir(exist_ok=True)
        shutil.chown(spool, "root", "mail")
        spool.chmod(0o2770)
        self.folder.chmod(0o755)
        (etc / "aliases").write_text("")
        (etc / "dma.conf").write_text(f"SPOOLDIR {spool}\nMAILNAME {self.hostname}\nALIASES {etc}/aliases\n")
        self.environment = {**os.environ, "BOUNCEFILTER_FACTORY_DMA": str(self.folder)}
        self._submitted: dict[Path, float] = {}

    def submit(self, sender: str, recipient: str, message: bytes) -> None:
        done = subprocess.run(self.command([str(self.binaries[0]), "-f", sender, recipient], self.binds()),
                              input=message.replace(b"\r\n", b"\n"), capture_output=True, timeout=60,
                              env=self.environment, check=False)
        if done.returncode != 0:
            raise MTAError(f"dma exited {done.returncode}: {done.stderr.decode(errors='replace')}")

    def tick(self) -> None:
        now = time.time()
        stale = []
        for queue_file in (self.folder / "spool").glob("Q*"):
            try:
                age = now - queue_file.stat().st_mtime
            except FileNotFoundError:
                continue
            if LIFETIME < age < self.FAST_FORWARD:
                os.utime(queue_file, (now - self.FAST_FORWARD, now - self.FAST_FORWARD))
                stale.append(queue_file)
        if stale:
            subprocess.run(self.command([str(self.binaries[0]), "-q"], self.binds()), capture_output=True,
                           timeout=60, env=self.environment, check=False)

    def stop(self) -> None:
        """dma's delivery processes detach from us: find ours by the variable we gave them."""
        marker = f"BOUNCEFILTER_FACTORY_DMA={self.folder}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGTERM)
            except (OSError, ProcessLookupError):
                continue

    def log(self) -> str:
        return "dma logs to syslog only (absent here); its queue: " + " ".join(
            path.name for path in (self.folder / "spool").iterdir())


MTAS: tuple[type[MTA], ...] = (Postfix, Exim, Sendmail, OpenSMTPD, DMA)
BY_NAME: dict[str, type[MTA]] = {mta.name: mta for mta in MTAS}
