"""The outbound milter (``bouncefilter milter``) as a daemon: the socket, the engine, the stop.

:func:`serve` prepares the decision's :class:`~bouncefilter.milter.decision.Policy` from
the settings, starts the :class:`~bouncefilter.milter.recorder.Recorder` and, when some
account enforces its suppression list, the list's
:class:`~bouncefilter.milter.refresh.Refresher`, and runs the
handler's class (:func:`~bouncefilter.milter.handler.milter_class`) under bouncefilter's
own engine (:mod:`bouncefilter.milter.engine`, the default) or pymilter's libmilter. On
SIGTERM it lets the messages in flight finish, writes what is queued, and returns.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Callable

import Milter  # type: ignore[import-untyped]
import milter as libmilter  # type: ignore[import-not-found]

from bouncefilter import store
from bouncefilter.config import Settings, signing_keys
from bouncefilter.milter import engine
from bouncefilter.milter.decision import Policy
from bouncefilter.milter.engine import MilterStartError
from bouncefilter.milter.handler import ACTIONS, InFlight, OutboundMilter, milter_class
from bouncefilter.milter.recorder import Recorder
from bouncefilter.milter.refresh import Refresher
from bouncefilter.milter.suppressed import SuppressionList
from bouncefilter.milter.wire import MAX_PACKET

__all__ = ["MilterStartError", "policy_for", "prepare_database", "serve"]

log = logging.getLogger(__name__)

#: The name the milter registers with libmilter.
NAME = "bouncefilter"
#: The signals that stop the milter, and how long libmilter may then take to return.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LIBMILTER_STOP_SECONDS = 15


def policy_for(settings: Settings) -> Policy:
    """The decision's policy for ``settings``; raises ``ConfigError`` if the VERP keys are unreadable."""
    keys = signing_keys(settings.verp)
    return Policy(
        accounts=settings.accounts,
        verp_domain=settings.verp.domain or "",
        prefix=settings.verp.prefix,
        signing_key=keys[0] if keys else b"",
        on_error=settings.milter.on_error,
        envid=settings.milter.envid,
        enforce={account.name: account.suppression.enforce for account in settings.accounts
                 if account.suppression.enforce != "off"},
    )


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
    policy = policy_for(settings)
    prepare_database(settings.database, settings.database_auto_migrate)
    recorder = Recorder(settings.database, busy_timeout_ms=settings.database_busy_timeout_ms)
    refresher = Refresher(settings.database, SuppressionList(),
                          busy_timeout_ms=settings.database_busy_timeout_ms).start() if policy.enforce else None
    suppressed = refresher.suppressed if refresher is not None else None
    flight = InFlight()
    cls = milter_class(spec, settings.milter.engine)

    def listening() -> None:
        log.info("bouncefilter milter listening on %s (%d accounts, %s engine)", spec, len(settings.accounts),
                 settings.milter.engine)

    try:
        if settings.milter.engine == "libmilter":
            _serve_libmilter(spec, lambda: cls(policy, recorder, flight, suppressed), settings, flight, listening)
        else:
            engine.run(spec, lambda: cls(policy, recorder, flight, suppressed), group=settings.milter.socket_group,
                             on_error=settings.milter.on_error, flight=flight,
                             stop_timeout=settings.milter.stop_timeout, on_listening=listening,
                             limits=engine.Limits(settings.milter.idle_timeout, settings.milter.max_connections))
    finally:
        if refresher is not None:
            refresher.close()
        recorder.close()
    log.info("bouncefilter milter stopped")


def _serve_libmilter(spec: str, factory: Callable[[], OutboundMilter], settings: Settings, flight: InFlight,
                     listening: Callable[[], None]) -> None:
    """Serve with pymilter's libmilter until a stop signal."""
    Milter.factory = factory
    _raise_packet_limit(MAX_PACKET)
    created = _open(spec, settings.milter.socket_group, settings.milter.on_error)
    listening()
    try:
        _run(flight, settings.milter.stop_timeout)
    finally:
        engine.remove_socket(created)


def _raise_packet_limit(size: int) -> None:
    """Let libmilter take packets of up to ``size`` octets (its own limit is 64 KiB, and
    Postfix writes headers of up to 100 KiB as one packet: a larger one drops the session).

    pymilter does not wrap ``smfi_setmaxdatasize``. Looked up through pymilter's own
    module, the symbol is found in the libmilter that module is linked with, so it sets
    that library's limit. Logs a warning, and changes nothing, if there is no such call.
    """
    try:
        setmax = ctypes.CDLL(libmilter.__file__).smfi_setmaxdatasize
    except (OSError, AttributeError) as exc:
        log.warning("libmilter's packet limit stays at 64 KiB (%s): a larger header drops the session", exc)
        return
    setmax.argtypes, setmax.restype = [ctypes.c_size_t], ctypes.c_size_t
    setmax(size)


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
