"""The factory floor: name server, peers and MTAs up, every situation sent, bounces back.

:class:`Factory` picks a loopback block ``127.A.B.0/24`` of its own (so two runs on one
machine do not meet), and lays it out as:

=========  ===============================================================
``.53``    the name server (:mod:`factory.dns`), the MTAs' only resolver
``.10``    the peer: exchanger of ``peer.example.test`` and of the bounce domain
``.11``    the small peer (``SIZE`` limit), exchanger of ``small.example.test``
``.12``    the silent peer, exchanger of ``silent.example.test``
``.13``    nothing at all (connection refused), exchanger of ``closed.example.test``
``.14``    a second peer, exchanger of ``busy.example.test`` (the 421 situation)
``.21``..  the MTAs, one address each, port 25
=========  ===============================================================

``nxdomain.example.test`` does not exist; ``nomx.example.test`` exists with no records.
Each MTA gets every situation's message (:func:`factory.situations.sender` as envelope
sender, so the bounce says which MTA and situation it is for); the factory then waits
until every (MTA, situation) has its bounce, and its delay notice first where the MTA
sends them, or until :data:`DEADLINE` seconds have passed.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from factory import situations as sit
from factory.dns import NameServer, Zone
from factory.mtas import MTA, MTAS, Network
from factory.peer import Peer, Received, SilentPeer

#: Seconds to wait for every bounce after the last message was submitted.
DEADLINE = 150
#: The folder the golden bounces are written to by ``--factory-save``.
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "factory"


def unavailable() -> str | None:
    """Why the factory cannot run here (only: not root), or ``None``.

    A missing MTA is not a reason to skip: ``make test`` installs them, so a missing one
    is an error that :meth:`Factory.start` reports for that MTA's tests.
    """
    if os.geteuid() != 0:
        return "the bounce factory needs root (MTAs, port 25, mount namespaces)"
    return None


@dataclass
class Result:
    """What came back for one (MTA, situation): the messages in order of arrival."""

    mta: str
    situation: sit.Situation
    expectation: sit.Expectation
    messages: list[Received] = field(default_factory=list)
    expected: int = 1  # how many messages make it complete (a delay notice, then the bounce)
    error: str = ""  # why nothing could come back (the MTA did not start, submission failed)
    log: str = ""  # the MTA's log tail, kept when the result is incomplete

    @property
    def bounce(self) -> Received | None:
        """The final bounce: the last message, once all expected ones are in."""
        return self.messages[-1] if len(self.messages) >= self.expected else None

    @property
    def delay(self) -> Received | None:
        """The delay notice, when one is expected and came."""
        return self.messages[0] if self.expected > 1 and len(self.messages) >= 2 else None

    @property
    def complete(self) -> bool:
        return bool(self.error) or len(self.messages) >= self.expected


def message_for(mta: str, situation: sit.Situation) -> bytes:
    """The message sent for one situation: plain text, padded to the situation's size."""
    header = (
        f"From: Factory Sender <{sit.sender(mta, situation)}>\r\n"
        f"To: <{situation.recipient}>\r\n"
        f"Subject: factory {mta} {situation.name}\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{mta}.{situation.name}.{os.getpid()}@sender.example.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    line = "The bounce factory sends this message to see how it comes back.\r\n"
    body = line * max(1, situation.size // len(line))
    return (header + body).encode("ascii")


class Factory:
    """See the module docstring. Use as a context manager: ``start()`` ... ``stop()``."""

    def __init__(self, mtas: Iterable[type[MTA]] = MTAS, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="bouncefilter-factory-"))
        self.folder.chmod(0o755)
        rng = random.Random()
        self.net = f"127.{rng.randint(100, 250)}.{rng.randint(1, 250)}"
        self.mta_classes = tuple(mtas)
        self.mtas: dict[str, MTA] = {}
        self.errors: dict[str, str] = {}  # MTA name -> why it could not start
        self.results: dict[tuple[str, str], Result] = {}
        self._stoppers: list[object] = []

    def ip(self, host: int) -> str:
        return f"{self.net}.{host}"

    def zone(self) -> Zone:
        """The factory's DNS data (module docstring)."""
        exchangers = {
            sit.PEER_DOMAIN: "mx.peer.example.test",
            sit.RETURN_DOMAIN: "mx.peer.example.test",
            sit.SMALL_DOMAIN: "mx.small.example.test",
            sit.SILENT_DOMAIN: "mx.silent.example.test",
            sit.CLOSED_DOMAIN: "mx.closed.example.test",
            sit.BUSY_DOMAIN: "mx.busy.example.test",
        }
        addresses = {
            "mx.peer.example.test": self.ip(10),
            "mx.small.example.test": self.ip(11),
            "mx.silent.example.test": self.ip(12),
            "mx.closed.example.test": self.ip(13),
            "mx.busy.example.test": self.ip(14),
        }
        for index, mta in enumerate(self.mta_classes):
            addresses[f"{mta.name}.example.test"] = self.ip(21 + index)
        return Zone(addresses=addresses, exchangers=exchangers, empty={sit.NOMX_DOMAIN, "example.test"})

    def start(self) -> Factory:
        """Bring up the name server, the peers and every MTA (an MTA that fails to start
        is recorded in :attr:`errors`, the others go on)."""
        zone = self.zone()
        resolv = self.folder / "resolv.conf"
        resolv.write_text(f"nameserver {self.ip(53)}\noptions timeout:1 attempts:2\n")
        hosts = self.folder / "hosts"
        hosts.write_text("127.0.0.1\tlocalhost\n" + "".join(
            f"{ip}\t{name}\n" for name, ip in zone.addresses.items() if not name.startswith("mx.")))
        self.dns = NameServer(zone, self.ip(53)).start()
        self._stoppers.append(self.dns.close)
        self.peer = Peer(self.ip(10), "mx.peer.example.test").start()
        self._stoppers.append(self.peer.stop)
        small = Peer(self.ip(11), "mx.small.example.test", size_limit=sit.SMALL_LIMIT).start()
        self._stoppers.append(small.stop)
        silent = SilentPeer(self.ip(12)).start()
        self._stoppers.append(silent.stop)
        busy = Peer(self.ip(14), "mx.busy.example.test").start()
        self._stoppers.append(busy.stop)
        network = Network(resolv_conf=resolv, hosts=hosts)
        for index, cls in enumerate(self.mta_classes):
            folder = self.folder / cls.name
            folder.mkdir()
            mta = cls(folder, self.ip(21 + index), network)
            problem = cls.missing()
            if problem:
                self.errors[cls.name] = f"{cls.name} is not installed: {problem}"
                continue
            self.mtas[cls.name] = mta
            self._stoppers.append(mta.stop)
            try:
                mta.start()
            except Exception as exc:  # one MTA failing must not stop the others: report it
                self.errors[cls.name] = f"{cls.name} did not start: {exc}\n{mta.log()[-4000:]}"
                del self.mtas[cls.name]
        return self

    def run(self) -> dict[tuple[str, str], Result]:
        """Submit every situation to every MTA, then wait for the bounces (module docstring)."""
        for cls in self.mta_classes:
            for situation in cls.situations():
                expectation = cls.expectation(situation)
                expected = 2 if expectation.delay_reason is not None else 1
                result = Result(cls.name, situation, expectation, expected=expected)
                self.results[(cls.name, situation.name)] = result
                if cls.name in self.errors:
                    result.error = self.errors[cls.name]
        for name, mta in self.mtas.items():
            for situation in type(mta).situations():
                try:
                    mta.submit(sit.sender(name, situation), situation.recipient, message_for(name, situation))
                except Exception as exc:  # recorded per situation, shown by its test
                    self.results[(name, situation.name)].error = f"submission to {name} failed: {exc!r}"
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            self.collect()
            if all(result.complete for result in self.results.values()):
                break
            for mta in self.mtas.values():
                mta.tick()
            time.sleep(1)
        time.sleep(2)  # a second bounce for one message would be a bug worth seeing
        self.collect()
        for (name, _), result in self.results.items():
            if not result.complete and name in self.mtas:
                result.log = self.mtas[name].log()[-6000:]
        return self.results

    def collect(self) -> None:
        """Sort what the peer received so far into :attr:`results`."""
        for result in self.results.values():
            result.messages.clear()
        for received in self.peer.bounces:
            key = sit.parse_sender(received.recipient)
            if key in self.results:
                self.results[key].messages.append(received)

    def save(self, folder: Path) -> list[Path]:
        """Write every bounce as ``<mta>-<situation>.eml`` (and ``...-delay.eml``), as received."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for (mta, name), result in sorted(self.results.items()):
            for suffix, received in (("", result.bounce), ("-delay", result.delay)):
                if received is not None:
                    path = folder / f"{mta}-{name}{suffix}.eml"
                    path.write_bytes(received.message)
                    written.append(path)
        return written

    def stop(self) -> None:
        """Stop everything started, in reverse order; the folder stays for a look."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()  # type: ignore[operator]
            except Exception:  # stopping the rest matters more than one failure here
                pass

    def __enter__(self) -> Factory:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def remove(folder: Path) -> None:
    """Remove a factory folder (spools are root-owned; root runs the factory)."""
    shutil.rmtree(folder, ignore_errors=True)


def write_fixtures(results: dict[tuple[str, str], Result], folder: Path = FIXTURES) -> list[Path]:
    """Write every bounce and delay notice as a golden fixture for ``tests/test_fixtures.py``:
    ``<mta>-<situation>[-delay].eml`` exactly as received, and beside it the ``.json``
    expectation the situation stands for (outcome, and one record: recipient, kind,
    reason, hard)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (mta, name), result in sorted(results.items()):
        situation, expectation = result.situation, result.expectation
        notices = (("", "bounce", result.bounce, expectation.reason, expectation.hard),
                   ("-delay", "delay", result.delay, expectation.delay_reason, False))
        for suffix, kind, received, reason, hard in notices:
            if received is None:
                continue
            path = folder / f"{mta}-{name}{suffix}.eml"
            path.write_bytes(received.message)
            if kind == "delay" and expectation.delay_also:
                # This notice may be one that kept too little of the remote's words: it
                # stands for the declared alternative its text supports.
                from bouncefilter.classify.pipeline import classify

                said = [record.reason for record in classify(received.message).records]
                reason = said[0] if said and said[0] in expectation.delay_also else reason
            record = {"recipient": situation.recipient, "kind": kind, "reason": reason, "hard": hard}
            golden = {"outcome": "bounce", "records": [record]}
            path.with_suffix(".json").write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
            written.append(path)
    return written
