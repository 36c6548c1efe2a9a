"""The outbound milter (``bouncefilter milter``): signed VERP envelope senders.

For each message the MTA shows it, the milter finds the account (SASL login, envelope
sender, sender domain: :mod:`bouncefilter.core.accounts`) and then, at end of message:

- tracking on: ``MAIL FROM`` becomes a fresh ``PREFIX+TOKEN@VERP_DOMAIN`` (with
  ``ENVID=TOKEN`` when the client gave no envelope id), the header
  :data:`~bouncefilter.core.record.TRACKING_HEADER` carries the token (complaints return
  headers, not the envelope), and the message is recorded in the store with the
  address of a submitted ``Return-Path:`` header as its own bounce address;
- tracking off: only a submitted ``Return-Path:`` header changes anything: its address
  becomes the envelope sender;
- either way every ``Return-Path:`` header is removed once read.

Null-sender mail, mail whose sender is already in the VERP domain and mail no account
claims is left untouched: let through at end of message unchanged (at MAIL FROM when
the MTA waits for an answer there).

A failure never takes the daemon down: an exception in a callback is logged and the
message goes on unchanged (``milter.on_error: accept``) or is tempfailed; a failed
database write is logged and the message still leaves with its VERP address (the MAC
proves it is ours). The milter asks the MTA only for the actions it uses (CHGFROM,
ADDHDRS, CHGHDRS, and SETSYMLIST to name the macros it reads).

Only end of message takes a reply (:class:`QuietMilter`): one round trip per message,
as for a milter that asks for nothing else. The protocol is spoken by
:mod:`bouncefilter.milter.engine` (the default) or by pymilter's libmilter
(``milter.engine``), which answers every step on TCP (:class:`AnsweringMilter`).
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import secrets
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import Milter  # type: ignore[import-untyped]
import milter as libmilter  # type: ignore[import-not-found]

from bouncefilter import store
from bouncefilter.classify import mime
from bouncefilter.config import Account, Settings, signing_keys
from bouncefilter.core import accounts, verp
from bouncefilter.core.record import TRACKING_HEADER
from bouncefilter.milter import engine
from bouncefilter.milter.engine import MilterStartError

log = logging.getLogger(__name__)

#: The name the milter registers with libmilter.
NAME = "bouncefilter"
#: Everything the milter may ask the MTA to do: change the sender and headers, and name
#: the macros it wants at the stages it reads them (SETSYMLIST, :data:`MACROS`).
ACTIONS: int = Milter.CHGFROM | Milter.ADDHDRS | Milter.CHGHDRS | Milter.SETSYMLIST
#: The MTA's macros the milter reads, by protocol stage: the SASL login and the queue id.
MACROS = {Milter.M_ENVFROM: ("{auth_authen}", "i"), Milter.M_EOM: ("i",)}
#: Callback replies (pymilter's constants, typed).
CONTINUE: int = Milter.CONTINUE
NOREPLY: int = Milter.NOREPLY
ACCEPT: int = Milter.ACCEPT
TEMPFAIL: int = Milter.TEMPFAIL
#: What :meth:`OutboundMilter._start` returns when the message is to go as ``milter.on_error`` says.
_FAILED = -1
#: The headers the milter reads (lower case).
READ_HEADERS = frozenset({"return-path", "message-id", "subject"})
#: Longest Subject or Message-ID recorded, in characters.
MAX_FIELD = 998
#: Most sent messages queued for the database, and most written in one transaction.
MAX_QUEUE = 100_000
MAX_BATCH = 500
#: The database writer's shortest time between two commits, in seconds.
BATCH_SECONDS = 0.1
#: The signals that stop the milter, and how long libmilter may then take to return.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LIBMILTER_STOP_SECONDS = 15
TEMPFAIL_REPLY = ("451", "4.3.0", "bouncefilter cannot process this message now, try again later")


@dataclass(frozen=True)
class Policy:
    """What the milter decides with, prepared once from the settings."""

    accounts: tuple[Account, ...]
    verp_domain: str = ""
    prefix: str = "b"
    signing_key: bytes = b""
    on_error: str = "accept"
    envid: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy for ``settings``; raises ``ConfigError`` if the VERP keys are unreadable."""
        keys = signing_keys(settings.verp)
        return cls(
            accounts=settings.accounts,
            verp_domain=settings.verp.domain or "",
            prefix=settings.verp.prefix,
            signing_key=keys[0] if keys else b"",
            on_error=settings.milter.on_error,
            envid=settings.milter.envid,
        )


class Recorder:
    """Writes sent messages to the store from one writer thread, many rows per transaction.

    :meth:`record` only appends to a deque (no lock, no wake-up), so end of message never
    waits for the database: SQLite takes one writer at a time, and writers that find the
    database locked back off in sleeps of milliseconds. The writer wakes every ``window``
    seconds and writes all that has arrived meanwhile in one transaction, so a row lands
    up to ``window`` after its message was accepted (a bounce may come back sooner;
    readers must not rely on the row being there). A failed write is logged (queue id
    and token of every message lost) and never raised; the mail has gone out anyway.

    Commits do not wait for the disk (:func:`store.connect` with ``durable=False``): each
    would cost an fsync, a large part of the milter's CPU time, for rows that are only
    queued in memory until then anyway. A power cut may lose the last records, as it loses
    what is queued; the MAC in the token still proves such a message's bounces ours.
    """

    def __init__(self, path: str, max_queue: int = MAX_QUEUE, window: float = BATCH_SECONDS,
                 busy_timeout_ms: int = store.BUSY_TIMEOUT_MS) -> None:
        self._path = path
        self._window = window
        self._busy_timeout_ms = busy_timeout_ms
        self._max_queue = max_queue
        # Sent messages, and the events of flush() and close() (None) in their place.
        self._queue: collections.deque[store.SentMessage | threading.Event | None] = collections.deque()
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._write_queue, name="recorder", daemon=True)
        self._writer.start()

    def record(self, message: store.SentMessage) -> None:
        """Queue ``message`` for writing (logged and dropped if the queue is full)."""
        if len(self._queue) >= self._max_queue:
            _lost([message], self._path, "the write queue is full")
            return
        self._queue.append(message)

    def flush(self) -> None:
        """Wait until everything queued so far is written (or has failed)."""
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        done.wait()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer (waiting up to ``timeout`` seconds)."""
        self._queue.append(None)
        self._wake.set()
        self._writer.join(timeout)

    def _write_queue(self) -> None:
        conn: store.Connection | None = None
        stop = False
        while not stop:
            self._wake.wait(self._window)
            self._wake.clear()
            while self._queue and not stop:
                messages, waiting, stop = self._take_batch()
                if messages:
                    conn = self._write(conn, messages)
                for done in waiting:
                    done.set()
        if conn is not None:
            conn.close()

    def _take_batch(self) -> tuple[list[store.SentMessage], list[threading.Event], bool]:
        """Up to MAX_BATCH queued messages, the flush() events among them, and whether
        close() was reached."""
        messages: list[store.SentMessage] = []
        waiting: list[threading.Event] = []
        while self._queue and len(messages) < MAX_BATCH:
            item = self._queue.popleft()
            if item is None:
                return messages, waiting, True
            if isinstance(item, threading.Event):
                waiting.append(item)
            else:
                messages.append(item)
        return messages, waiting, False

    def _write(self, conn: store.Connection | None, messages: Sequence[store.SentMessage]) -> store.Connection | None:
        """Write ``messages`` in one transaction; the connection to use next (``None`` after a failure)."""
        try:
            conn = conn or store.connect(self._path, self._busy_timeout_ms, durable=False)
            with store.Writing(conn):
                store.record_messages(conn, messages)
        except (store.DatabaseError, OSError) as exc:
            _lost(messages, self._path, str(exc))
            if conn is not None:
                conn.close()
            return None
        return conn


def _lost(messages: Sequence[store.SentMessage], path: str, reason: str) -> None:
    for message in messages:
        log.error("%s: not recorded (token %s): database %s: %s", message.queue_id or "NOQUEUE", message.token,
                  path, reason)


class InFlight:
    """Counts the messages between MAIL FROM and end of message, so a stop can wait for them.

    Once :meth:`close` is called no new message is let in.
    """

    def __init__(self) -> None:
        self._count = 0
        self._closed = False
        self._changed = threading.Condition()

    def begin(self) -> bool:
        """One more message in flight; ``False`` (and not counted) once closed."""
        with self._changed:
            if self._closed:
                return False
            self._count += 1
            return True

    def end(self) -> None:
        """One message done."""
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def close(self) -> None:
        """Let no new message in."""
        with self._changed:
            self._closed = True

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for none to be in flight; returns how many still are."""
        with self._changed:
            self._changed.wait_for(lambda: self._count <= 0, timeout)
            return self._count


@dataclass
class _Message:
    """What the milter learns about one message it will change."""

    account: Account
    sender: str
    params: tuple[str, ...]
    queue_id: str
    recipients: list[str] = field(default_factory=list)
    message_id: str = ""
    subject: str = ""
    return_paths: list[str] = field(default_factory=list)
    failed: bool = False


class OutboundMilter(Milter.Base):  # type: ignore[misc]
    """One MTA connection; every callback it implements replies."""

    def __init__(self, policy: Policy, recorder: Recorder, flight: InFlight) -> None:
        self._policy = policy
        self._recorder = recorder
        self._flight = flight
        self._message: _Message | None = None
        # Set at MAIL FROM when it failed but could not say so (no reply): end of message will.
        self._failed_at_mail = False
        # The replies to MAIL FROM, RCPT TO and headers until negotiation says the MTA wants none.
        self._mail_reply = CONTINUE
        self._rcpt_reply = CONTINUE
        self._header_reply = CONTINUE

    def negotiate(self, opts: list[int]) -> int:
        """Ask the MTA only for the actions the milter uses, and only for the macros it reads
        (when the MTA takes a macro list: an MTA that does not sends its usual ones)."""
        result = int(super().negotiate(opts))
        opts[0] &= ACTIONS
        self._actions = opts[0]
        if self._actions & Milter.SETSYMLIST:
            for stage, names in MACROS.items():
                # Not Milter.Base.setsymlist: it hands libmilter bytes where a str is needed.
                self._ctx.setsymlist(stage, " ".join(names))
        self._mail_reply = NOREPLY if self._protocol & Milter.P_NR_MAIL else CONTINUE
        self._rcpt_reply = NOREPLY if self._protocol & Milter.P_NR_RCPT else CONTINUE
        self._header_reply = NOREPLY if self._protocol & Milter.P_NR_HDR else CONTINUE
        return result

    # pymilter's entries for RCPT TO and headers, which libmilter calls with bytes: these
    # skip its generic decoding and dispatch, paid for every header of every message,
    # and decode only what the milter reads.

    def envrcpt_bytes(self, to: bytes, *params: bytes) -> int:
        """RCPT TO, undecoded: see :meth:`envrcpt`."""
        if self._message is not None:
            self.envrcpt(to.decode("utf-8", "surrogateescape"))
        return self._rcpt_reply

    def header_bytes(self, name: str, value: bytes) -> int:
        """A header, its value undecoded: those :meth:`header` reads go on to it."""
        if self._message is not None and name.lower() in READ_HEADERS:
            self.header(name, value.decode("utf-8", "surrogateescape"))
        return self._header_reply

    def envfrom(self, sender: str, *params: str) -> int:
        """MAIL FROM: start a message of an account, or accept it untouched.

        When MAIL FROM takes no reply, a message left alone goes on to end of message,
        which lets it through unchanged (or applies ``milter.on_error`` if MAIL FROM failed).
        """
        self._end_message()
        try:
            outcome = self._start(sender, params)
        except Exception:
            log.exception("MAIL FROM %s: failed", _clean(sender))
            outcome = _FAILED
        if self._mail_reply == NOREPLY:
            self._failed_at_mail = outcome == _FAILED
            return NOREPLY
        return self._failure() if outcome == _FAILED else outcome

    def envrcpt(self, to: str, *params: str) -> int:
        """RCPT TO: remember the recipient."""
        message = self._message
        if message is not None:
            try:
                message.recipients.append(_clean(accounts.bare_address(to)))
            except Exception:
                self._fail(message, "RCPT TO")
        return CONTINUE

    def header(self, name: str, value: str) -> int:
        """A header: keep Message-ID, Subject and Return-Path."""
        message = self._message
        if message is not None:
            try:
                _read_header(message, name.lower(), value)
            except Exception:
                self._fail(message, f"header {name}")
        return CONTINUE

    def eom(self) -> int:
        """End of message: rewrite, tag and record it."""
        message, self._message = self._message, None
        if message is None:
            failed, self._failed_at_mail = self._failed_at_mail, False
            return self._failure() if failed else CONTINUE
        try:
            message.queue_id = self._macro("i") or message.queue_id
            if message.failed:
                return self._failure()
            self._finish(message)
            return CONTINUE
        except Exception:
            log.exception("%s: failed", message.queue_id or "NOQUEUE")
            return self._failure()
        finally:
            self._flight.end()

    def abort(self) -> int:
        """The MTA gave up on the message."""
        self._end_message()
        return CONTINUE

    def close(self) -> int:
        """The MTA closed the connection."""
        self._end_message()
        return CONTINUE

    # -- the work ---------------------------------------------------------------------

    def _start(self, sender: str, params: Sequence[str]) -> int:
        """Begin tracking a message of an account (``CONTINUE``), leave it alone
        (``ACCEPT``) or refuse it while stopping (``_FAILED``)."""
        address = _clean(accounts.bare_address(sender))
        if not address:
            return ACCEPT
        domain = accounts.domain_of(address)
        if self._policy.verp_domain and domain == self._policy.verp_domain:
            return ACCEPT
        login = self._macro("{auth_authen}")
        account = accounts.match(self._policy.accounts, login, address)
        if account is None:
            log.debug("MAIL FROM <%s> (login %r): no account", address, login)
            return ACCEPT
        if not self._flight.begin():
            log.info("MAIL FROM <%s>: the milter is stopping, message not tracked (%s)", address,
                     self._policy.on_error)
            return _FAILED
        self._message = _Message(account, address, tuple(params), self._macro("i"))
        return CONTINUE

    def _finish(self, message: _Message) -> None:
        bounce_address = _bounce_address(message.return_paths)
        sent = None
        if message.account.tracking and self._policy.verp_domain:
            sent = self._rewrite(message, bounce_address)
        elif bounce_address and bounce_address.lower() != message.sender.lower():
            self.chgfrom(f"<{bounce_address}>", _esmtp(message.params, ""))
            log.info("%s: account=%s from=<%s> to=<%s> (Return-Path), nrcpt=%d", message.queue_id,
                     message.account.name, message.sender, bounce_address, len(message.recipients))
        self._drop_return_paths(len(message.return_paths))
        if sent is not None:
            self._recorder.record(sent)

    def _rewrite(self, message: _Message, bounce_address: str) -> store.SentMessage:
        """Give the message a fresh VERP sender and the tracking header; return its record."""
        policy = self._policy
        key = secrets.token_bytes(verp.KEY_BYTES)
        now = time.time()
        token = verp.make_token(key, datetime.fromtimestamp(now, timezone.utc).date(), policy.signing_key)
        address = verp.address(policy.prefix, policy.verp_domain, token)
        self.chgfrom(f"<{address}>", _esmtp(message.params, token if policy.envid else ""))
        self.addheader(TRACKING_HEADER, token)
        log.info("%s: account=%s from=<%s> verp=<%s> nrcpt=%d", message.queue_id, message.account.name,
                 message.sender, address, len(message.recipients))
        return store.SentMessage(
            message_key=key.hex(), token=token, account=message.account.name, sent_at=now,
            queue_id=message.queue_id, message_id=message.message_id, subject=message.subject,
            sender=message.sender, bounce_address=bounce_address, recipients=tuple(message.recipients),
        )

    def _drop_return_paths(self, count: int) -> None:
        # Last first, so each index still names the header it named when it was read.
        for index in range(count, 0, -1):
            self.chgheader("Return-Path", index, None)

    # -- helpers ----------------------------------------------------------------------

    def _macro(self, name: str) -> str:
        value = self.getsymval(name)
        return _clean(value) if isinstance(value, str) else ""

    def _fail(self, message: _Message, step: str) -> None:
        """Note a failure in a step that may not reply; end of message applies the policy."""
        log.exception("%s: %s failed", message.queue_id or "NOQUEUE", step)
        message.failed = True

    def _failure(self) -> int:
        """The reply to a message the milter failed on, as ``milter.on_error`` says."""
        if self._policy.on_error != "tempfail":
            return ACCEPT
        try:
            self.setreply(*TEMPFAIL_REPLY)
        except Exception:
            log.exception("cannot set the tempfail reply")
        return TEMPFAIL

    def _end_message(self) -> None:
        self._failed_at_mail = False
        if self._message is not None:
            self._message = None
            self._flight.end()


def _without_reply(method: Callable[..., int]) -> Callable[..., int]:
    """``method``, marked for pymilter as a step that takes no reply. Unlike
    ``Milter.noreply`` this leaves the reply to ``method``, which answers ``NOREPLY`` itself."""

    @functools.wraps(method)
    def step(self: OutboundMilter, *args: str) -> int:
        return method(self, *args)

    step.milter_protocol = Milter.OPTIONAL_CALLBACKS[method.__name__][0]  # type: ignore[attr-defined]
    return step


class AnsweringMilter(OutboundMilter):
    """Every step answered, DATA included: for libmilter on TCP.

    Postfix sets no TCP_NODELAY, so a step that gets no reply leaves its packet
    unacknowledged, and Nagle holds the next one until the milter's delayed ACK, about
    40 ms later. libmilter cannot hurry that ACK; bouncefilter's own engine can
    (``TCP_QUICKACK``) and uses :class:`QuietMilter` on every socket.
    """

    def data(self) -> int:
        """DATA: nothing to do but answer."""
        return CONTINUE


class QuietMilter(OutboundMilter):
    """MAIL FROM, RCPT TO and headers take no reply: one round trip per message, at its end."""

    envfrom = _without_reply(OutboundMilter.envfrom)
    envrcpt = Milter.noreply(OutboundMilter.envrcpt)
    header = Milter.noreply(OutboundMilter.header)


# pymilter caches the steps a class negotiates on the class it is asked about, where a
# subclass asked later would find its base's cache: work each out now, subclasses first.
for _cls in (AnsweringMilter, QuietMilter, OutboundMilter):
    _cls.protocol_mask()


def milter_class(socket_spec: str, engine: str = "asyncio") -> type[OutboundMilter]:
    """The milter class for the socket and engine: :class:`AnsweringMilter` for libmilter
    on TCP, :class:`QuietMilter` otherwise."""
    return AnsweringMilter if engine == "libmilter" and socket_spec.startswith("inet") else QuietMilter


# -- pure helpers -----------------------------------------------------------------------


def _read_header(message: _Message, name: str, value: str) -> None:
    if name == "return-path":
        message.return_paths.append(value)
    elif name == "message-id" and not message.message_id:
        message.message_id = mime.decode_value(value)[:MAX_FIELD]
    elif name == "subject" and not message.subject:
        message.subject = mime.decode_value(value)[:MAX_FIELD]


def _bounce_address(return_paths: Sequence[str]) -> str:
    """The first address found in the submitted Return-Path headers, or ``""``."""
    for value in return_paths:
        address = mime.clean_address(_clean(value))
        if address:
            return address
    return ""


def _esmtp(params: Sequence[str], envid: str) -> str | None:
    """The MAIL FROM parameters for ``chgfrom``: the client's RET and ENVID kept, and
    ``ENVID=envid`` added when the client gave none and ``envid`` is set."""
    kept = [p for p in params if p.upper().startswith(("RET=", "ENVID="))]
    if envid and not any(p.upper().startswith("ENVID=") for p in kept):
        kept.append(f"ENVID={envid}")
    return " ".join(kept) or None


def _clean(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) replaced: safe to log and store."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# -- the daemon -------------------------------------------------------------------------


def prepare_database(path: str, auto_migrate: bool) -> bool:
    """Check (and if allowed, migrate) the database; log and return ``False`` if it cannot
    be used: the milter then runs anyway and logs each message it cannot record."""
    try:
        conn = store.connect(path)
        try:
            store.ensure_schema(conn, auto_migrate)
        finally:
            conn.close()
    except (store.StoreError, store.DatabaseError, OSError) as exc:
        log.error("database %s cannot be used: %s; messages are rewritten but not recorded", path, exc)
        return False
    return True


def serve(settings: Settings, socket_spec: str | None = None) -> None:
    """Run the milter in the foreground until SIGTERM, SIGINT or SIGHUP.

    ``milter.engine`` says who speaks the milter protocol: bouncefilter's own asyncio
    engine (:mod:`bouncefilter.milter.engine`, the default) or pymilter's libmilter. On the
    signal, messages already started may finish (up to ``milter.stop_timeout`` seconds)
    while new ones are treated as ``milter.on_error`` says; then the connections are
    closed (libmilter takes a few seconds more). A second signal stops at once. Raises
    ``ConfigError`` (VERP keys) or :class:`MilterStartError`.
    """
    spec = socket_spec or settings.milter.socket
    policy = Policy.from_settings(settings)
    prepare_database(settings.database, settings.database_auto_migrate)
    recorder = Recorder(settings.database, busy_timeout_ms=settings.database_busy_timeout_ms)
    flight = InFlight()
    cls = milter_class(spec, settings.milter.engine)

    def listening() -> None:
        log.info("bouncefilter milter listening on %s (%d accounts, %s engine)", spec, len(settings.accounts),
                 settings.milter.engine)

    try:
        if settings.milter.engine == "libmilter":
            _serve_libmilter(spec, lambda: cls(policy, recorder, flight), settings, flight, listening)
        else:
            engine.run(spec, lambda: cls(policy, recorder, flight), group=settings.milter.socket_group,
                             on_error=settings.milter.on_error, flight=flight,
                             stop_timeout=settings.milter.stop_timeout, on_listening=listening)
    finally:
        recorder.close()
    log.info("bouncefilter milter stopped")


def _serve_libmilter(spec: str, factory: Callable[[], OutboundMilter], settings: Settings, flight: InFlight,
                     listening: Callable[[], None]) -> None:
    """Serve with pymilter's libmilter until a stop signal."""
    Milter.factory = factory
    created = _open(spec, settings.milter.socket_group, settings.milter.on_error)
    listening()
    try:
        _run(flight, settings.milter.stop_timeout)
    finally:
        engine.remove_socket(created)


def _run(flight: InFlight, stop_timeout: float) -> None:
    """Run libmilter in a thread until a stop signal, then drain ``flight`` and stop it.

    libmilter blocks the stop signals in the thread that runs it (and in every thread it
    starts) and stops them itself, its worker pool dropping sessions in the middle of a
    message. Run from another thread, it leaves them to this (main) thread, whose
    handlers drain the messages in flight before asking libmilter to stop.
    """
    stopping = threading.Event()
    failure: list[BaseException] = []

    def run_libmilter() -> None:
        try:
            libmilter.main()
        except libmilter.error as exc:
            failure.append(exc)
        finally:
            stopping.set()

    def on_signal(number: int, frame: object) -> None:
        if stopping.is_set():
            raise SystemExit(0)  # a second signal: stop now
        log.info("%s: stopping", signal.Signals(number).name)
        stopping.set()

    previous = {number: signal.signal(number, on_signal) for number in STOP_SIGNALS}
    runner = threading.Thread(target=run_libmilter, name="libmilter", daemon=True)
    try:
        runner.start()
        while not stopping.wait(1.0):
            pass
        flight.close()
        if runner.is_alive():
            left = flight.wait(stop_timeout)
            if left:
                log.warning("stopping with %d messages still in flight", left)
            libmilter.stop()
            runner.join(LIBMILTER_STOP_SECONDS)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if failure:
        raise MilterStartError(f"libmilter failed: {failure[0]}")


def _open(spec: str, group: str | None, on_error: str) -> engine.SocketFile | None:
    """Register the callbacks and open the listening socket (removing a stale one).

    Returns the unix socket's file as created, for :func:`engine.remove_socket`.
    """
    path = engine.unix_path(spec)
    if path and not os.path.isdir(os.path.dirname(path) or "."):
        raise MilterStartError(f"the folder of the socket {path} does not exist")
    libmilter.set_flags(ACTIONS)
    libmilter.set_exception_policy(libmilter.TEMPFAIL if on_error == "tempfail" else libmilter.CONTINUE)
    libmilter.set_connect_callback(Milter.connect_callback)
    libmilter.set_envfrom_callback(lambda ctx, *b: ctx.getpriv().envfrom_bytes(*b))
    libmilter.set_envrcpt_callback(lambda ctx, *b: ctx.getpriv().envrcpt_bytes(*b))
    libmilter.set_header_callback(lambda ctx, f, v: ctx.getpriv().header_bytes(f, v))
    libmilter.set_eom_callback(lambda ctx: ctx.getpriv().eom())
    libmilter.set_abort_callback(lambda ctx: ctx.getpriv().abort())
    libmilter.set_close_callback(Milter.close_callback)
    libmilter.setconn(spec)
    libmilter.register(NAME, data=lambda ctx: ctx.getpriv().data(), negotiate=Milter.negotiate_callback)
    try:
        libmilter.opensocket(True)
    except libmilter.error as exc:
        raise MilterStartError(f"cannot listen on {spec}: {exc}") from None
    if not path:
        _set_nodelay()
        return None
    try:
        engine.share_socket(path, group)
    except MilterStartError:
        os.unlink(path)
        raise
    return engine.SocketFile(path, os.stat(path))


def _set_nodelay() -> None:
    """Set TCP_NODELAY on libmilter's listening socket (accepted sockets inherit it).

    libmilter does not expose the socket, so it is found among the open descriptors.
    """
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            with socket.socket(fileno=os.dup(int(name))) as sock:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError):
            continue
