"""A tiny authoritative name server (UDP, RFC 1035) for the factory's MTAs.

The MTAs run in a mount namespace whose ``/etc/resolv.conf`` names this server alone
(see :mod:`factory.lab`), so every lookup they make, MX records included, stays on
loopback and has an answer fixed by the test: a name in :attr:`Zone.addresses` has one
A record, a name in :attr:`Zone.exchangers` one MX record, a name in :attr:`Zone.empty`
exists with no records at all (NOERROR, no data), and every other name does not exist
(NXDOMAIN). AAAA questions for existing names get no data, so the MTAs use IPv4.
Names are compared without case and without the final dot.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

TYPE_A = 1
TYPE_PTR = 12
TYPE_MX = 15
CLASS_IN = 1
RCODE_NXDOMAIN = 3
RCODE_FORMERR = 1
RCODE_NOTIMP = 4
TTL = 60


@dataclass
class Zone:
    """The records the server answers with; see the module docstring."""

    addresses: dict[str, str] = field(default_factory=dict)  # name -> IPv4 address
    exchangers: dict[str, str] = field(default_factory=dict)  # domain -> MX host name
    empty: set[str] = field(default_factory=set)  # names that exist with no records

    def exists(self, name: str) -> bool:
        """Whether ``name`` is in the zone (has records, or is an empty name)."""
        return name in self.addresses or name in self.exchangers or name in self.empty or name in self._pointers()

    def _pointers(self) -> dict[str, str]:
        """The reverse names (``d.c.b.a.in-addr.arpa``) of every address, to its name."""
        return {".".join(reversed(ip.split("."))) + ".in-addr.arpa": name for name, ip in self.addresses.items()}

    def answer(self, name: str, qtype: int) -> tuple[int, list[tuple[int, bytes]]]:
        """The response code and the (type, rdata) answers for one question."""
        name = name.lower().rstrip(".")
        if not self.exists(name):
            return RCODE_NXDOMAIN, []
        if qtype == TYPE_A and name in self.addresses:
            return 0, [(TYPE_A, socket.inet_aton(self.addresses[name]))]
        if qtype == TYPE_MX and name in self.exchangers:
            return 0, [(TYPE_MX, struct.pack("!H", 10) + encode_name(self.exchangers[name]))]
        if qtype == TYPE_PTR and name in self._pointers():
            return 0, [(TYPE_PTR, encode_name(self._pointers()[name]))]
        return 0, []


def encode_name(name: str) -> bytes:
    """A domain name in wire format, uncompressed."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def decode_question(packet: bytes) -> tuple[str, int, int]:
    """The first question's name, type and the offset just after it; ValueError if garbled."""
    offset = 12
    labels: list[str] = []
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compression in a question")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        raise ValueError("truncated question")
    qtype, _qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ".".join(labels), qtype, offset + 4


def respond(zone: Zone, query: bytes) -> bytes | None:
    """The response to one query packet, or ``None`` for a packet too short to answer."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    opcode = (flags >> 11) & 0xF
    base = 0x8400 | (flags & 0x0100)  # QR, AA, and RD copied; no recursion offered
    try:
        if qdcount != 1:
            raise ValueError("one question expected")
        name, qtype, end = decode_question(query)
    except ValueError:
        return struct.pack("!HHHHHH", ident, base | RCODE_FORMERR, 0, 0, 0, 0)
    question = query[12:end]
    if opcode != 0:
        return struct.pack("!HHHHHH", ident, base | RCODE_NOTIMP, 1, 0, 0, 0) + question
    rcode, answers = zone.answer(name, qtype)
    records = b"".join(
        b"\xc0\x0c" + struct.pack("!HHIH", rtype, CLASS_IN, TTL, len(rdata)) + rdata for rtype, rdata in answers
    )
    return struct.pack("!HHHHHH", ident, base | rcode, 1, len(answers), 0, 0) + question + records


class NameServer:
    """:func:`respond` served on ``(address, 53)`` over UDP from a daemon thread."""

    def __init__(self, zone: Zone, address: str, port: int = 53) -> None:
        """Bind at once (so a busy port fails here); serve after :meth:`start`."""
        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.queries: list[tuple[str, int]] = []  # every question asked, for diagnosis
        self._thread = threading.Thread(target=self._serve, name="factory-dns", daemon=True)

    def start(self) -> NameServer:
        """Start answering; returns self."""
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            try:
                self.queries.append(decode_question(query)[:2])
            except ValueError:
                pass
            response = respond(self.zone, query)
            if response is not None:
                try:
                    self.sock.sendto(response, client)
                except OSError:
                    return

    def close(self) -> None:
        """Stop answering and free the port."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
