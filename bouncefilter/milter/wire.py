"""The milter protocol on the wire (version 6, as Sendmail 8.14+ and Postfix 2.6+ speak it).

Pure: framing and the few packets bouncefilter reads and writes, no sockets. Every packet
is a 4-octet big-endian length, then a one-octet command, then ``length - 1`` octets of
data; strings in the data end in NUL. :class:`Decoder` cuts a byte stream into
``(command, data)`` pairs, the functions below build the milter's replies.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

#: The protocol version the milter speaks.
VERSION = 6
#: Longest packet accepted (libmilter's limit is the same order): a larger length is a
#: broken or hostile peer, not mail.
MAX_PACKET = 256 * 1024

# Commands from the MTA.
ABORT = b"A"
BODY = b"B"
CONNECT = b"C"
MACRO = b"D"
BODYEOB = b"E"
HELO = b"H"
QUIT_NC = b"K"
HEADER = b"L"
MAIL = b"M"
EOH = b"N"
OPTNEG = b"O"
QUIT = b"Q"
RCPT = b"R"
DATA = b"T"
UNKNOWN = b"U"

# Replies of the milter.
ADDHEADER = b"h"
CHGFROM = b"e"
CHGHEADER = b"m"
DELRCPT = b"-"
INSHEADER = b"i"
REPLYCODE = b"y"
#: The replies that end a step, by pymilter's (libmilter's SMFIS_*) return code.
VERDICTS = {0: b"c", 1: b"r", 2: b"d", 3: b"a", 4: b"t", 8: b"s"}
CONTINUE_REPLY = b"c"

#: What an MTA that offers no actions or no protocol steps (0) is taken to offer, as
#: libmilter takes it: a version 1 MTA's (ADDHDRS, CHGBODY, ADDRCPT, DELRCPT; may skip
#: CONNECT, HELO, MAIL, RCPT, body and headers).
V1_ACTIONS = 0x0F
V1_PROTOCOL = 0x3F

_LENGTH = struct.Struct("!I")
_OPTNEG = struct.Struct("!III")


class ProtocolError(Exception):
    """The peer does not speak the milter protocol (oversized or malformed packet)."""


class Decoder:
    """Cuts the bytes of one connection into packets, however the stream was split."""

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> int:
        """The bytes of an unfinished packet held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The whole packets completed by ``data``, in order; raises :class:`ProtocolError`."""
        buffer = self._buffer + data if self._buffer else data
        packets = []
        pos = 0
        end = len(buffer)
        while end - pos >= 4:
            (length,) = _LENGTH.unpack_from(buffer, pos)
            if not 1 <= length <= MAX_PACKET:
                raise ProtocolError(f"packet length {length}")
            if end - pos - 4 < length:
                break
            packets.append((buffer[pos + 4 : pos + 5], buffer[pos + 5 : pos + 4 + length]))
            pos += 4 + length
        self._buffer = buffer[pos:]
        return packets


def packet(command: bytes, data: bytes = b"") -> bytes:
    """One packet on the wire."""
    return _LENGTH.pack(len(data) + 1) + command + data


def strings(data: bytes) -> list[bytes]:
    """The NUL-terminated strings in ``data`` (a missing last NUL is forgiven)."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def parse_optneg(data: bytes) -> tuple[int, int, int]:
    """The MTA's offer: (version, actions, protocol steps); none offered (0) is a version
    1 MTA's offer (:data:`V1_ACTIONS`, :data:`V1_PROTOCOL`), as libmilter reads it."""
    if len(data) < _OPTNEG.size:
        raise ProtocolError("short option negotiation")
    version, actions, protocol = _OPTNEG.unpack_from(data)
    return version, actions or V1_ACTIONS, protocol or V1_PROTOCOL


def optneg_reply(version: int, actions: int, protocol: int, macro_lists: Mapping[int, bytes] | None = None) -> bytes:
    """The milter's answer to the negotiation, with the macros it wants by stage (at the
    stages not listed, the MTA goes on sending the macros its configuration names)."""
    lists = b"".join(_LENGTH.pack(stage) + names + b"\0" for stage, names in (macro_lists or {}).items())
    return packet(OPTNEG, _OPTNEG.pack(version, actions, protocol) + lists)


def macro_stage(data: bytes) -> tuple[bytes, bytes]:
    """The command a macro packet is for, and the rest of it (see :func:`macro_values`)."""
    if not data:
        raise ProtocolError("empty macro packet")
    return data[:1], data[1:]


def macro_values(data: bytes) -> dict[str, str]:
    """The macros in the rest of a macro packet, by name as sent (e.g. ``i`` or ``{auth_authen}``)."""
    parts = strings(data)
    return {
        parts[i].decode("utf-8", "surrogateescape"): parts[i + 1].decode("utf-8", "surrogateescape")
        for i in range(0, len(parts) - 1, 2)
    }


def _z(*texts: str) -> bytes:
    return b"".join(text.encode("utf-8", "surrogateescape") + b"\0" for text in texts)


def chgfrom(sender: str, params: str | None) -> bytes:
    """Change the envelope sender (end of message only)."""
    return packet(CHGFROM, _z(sender, params) if params else _z(sender))


def addheader(name: str, value: str) -> bytes:
    """Append a header (end of message only)."""
    return packet(ADDHEADER, _z(name, value))


def insheader(index: int, name: str, value: str) -> bytes:
    """Insert a header at ``index`` (0: first)."""
    return packet(INSHEADER, _LENGTH.pack(index) + _z(name, value))


def chgheader(name: str, index: int, value: str | None) -> bytes:
    """Change the ``index``-th (from 1) header called ``name``; ``None`` removes it."""
    return packet(CHGHEADER, _LENGTH.pack(index) + _z(name, value or ""))


def delrcpt(recipient: str) -> bytes:
    """Remove a recipient, named as it was given at RCPT TO (end of message only)."""
    return packet(DELRCPT, _z(recipient))


def replycode(text: str) -> bytes:
    """The SMTP reply for a reject or tempfail, e.g. ``451 4.3.0 try again later``, as one
    string with its ``%`` doubled (as libmilter sends it; Postfix halves them)."""
    return packet(REPLYCODE, _z(text))

