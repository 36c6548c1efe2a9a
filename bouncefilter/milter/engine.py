"""The milter's own protocol engine: one asyncio loop serving every MTA connection.

It drives the same ``Milter.Base`` objects pymilter's libmilter engine does, through a
context object with pymilter's methods (``getsymval``, ``chgfrom``, ``addheader``,
``chgheader``, ``delrcpt``, ``setreply``), so the milter's logic and its ``Milter.testctx`` tests are
the engine's too. What it saves is libmilter's cost per packet: a worker thread woken
and Python's GIL taken for every header, which made the milter cost Postfix a third
of its throughput (bench/milter.py). Here a connection's packets are read together,
answered in one write, and no other thread competes for the interpreter.

The socket file helpers (:func:`unix_path`, :func:`share_socket`, :class:`SocketFile`)
serve both engines.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, cast

import uvloop

from bouncefilter.milter import wire

#: How long a connection may send nothing before it is closed (libmilter's default).
IDLE_TIMEOUT = 7210.0
#: The most MTA connections served at once: well above Postfix's default process limit
#: (100 smtpd, each with one connection per milter).
MAX_CONNECTIONS = 1000
#: How often the warning that connections are refused over the limit is repeated, at most.
REFUSAL_WARNING_SECONDS = 60.0
#: The longest a packet may stay unfinished (Postfix writes every packet whole).
PARTIAL_SECONDS = 30.0
#: Open files the milter needs besides its MTA connections (database, log, sockets).
FILE_HEADROOM = 32
#: How often the warning that connections near the open-file limit is repeated, at most.
FILE_WARNING_SECONDS = 60.0
log = logging.getLogger(__name__)

# pymilter's (libmilter's SMFIS_*) return codes and protocol bits, as plain ints: the
# engine does not import pymilter, whose C module needs libmilter.
CONTINUE = 0
REJECT = 1
ACCEPT = 3
TEMPFAIL = 4
NOREPLY = 7
#: The bit that says a step takes no reply, by command.
NO_REPLY_BITS = {
    wire.CONNECT: 0x1000, wire.HELO: 0x2000, wire.MAIL: 0x4000, wire.RCPT: 0x8000, wire.DATA: 0x10000,
    wire.UNKNOWN: 0x20000, wire.EOH: 0x40000, wire.BODY: 0x80000, wire.HEADER: 0x80,
}
#: Macro stages searched by ``getsymval``, latest first, as libmilter does.
MACRO_ORDER = (wire.BODYEOB, wire.EOH, wire.DATA, wire.RCPT, wire.MAIL, wire.HELO, wire.CONNECT)
#: The stages whose macros belong to one message (cleared when the next one starts).
MESSAGE_STAGES = (wire.MAIL, wire.RCPT, wire.DATA, wire.EOH, wire.BODYEOB)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How often a stopping milter looks whether its messages in flight are done, in seconds.
DRAIN_POLL = 0.05


class Limits(NamedTuple):
    """What the engine allows each MTA connection, and how many it serves at once.

    ``idle_timeout``: seconds a connection may send nothing before it is closed (a packet
    left unfinished: a thirtieth of it, at most :data:`PARTIAL_SECONDS`).
    ``max_connections``: connections beyond it are closed as soon as they are accepted,
    before the negotiation is answered; the MTA then treats that milter as failed
    (Postfix: ``milter_default_action``; Sendmail: the filter's ``F=`` flag).
    """

    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


class MilterStartError(Exception):
    """The milter cannot start (socket folder missing, cannot bind, wrong socket group)."""


class Handler(Protocol):
    """What the engine calls: the parts of ``Milter.Base`` bouncefilter's milter uses."""

    def _setctx(self, ctx: Any) -> None: ...
    def negotiate(self, opts: list[int]) -> int: ...
    def envfrom_bytes(self, *args: bytes) -> int: ...
    def envrcpt_bytes(self, *args: bytes) -> int: ...
    def data(self) -> int: ...
    def header_bytes(self, name: str, value: bytes) -> int: ...
    def eom(self) -> int: ...
    def abort(self) -> int: ...
    def close(self) -> int: ...


class Context:
    """pymilter's ``milterContext`` for one connection: macros in, modifications out.

    Modifications are only allowed at end of message, as in libmilter. Macros are kept
    as they came, by stage, and decoded when first asked for: Postfix sends a macro
    packet before nearly every step, each header included, whether the milter takes the
    step or not, and the milter reads two of them.
    """

    def __init__(self) -> None:
        self.macros: dict[bytes, bytes | dict[str, str]] = {}
        self.macro_lists: dict[int, bytes] = {}
        self.modifications: list[bytes] = []
        self.reply_text = ""
        self.at_end = False
        self._priv: object = None

    def setpriv(self, priv: object) -> None:
        self._priv = priv

    def getpriv(self) -> object:
        return self._priv

    def getsymval(self, name: str) -> str | None:
        """A macro's value, from the latest stage that sent it (``i`` also finds ``{i}``)."""
        other = name[1:-1] if name.startswith("{") and name.endswith("}") else "{" + name + "}"
        for stage in MACRO_ORDER:
            values = self.macros.get(stage)
            if isinstance(values, bytes):
                values = self.macros[stage] = wire.macro_values(values)
            if values:
                value = values.get(name, values.get(other))
                if value is not None:
                    return value
        return None

    def chgfrom(self, sender: str, params: str | None = None) -> None:
        self._modify(wire.chgfrom(sender, params))

    def addheader(self, field: str, value: str, idx: int = -1) -> None:
        self._modify(wire.addheader(field, value) if idx < 0 else wire.insheader(idx, field, value))

    def chgheader(self, field: str, idx: int, value: str | None) -> None:
        self._modify(wire.chgheader(field, idx, value))

    def delrcpt(self, rcpt: str) -> None:
        self._modify(wire.delrcpt(rcpt))

    def setsymlist(self, stage: int, macros: str) -> None:
        """Ask for only ``macros`` (space-separated names) at ``stage`` (negotiation only)."""
        self.macro_lists[stage] = macros.encode("ascii")

    def setreply(self, rcode: str, xcode: str | None = None, msg: str | None = None, *lines: str) -> None:
        """The reply to the step's reject or tempfail, as libmilter writes it: ``rcode
        xcode msg`` in one line (``smfi_setreply``), the text as given, many words and its
        ``%`` already doubled (``Milter.Base.setreply`` insists on it); with further
        ``lines`` (``smfi_setmlreply``) one SMTP reply line each, joined by CRLF, all
        but the last with a hyphen after the code."""
        texts = (msg or "", *lines)
        last = len(texts) - 1
        self.reply_text = "\r\n".join(
            rcode + ("-" if index < last else " ") + " ".join(part for part in (xcode, text) if part)
            for index, text in enumerate(texts))

    def _modify(self, packet: bytes) -> None:
        if not self.at_end:
            raise RuntimeError("a milter may change the message only at end of message")
        self.modifications.append(packet)

    def forget_message(self) -> None:
        """Drop the macros of the message that ended."""
        for stage in MESSAGE_STAGES:
            self.macros.pop(stage, None)


class Session(asyncio.Protocol):
    """One MTA connection: packets in, the handler's replies out, one write per read."""

    def __init__(self, factory: Callable[[], Handler], on_error: str, sessions: set[Session],
                 limits: Limits = Limits()) -> None:
        self._factory = factory
        self._idle_timeout = limits.idle_timeout
        self._max_connections = limits.max_connections
        self._timer: asyncio.TimerHandle | None = None
        self._failure_reply = TEMPFAIL if on_error == "tempfail" else CONTINUE
        self._sessions = sessions
        self._decoder = wire.Decoder()
        self._context = Context()
        self._handler: Handler | None = None
        self._offer: tuple[int, int] = (0, 0)
        self._protocol = 0
        self._transport: asyncio.Transport | None = None
        self._tcp: socket.socket | None = None
        self._closing = False

    # -- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport, though they are one.
        self._transport = transport = cast(asyncio.Transport, transport)
        if len(self._sessions) >= self._max_connections:
            _refuse(transport, self._max_connections)
            return
        self._sessions.add(self)
        _watch_files(len(self._sessions))
        sock = transport.get_extra_info("socket")
        self._tcp = sock if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) else None
        if self._tcp is not None:  # find out about an MTA host that went away, as libmilter does
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._arm(self._idle_timeout)

    def _arm(self, seconds: float) -> None:
        """Close the connection unless more comes within ``seconds``."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire, seconds)

    def _expire(self, seconds: float) -> None:
        what = "an unfinished packet" if self._decoder.pending else "nothing"
        log.warning("milter connection dropped: %s for %g s", what, seconds)
        self.close()

    def data_received(self, data: bytes) -> None:
        if self._tcp is not None:
            # Acknowledge at once: Postfix sets no TCP_NODELAY, so after a step that takes
            # no reply, Nagle would hold its next packet until a delayed ACK (about 40 ms).
            self._tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        replies = []
        try:
            for command, payload in self._decoder.feed(data):
                reply = self._step(command, payload)
                if reply:
                    replies.append(reply)
                if self._closing:
                    break
        except wire.ProtocolError as exc:
            log.warning("milter connection dropped: %s", exc)
            self.close()
            return
        if replies and self._transport is not None:
            self._transport.write(b"".join(replies))
        if self._closing:
            self.close()
            return
        self._arm(min(self._idle_timeout / 30, PARTIAL_SECONDS) if self._decoder.pending else self._idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._end_handler()
        self._sessions.discard(self)

    def close(self) -> None:
        """Close the connection (the handler is told by :meth:`connection_lost`)."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    # -- the protocol -----------------------------------------------------------------

    def _step(self, command: bytes, payload: bytes) -> bytes | None:
        if command == wire.MACRO:
            stage, values = wire.macro_stage(payload)
            if stage == wire.MAIL:
                self._context.forget_message()
            self._context.macros[stage] = values
            return None
        handler = self._handler
        if command == wire.OPTNEG:
            return self._negotiate(payload)
        if handler is None:
            log.warning("milter connection dropped: command %r before negotiation", command)
            self._closing = True
            return None
        if command == wire.HEADER:
            parts = wire.strings(payload)
            name = parts[0].decode("ascii", "surrogateescape") if parts else ""
            return self._answer(command, lambda: handler.header_bytes(name, parts[1] if len(parts) > 1 else b""))
        if command == wire.RCPT:
            return self._answer(command, lambda: handler.envrcpt_bytes(*wire.strings(payload)))
        if command == wire.MAIL:
            return self._answer(command, lambda: handler.envfrom_bytes(*wire.strings(payload)))
        if command == wire.BODYEOB:
            return self._end_of_message(handler)
        if command == wire.DATA:
            return self._answer(command, handler.data)
        if command in (wire.CONNECT, wire.HELO, wire.EOH, wire.BODY, wire.UNKNOWN):
            return self._answer(command, lambda: CONTINUE)
        if command == wire.ABORT:
            self._call(handler.abort)
            self._context.forget_message()
            return None
        if command == wire.QUIT:
            self._closing = True
            return None
        if command == wire.QUIT_NC:  # the next SMTP session comes over this connection
            self._end_handler()
            self._context = Context()
            self._start_handler()
            return None
        log.warning("milter connection dropped: unknown command %r", command)
        self._closing = True
        return None

    def _negotiate(self, payload: bytes) -> bytes:
        version, actions, protocol = wire.parse_optneg(payload)
        self._offer = (actions, protocol)
        self._end_handler()  # negotiated again: a new start
        opts = self._start_handler()
        return wire.optneg_reply(min(version, wire.VERSION), opts[0], opts[1], self._context.macro_lists)

    def _start_handler(self) -> list[int]:
        """A new handler for the connection, negotiated on the MTA's offer; the options."""
        handler = self._factory()
        handler._setctx(self._context)
        opts = [self._offer[0], self._offer[1], 0, 0]
        self._call(lambda: handler.negotiate(opts))
        self._protocol = opts[1]
        self._handler = handler
        return opts

    def _end_handler(self) -> None:
        handler, self._handler = self._handler, None
        if handler is not None:
            self._call(handler.close)
            handler._setctx(None)

    def _answer(self, command: bytes, callback: Callable[[], int]) -> bytes | None:
        """Run a step's callback; its reply, unless the step was negotiated to take none."""
        rc = self._call(callback)
        if self._protocol & NO_REPLY_BITS[command]:
            return None
        return self._verdict(CONTINUE if rc == NOREPLY else rc)

    def _end_of_message(self, handler: Handler) -> bytes:
        context = self._context
        context.at_end = True
        try:
            rc = self._call(handler.eom)
        finally:
            context.at_end = False
        modifications, context.modifications = context.modifications, []
        if rc not in (CONTINUE, ACCEPT):  # the message is refused: nothing to change
            modifications = []
        context.forget_message()
        return b"".join(modifications) + self._verdict(rc)

    def _verdict(self, rc: int) -> bytes:
        text, self._context.reply_text = self._context.reply_text, ""
        if text and rc in (REJECT, TEMPFAIL):
            return wire.replycode(text)
        return wire.packet(wire.VERDICTS.get(rc, wire.CONTINUE_REPLY))

    def _call(self, callback: Callable[[], int]) -> int:
        """The callback's return code; an exception is logged and answered as ``milter.on_error`` says."""
        try:
            return int(callback())
        except Exception:
            log.exception("milter callback failed")
            return self._failure_reply


class SocketFile(NamedTuple):
    """A unix socket file as this milter created it."""

    path: str
    created: os.stat_result


_warned_at = [-FILE_WARNING_SECONDS]


def _watch_files(connections: int) -> None:
    """Warn (once a minute at most) when the MTA connections near the open-file limit:
    past it, the event loop resets every new connection without a word, and Postfix
    then applies milter_default_action to its mail."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    now = time.monotonic()
    if limit != resource.RLIM_INFINITY and connections >= limit - FILE_HEADROOM and \
            now - _warned_at[0] >= FILE_WARNING_SECONDS:
        _warned_at[0] = now
        log.warning("%d MTA connections open and %d files allowed (RLIMIT_NOFILE): new connections are reset "
                    "once they run out; raise LimitNOFILE (systemd) or the limit", connections, limit)


#: When the refusals were last said, and how many there were since.
_refusals = [-REFUSAL_WARNING_SECONDS, 0.0]


def _refuse(transport: asyncio.Transport, limit: int) -> None:
    """Close a connection over ``milter.max_connections`` unanswered, and say so (once a
    minute at most, with how many were refused since it was last said)."""
    transport.abort()
    _refusals[1] += 1
    now = time.monotonic()
    if now - _refusals[0] >= REFUSAL_WARNING_SECONDS:
        log.warning("%d MTA connections refused: %d are open (milter.max_connections); the MTA applies its "
                    "default action to their mail (Postfix: milter_default_action)", _refusals[1], limit)
        _refusals[:] = [now, 0.0]


def unix_path(spec: str) -> str:
    """The file of a ``unix:`` or ``local:`` socket, ``""`` for ``inet:``."""
    kind, _, rest = spec.partition(":")
    return rest if kind in ("unix", "local") else ""


def tcp_address(spec: str) -> tuple[str, int]:
    """(host, port) of ``inet:PORT@HOST`` or ``inet6:PORT@[HOST]``; no host means all addresses."""
    kind, _, rest = spec.partition(":")
    port, _, host = rest.partition("@")
    host = host.strip("[]") or ("::" if kind == "inet6" else "0.0.0.0")
    return host, int(port)


def share_socket(path: str, group: str | None) -> None:
    """Give the socket file to ``group`` with mode 0660, so that Postfix may connect."""
    if group is None:
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("no group %r on this system: the socket %s keeps the mode the umask gave it", group, path)
        return
    try:
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    except OSError as exc:
        raise MilterStartError(
            f"cannot give the socket {path} to group {group}: {exc.strerror}"
            f" (run the milter as a member of {group}, or set milter.socket_group)") from None


def remove_socket(socket_file: SocketFile | None) -> None:
    """Remove the socket file this milter made, unless another has replaced it since."""
    if socket_file is None:
        return
    try:
        if _identity(os.stat(socket_file.path)) == _identity(socket_file.created):
            os.unlink(socket_file.path)
    except OSError:
        pass


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    # An inode number is soon reused; with the change time it names one file.
    return status.st_dev, status.st_ino, status.st_ctime_ns


class Flight(Protocol):
    """The messages in flight (bouncefilter.milter.service.InFlight)."""

    def close(self) -> None: ...
    def wait(self, timeout: float) -> int: ...


def run(spec: str, factory: Callable[[], Handler], *, group: str | None, on_error: str, flight: Flight,
        stop_timeout: float, on_listening: Callable[[], None], limits: Limits = Limits()) -> None:
    """Serve ``spec`` until SIGTERM, SIGINT or SIGHUP; raises :class:`MilterStartError`.

    On the signal, messages already started may finish (up to ``stop_timeout`` seconds)
    while new ones are refused by the handler (``milter.on_error``); then the socket and
    every connection are closed. A second signal stops at once.

    The loop is uvloop's: its sockets and transports are C where asyncio's are Python,
    which takes a tenth or more off the milter's CPU time per message (Postfix opens a
    connection for every SMTP session, often one message).
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(spec, factory, group, on_error, flight, stop_timeout, on_listening, limits))


async def _serve(spec: str, factory: Callable[[], Handler], group: str | None, on_error: str, flight: Flight,
                 stop_timeout: float, on_listening: Callable[[], None], limits: Limits) -> None:
    loop = asyncio.get_running_loop()
    sessions: set[Session] = set()
    server, socket_file = await _listen(spec, group, lambda: Session(factory, on_error, sessions, limits))
    stopping = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal(number: int) -> None:
        if stopping.is_set():
            hurry.set()
            return
        log.info("%s: stopping", signal.Signals(number).name)
        stopping.set()

    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, on_signal, number)
    try:
        on_listening()
        await stopping.wait()
        flight.close()  # still listening: a message that starts now goes as on_error says
        deadline = loop.time() + stop_timeout
        while (left := flight.wait(0)) and loop.time() < deadline and not hurry.is_set():
            await asyncio.sleep(DRAIN_POLL)
        if left:
            log.warning("stopping with %d messages still in flight", left)
        server.close()
        for session in list(sessions):
            session.close()
        await asyncio.sleep(0)  # let the transports close
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
        server.close()
        remove_socket(socket_file)


async def _listen(spec: str, group: str | None,
                  protocol: Callable[[], Session]) -> tuple[asyncio.AbstractServer, SocketFile | None]:
    loop = asyncio.get_running_loop()
    path = unix_path(spec)
    try:
        if not path:
            host, port = tcp_address(spec)
            server = await loop.create_server(protocol, host, port, reuse_address=True, backlog=socket.SOMAXCONN)
            return server, None
        if not os.path.isdir(os.path.dirname(path) or "."):
            raise MilterStartError(f"the folder of the socket {path} does not exist")
        server = await loop.create_unix_server(protocol, path, backlog=socket.SOMAXCONN)  # replaces a stale socket file
    except OSError as exc:
        raise MilterStartError(f"cannot listen on {spec}: {exc.strerror or exc}") from None
    try:
        share_socket(path, group)
    except MilterStartError:
        server.close()
        os.unlink(path)
        raise
    return server, SocketFile(path, os.stat(path))
