"""The remote side of the factory: exchangers that answer as the situations say.

- :class:`Peer` (aiosmtpd): the exchanger of ``peer.example.test`` and of the bounce
  domain. Mail with an envelope sender answers each recipient by its situation
  (:data:`factory.situations.BY_RECIPIENT`): the situation's reply at ``RCPT TO`` or at
  the end of ``DATA``; a ``421`` reply also closes the session, as real servers do.
  Mail with the null sender is a bounce or a delay notice: every recipient is accepted
  and the message is kept, as received, in :attr:`Peer.bounces`. The same class with a
  ``size_limit`` is the small exchanger, which advertises ``SIZE`` in EHLO and accepts
  nothing bigger.
- :class:`SilentPeer`: accepts TCP connections and never sends a byte.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from factory.situations import BY_RECIPIENT


@dataclass(frozen=True)
class Received:
    """One message with the null sender, as the peer received it."""

    recipient: str  # the envelope recipient: where the MTA sent its bounce
    message: bytes  # exactly the octets after DATA, dot-unstuffed
    client: str  # the address the MTA connected from
    at: float  # time.monotonic() when it arrived


class Handler:
    """aiosmtpd hooks: refuse by situation, keep what arrives with the null sender."""

    def __init__(self) -> None:
        self.bounces: list[Received] = []
        self.delivered: list[tuple[str, tuple[str, ...]]] = []  # (sender, recipients) accepted otherwise
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not _null(envelope.mail_from):
            situation = BY_RECIPIENT.get(address.lower())
            if situation is not None and situation.stage == "rcpt":
                if situation.reply.startswith("421"):
                    asyncio.get_running_loop().call_soon(_close, server)
                return situation.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if _null(envelope.mail_from):
            with self.lock:
                for recipient in envelope.rcpt_tos:
                    self.bounces.append(Received(recipient.lower(), content, session.peer[0], time.monotonic()))
            return "250 2.0.0 Ok: bounce kept"
        for recipient in envelope.rcpt_tos:
            situation = BY_RECIPIENT.get(recipient.lower())
            if situation is not None and situation.stage == "data":
                return situation.reply
        with self.lock:
            self.delivered.append((envelope.mail_from, tuple(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: delivered"


def _null(sender: str | None) -> bool:
    """Whether an envelope sender is the null one (aiosmtpd keeps ``MAIL FROM:<>`` as ``<>``)."""
    return sender in (None, "", "<>")


def _close(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class Peer:
    """An aiosmtpd exchanger on ``(address, 25)``; see the module docstring."""

    def __init__(self, address: str, hostname: str, size_limit: int | None = None) -> None:
        self.handler = Handler()
        kwargs: dict[str, Any] = {"data_size_limit": size_limit} if size_limit else {}
        self.controller = Controller(
            self.handler, hostname=address, port=25, server_hostname=hostname, ready_timeout=10, **kwargs
        )

    @property
    def bounces(self) -> list[Received]:
        """Every null-sender message so far (a copy)."""
        with self.handler.lock:
            return list(self.handler.bounces)

    def start(self) -> Peer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class SilentPeer:
    """Accepts connections on ``(address, 25)``, reads and discards, never answers."""

    def __init__(self, address: str) -> None:
        self.listener = socket.create_server((address, 25))
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="factory-silent", daemon=True)

    def start(self) -> SilentPeer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for connection in self.connections:
            connection.close()
