"""Just enough of the MTA's side of the milter protocol to drive a milter over its socket.

Used by the milter's daemon tests (tests/test_milter.py) and by bench/milter_cpu.py.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

import Milter  # type: ignore[import-untyped]


class WireClient:
    """An MTA connection to a milter (protocol version 6): `unix:PATH` or `inet:PORT@HOST`."""

    FINAL = (b"c", b"a", b"t", b"r", b"d", b"y")

    def __init__(self, spec: str) -> None:
        kind, _, where = spec.partition(":")
        if kind == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(where)
        else:
            port, _, host = where.partition("@")
            self.sock = socket.create_connection((host, int(port)))
        self.sock.settimeout(20)
        self.protocol = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, cmd: bytes, data: bytes = b"") -> None:
        self.sock.sendall(struct.pack("!I", len(data) + 1) + cmd + data)

    def read(self) -> tuple[bytes, bytes]:
        body = self._exactly(struct.unpack("!I", self._exactly(4))[0])
        return body[:1], body[1:]

    def _exactly(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            chunk = self.sock.recv(size - len(out))
            if not chunk:
                raise EOFError("the milter closed the connection")
            out += chunk
        return out

    def negotiate(self) -> tuple[int, int]:
        """Offer every action and protocol step; the milter's choice of (actions, protocol)."""
        self.send(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF))
        cmd, data = self.read()
        assert cmd == b"O"
        _, actions, self.protocol = struct.unpack("!III", data[:12])
        self.macro_lists = data[12:]
        return actions, self.protocol

    def macros(self, stage: bytes, **values: str) -> None:
        self.send(b"D", stage + b"".join(_z("{" + k + "}" if len(k) > 1 else k, v) for k, v in values.items()))

    def step(self, cmd: bytes, data: bytes, skip: int, quiet: int) -> tuple[bytes, bytes] | None:
        """Send one step unless negotiated away; its reply unless it takes none."""
        if self.protocol & skip:
            return None
        self.send(cmd, data)
        return None if self.protocol & quiet else self.read()

    def start(self, sender: str, rcpts: Sequence[str], headers: Sequence[tuple[str, str]]) -> tuple[bytes, bytes] | None:
        """Everything up to end of message; the reply to MAIL FROM if it ended the message."""
        self.macros(b"M", auth_authen="")
        reply = self.step(b"M", _z(sender, "SIZE=100"), Milter.P_NOMAIL, Milter.P_NR_MAIL)
        if reply is not None and reply[0] != b"c":
            return reply
        for rcpt in rcpts:
            assert self.step(b"R", _z(rcpt), Milter.P_NORCPT, Milter.P_NR_RCPT) in (None, (b"c", b""))
        assert self.step(b"T", b"", Milter.P_NODATA, Milter.P_NR_DATA) in (None, (b"c", b""))
        for name, value in headers:
            assert self.step(b"L", _z(name, value), Milter.P_NOHDRS, Milter.P_NR_HDR) in (None, (b"c", b""))
        assert self.step(b"N", b"", Milter.P_NOEOH, Milter.P_NR_EOH) in (None, (b"c", b""))
        return None

    def end(self, queue_id: str) -> list[tuple[bytes, bytes]]:
        """End of message: the milter's actions and its final reply."""
        self.macros(b"E", i=queue_id)
        self.send(b"E")
        replies = [self.read()]
        while replies[-1][0] not in self.FINAL:
            replies.append(self.read())
        return replies


def _z(*parts: str) -> bytes:
    return b"".join(part.encode() + b"\0" for part in parts)
