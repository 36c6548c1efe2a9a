"""Sending one forward: an HTTP POST (web hooks) or an SMTP transaction (mail).

Each sender keeps its connections open between sends (one per web hook origin, one to
the SMTP relay) and never raises for what the other side does: it returns a
:class:`Result` saying whether the row is delivered, should be retried, or is to be given
up. Web hooks: 2xx delivered; 429 and 5xx retried (``Retry-After`` honoured); any other
status (410 Gone, other 4xx, redirects) given up. SMTP: 2xx delivered, 4xx retried, 5xx
given up. A connection that fails, or an exchange longer than the timeout, is retried.

The timeout bounds each whole attempt, not each read: a receiver that answers one byte a
second is cut off when the attempt's time is up (:class:`Deadline` shuts the socket
down from a watching thread, which wakes the read), and so is one in flight when the
forwarder is asked to stop. A web hook's answer is read whole up to :data:`MAX_ANSWER`
bytes; a longer one closes the connection, so the next request never meets the rest of
it.
"""

from __future__ import annotations

import http.client
import logging
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from bouncefilter import __version__
from bouncefilter.config import SmtpSettings

log = logging.getLogger(__name__)

USER_AGENT = f"bouncefilter/{__version__}"


@dataclass(frozen=True, slots=True)
class Result:
    """How one send went. ``unreachable``: the target itself failed (no connection, no
    answer in time), so its other rows need not be tried now."""

    delivered: bool
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None
    unreachable: bool = False


DELIVERED = Result(True)
#: The most of a web hook's answer read; a longer one closes the connection.
MAX_ANSWER = 64 * 1024
#: How often a watching thread looks whether the forwarder is asked to stop, in seconds.
_STOP_POLL = 0.1


class Deadline:
    """``with Deadline(seconds, stop, cut):`` runs the block with a watching thread that
    calls ``cut`` (which must shut the block's socket down, waking whatever read or write
    it waits in) once ``seconds`` pass or ``stop`` is set; ``expired`` then says which
    (``"timed out"`` or ``"forwarder stopping"``), else it is empty."""

    def __init__(self, seconds: float, stop: threading.Event | None, cut: Callable[[], None]) -> None:
        self._seconds = seconds
        self._stop = stop
        self._cut = cut
        self._done = threading.Event()
        self.expired = ""

    def __enter__(self) -> Deadline:
        self._thread = threading.Thread(target=self._watch, name="deadline", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        ends = time.monotonic() + self._seconds
        while not self._done.is_set():
            left = ends - time.monotonic()
            if left <= 0 or (self._stop is not None and self._stop.is_set()):
                self.expired = "timed out" if left <= 0 else "forwarder stopping"
                try:
                    self._cut()
                except OSError:
                    pass  # already closed: nothing left to wake
                return
            self._done.wait(min(left, _STOP_POLL) if self._stop is not None else left)


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


class WebhookSender:
    """POSTs to web hooks over kept-alive connections, one per scheme, host and port."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._connections: dict[tuple[str, str, int | None], http.client.HTTPConnection] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str], now: float,
             stop: threading.Event | None = None) -> Result:
        """POST ``body`` to ``url`` with ``headers``, within the timeout (or until ``stop``
        is set); ``now`` (epoch seconds) reads an HTTP-date ``Retry-After``. A kept
        connection the server has closed is opened again once before the send counts as
        failed."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        for reused in (origin in self._connections, False):
            connection = self._connection(origin)
            deadline = Deadline(self._timeout, stop, lambda: _shut(connection.sock))
            try:
                with deadline:
                    connection.request("POST", path, body, headers)
                    response = connection.getresponse()
                    text = response.read(MAX_ANSWER)
                    whole = response.isclosed() or not response.read(1)
                if response.will_close or not whole:
                    self._drop(origin)  # the rest of a long answer must not meet the next request
                return _http_result(response, text, now)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(origin)
                if deadline.expired:
                    return Result(False, deadline.expired, unreachable=True)
                if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue  # the server closed an idle kept connection: one fresh try
                return Result(False, _network_error(exc), unreachable=True)
        raise AssertionError("unreachable")  # the loop always returns

    def _connection(self, origin: tuple[str, str, int | None]) -> http.client.HTTPConnection:
        if origin not in self._connections:
            scheme, host, port = origin
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._connections[origin] = kind(host, port, timeout=self._timeout)
        return self._connections[origin]

    def _drop(self, origin: tuple[str, str, int | None]) -> None:
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close every kept connection."""
        for origin in list(self._connections):
            self._drop(origin)


def _http_result(response: http.client.HTTPResponse, text: bytes, now: float) -> Result:
    status = response.status
    if 200 <= status < 300:
        return DELIVERED
    error = f"HTTP {status} {response.reason}: {' '.join(text.decode('utf-8', 'replace').split())[:200]}".rstrip(": ")
    if status == 429 or status >= 500:
        return Result(False, error, retry_after=retry_after(response.getheader("Retry-After"), now))
    return Result(False, error, permanent=True)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait that a ``Retry-After`` value asks for (delay-seconds or an
    HTTP-date), or ``None`` when it is absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _network_error(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class SmtpSender:
    """Sends mail with a null envelope sender through the configured relay, over one
    kept SMTP session."""

    def __init__(self, settings: SmtpSettings, timeout: float) -> None:
        self._settings = settings
        self._timeout = timeout
        self._session: smtplib.SMTP | None = None

    def send(self, to: str, message: bytes, stop: threading.Event | None = None) -> Result:
        """Send ``message`` to ``to`` with ``MAIL FROM:<>``, within the timeout (or until
        ``stop`` is set). A kept session the relay has closed is opened again once before
        the send counts as failed."""
        for reused in (self._session is not None, False):
            deadline = Deadline(self._timeout, stop, lambda: _shut(getattr(self._session, "sock", None)))
            try:
                with deadline:
                    self._open().sendmail("", [to], message)
                return DELIVERED
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                return _smtp_result(code, text, f"RCPT TO:<{to}>")
            except smtplib.SMTPResponseException as exc:
                self.close()
                return _smtp_result(exc.smtp_code, exc.smtp_error, "relay")
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                if deadline.expired:
                    return Result(False, deadline.expired, unreachable=True)
                if reused and isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue
                return Result(False, _network_error(exc), unreachable=True)
        raise AssertionError("unreachable")  # the loop always returns

    def _open(self) -> smtplib.SMTP:
        if self._session is not None:
            return self._session
        settings = self._settings
        session = smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
        try:
            if settings.starttls:
                session.starttls(context=ssl.create_default_context())
            if settings.username and settings.password:
                session.login(settings.username, settings.password)
        except BaseException:
            session.close()
            raise
        self._session = session
        return session

    def close(self) -> None:
        """End the kept session, if any."""
        session, self._session = self._session, None
        if session is not None:
            try:
                session.quit()
            except (OSError, smtplib.SMTPException):
                session.close()


def _smtp_result(code: int, text: bytes | str, where: str) -> Result:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    error = f"SMTP {code} {' '.join(reply.split())[:200]} ({where})"
    if 400 <= code < 500:
        return Result(False, error)
    return Result(False, error, permanent=code >= 500 or code < 200)
