"""Real receivers on loopback for the forwarding tests and bench/forward.py, and a
configured site (:func:`make_site`) whose bounces go through the real pipe code.

:class:`Hooks` is a web hook receiver (the standard library's threading HTTP server,
HTTP/1.1 keep-alive) that checks every signature with its own code, written here from
the Standard Webhooks text and sharing nothing with bouncefilter, and answers as each
path's script says. :class:`Mailbox` is an aiosmtpd server that keeps what it receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from bouncefilter import config, store
from bouncefilter.core import verp
from bouncefilter.forward.forwarder import Forwarder
from bouncefilter.pipe import command, delivery

import messages


@dataclass
class Received:
    """One request a web hook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int
    at: float = field(default_factory=time.monotonic)  # when the request was read

    @property
    def event(self) -> dict[str, object]:
        return json.loads(self.body)


def signature_ok(keys: list[bytes], headers: dict[str, str], body: bytes, now: float, tolerance: float = 300) -> bool:
    """Whether any ``v1`` signature in ``headers`` is an HMAC-SHA256 of
    ``id.timestamp.body`` under one of ``keys``, and the timestamp is recent."""
    identifier, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not identifier or not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    signed = identifier.encode() + b"." + stamp.encode() + b"." + body
    for entry in headers.get("webhook-signature", "").split(" "):
        version, _, given = entry.partition(",")
        for key in keys:
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            if version == "v1" and hmac.compare_digest(given, expected):
                return True
    return False


@dataclass
class Hooks:
    """A web hook receiver. ``scripts`` maps a path to the statuses it answers for one
    event id, in order (the last one repeats; default 200); ``/stall`` first sleeps
    ``stall`` seconds, and a path in ``delays`` that many; ``/trickle`` sends its whole
    answer one byte every ``trickle`` seconds; ``/big`` answers with ``big`` bytes of body; a
    429 or 503 carries ``Retry-After: retry_after``."""

    keys: list[bytes]
    scripts: dict[str, list[int]] = field(default_factory=dict)
    stall: float = 0.0
    retry_after: str = "120"
    delay: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)
    trickle: float = 0.0
    big: int = 10_000
    tls: ssl.SSLContext | None = None  # serve https with this context
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, str]] = Counter()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The header and the body go out in two writes: without this, Nagle's
            # algorithm holds the body until the client's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request: nothing was delivered
                    self.close_connection = True
                    return
                status = hooks._answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                answer = b"x" * hooks.big if self.path == "/big" else b"ok"
                if self.path == "/trickle":  # the whole answer, its status line included, a byte at a time
                    try:
                        for byte in f"HTTP/1.1 {status} OK\r\nContent-Length: 2\r\n\r\nok".encode():
                            self.wfile.write(bytes([byte]))
                            time.sleep(hooks.trickle)
                    except OSError:
                        self.close_connection = True
                    return
                try:
                    self.send_response(status)
                    if status in (429, 503):
                        self.send_header("Retry-After", hooks.retry_after)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    self.close_connection = True  # the client gave up waiting (a stall)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if path == "/stall" and self.stall:
            time.sleep(self.stall)
        if self.delay:
            time.sleep(self.delay)
        if path in self.delays:
            time.sleep(self.delays[path])
        with self._lock:
            key = (path, headers.get("webhook-id", ""))
            script = self.scripts.get(path, [200])
            status = script[min(self._seen[key], len(script) - 1)]
            self._seen[key] += 1
            self.received.append(Received(path, headers, body, signature_ok(self.keys, headers, body, time.time()),
                                          status))
        return status

    def url(self, path: str) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.server.server_address[1]}{path}"
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Hooks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, path: str) -> list[Received]:
        """The requests to ``path`` answered 2xx."""
        with self._lock:
            return [r for r in self.received if r.path == path and 200 <= r.status < 300]


class _Keeper:
    """aiosmtpd handler: keeps every envelope; RCPT TO an address starting ``reject``
    or ``defer`` gets 550 or 451."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(self, server: object, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:  # noqa: N802 - aiosmtpd's name
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("defer"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 2.0.0 Message accepted"


class Mailbox:
    """An SMTP server on loopback that keeps what it receives (``envelopes``). With
    ``tls`` it offers STARTTLS and requires it, and with ``login`` (user, password) it
    requires AUTH after it; ``logins`` lists the users that logged in."""

    def __init__(self, tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None) -> None:
        self._keeper = _Keeper()
        self.logins: list[str] = []
        options: dict[str, object] = {}
        if tls is not None:
            options.update(tls_context=tls, require_starttls=True)
        if login is not None:
            options.update(authenticator=self._authenticator(login), auth_required=True)
        self.controller = Controller(self._keeper, hostname="127.0.0.1", port=free_port(), **options)

    def _authenticator(self, login: tuple[str, str]) -> Callable[..., AuthResult]:
        def check(server: object, session: Session, envelope: Envelope, mechanism: str, data: object) -> AuthResult:
            if isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login:
                self.logins.append(login[0])
                return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        return check

    @property
    def envelopes(self) -> list[Envelope]:
        return self._keeper.envelopes

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def free_port() -> int:
    """A loopback TCP port nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- a site that forwards ------------------------------------------------------------------

SCRIPT = Path(sys.executable).with_name("bouncefilter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "bouncefilter"]
KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_SECRET = "an old plain secret, still signing"


@dataclass
class Site:
    """A configuration with forwarding targets and its migrated database."""

    root: Path
    config: Path
    settings: config.Settings

    def conn(self) -> sqlite3.Connection:
        return store.connect(self.settings.database)

    def bounce(self, recipient: str = "nobody@example.net", bounce_address: str = "", status: str = "5.1.1",
               raw: bytes | None = None, now: float | None = None) -> bytes:
        """Record a sent message and deliver its bounce through the pipe code; the bounce."""
        key = os.urandom(verp.KEY_BYTES)
        token = messages.token(key)
        conn = self.conn()
        store.record_messages(conn, (store.SentMessage(
            message_key=key.hex(), token=token, account="shop", sent_at=time.time(),
            message_id="<order-1@shop.example.com>", sender="orders@shop.example.com",
            bounce_address=bounce_address, recipients=(recipient,)),))
        conn.close()
        raw = raw or messages.postfix_dsn(token, recipient, status=status, queue_id=f"Q{key.hex()[:10]}",
                                          diagnostic="550 5.1.1 <{r}>: User unknown" if status[0] == "5"
                                          else "452 4.2.2 <{r}>: Mailbox full")
        delivery.deliver(self.settings, command.Arguments("", messages.address(token), "4IN1"), raw, len(raw), False, now)
        return raw

    def outbox(self, events: str = "bounce_id") -> list[dict[str, object]]:
        """The outbox rows of bounce events (``events="history_id"``: of suppression events)."""
        conn = self.conn()
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(f"SELECT * FROM outbox WHERE {events} IS NOT NULL ORDER BY id")]
        finally:
            conn.close()

    def forwarder(self, clock: Callable[[], float] | None = None) -> Forwarder:
        return Forwarder(self.settings, self.conn(), clock=clock or time.time)

    def command(self, *args: str) -> list[str]:
        return [*COMMAND, "--config", str(self.config), "forward", *args]


#: The site's suppression rules unless a test gives its own: no hard bounce lists an
#: address, so the tests of bounce events see those alone (the suppression events'
#: tests give ``suppression="{hard_after: 1}"``, the default).
QUIET = "{hard_after: 1000000}"


def make_site(root: Path, targets: str, forward: str = "", port: int = 25, smtp: str = "",
              suppression: str = QUIET) -> Site:
    settings = {"timeout": "1", "retry_base": "0.2", "retry_max": "1", "lease": "3", "poll_interval": "0.1"}
    settings.update(item.split(": ") for item in forward.split(", ") if item)
    forward = ", ".join(f"{k}: {v}" for k, v in settings.items())
    path = root / "bouncefilter.yaml"
    path.write_text(f"""\
database: bf.db
verp: {{domain: {messages.DOMAIN}, keys: [{messages.KEY}]}}
logging: {{target: stderr, level: DEBUG}}
smtp: {{host: 127.0.0.1, port: {port}{smtp}}}
forward: {{{forward}}}
suppression: {suppression}
accounts:
  - name: shop
    domains: [shop.example.com]
    forward: [{targets}]
""", encoding="utf-8")
    settings = config.load(str(path))
    conn = store.connect(settings.database)
    store.migrate(conn)
    conn.close()
    return Site(root, path, settings)


def hook(url: str, kinds: str = "") -> str:
    return f"{{type: webhook, url: '{url}', secrets: ['{OLD_SECRET}', '{SECRET}']{kinds}}}"
