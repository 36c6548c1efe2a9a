"""Just enough of the MTA's side of the milter protocol to drive a milter over its socket.

Used by the milter's daemon tests (tests/test_milter.py) and, as Postfix sends it
(:class:`PostfixClient`), by bench/milter_cpu.py.
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
        self.rcpt_replies: list[tuple[bytes, bytes] | None] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, cmd: bytes, data: bytes = b"") -> None:
        self.sock.sendall(struct.pack("!I", len(data) + 1) + cmd + data)

    def read(self) -> tuple[bytes, bytes]:
        body = self._exactly(struct.unpack("!I", self._exactly(4))[0])
        return body[:1], body[1:]

    def final_replies(self) -> list[tuple[bytes, bytes]]:
        """Replies up to and including the final one (the actions at end of message first)."""
        replies = [self.read()]
        while replies[-1][0] not in self.FINAL:
            replies.append(self.read())
        return replies

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
        # Each RCPT TO's reply (None when it takes none): go on, or a refusal with its text.
        self.rcpt_replies = [self.step(b"R", _z(rcpt), Milter.P_NORCPT, Milter.P_NR_RCPT) for rcpt in rcpts]
        assert all(reply is None or reply == (b"c", b"") or reply[0] == b"y" for reply in self.rcpt_replies)
        assert self.step(b"T", b"", Milter.P_NODATA, Milter.P_NR_DATA) in (None, (b"c", b""))
        for name, value in headers:
            assert self.step(b"L", _z(name, value), Milter.P_NOHDRS, Milter.P_NR_HDR) in (None, (b"c", b""))
        assert self.step(b"N", b"", Milter.P_NOEOH, Milter.P_NR_EOH) in (None, (b"c", b""))
        return None

    def end(self, queue_id: str) -> list[tuple[bytes, bytes]]:
        """End of message: the milter's actions and its final reply."""
        self.macros(b"E", i=queue_id)
        self.send(b"E")
        return self.final_replies()


def _z(*parts: str) -> bytes:
    return b"".join(part.encode() + b"\0" for part in parts)


#: Postfix's default macro lists (main.cf ``milter_*_macros``) by SMFIM_ stage: connect,
#: HELO, MAIL FROM, RCPT TO, DATA, end of message, end of headers (also sent before
#: each header).
POSTFIX_MACROS = {
    0: "j {daemon_name} {daemon_addr} v _",
    1: "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    2: "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    3: "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    4: "i",
    5: "i",
    6: "i",
}


class PostfixClient(WireClient):
    """What Postfix (3.x smtpd and cleanup) sends a milter for one message per connection.

    Postfix sends a macro packet before every step, also before the steps the milter
    negotiated away and before each header, with its main.cf lists at the stages the
    milter gave no list for. It writes nothing until it waits for a reply, so the steps
    that take none go out together. At the end of the SMTP session it aborts twice and
    quits.
    """

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self._out: list[bytes] = []
        self._lists = dict(POSTFIX_MACROS)
        self._known = {"j": "mx.example.test", "{daemon_name}": "smtpd", "{daemon_addr}": "127.0.0.1",
                       "v": "Postfix 3.7.11", "_": "client.example.test [127.0.0.1]"}

    def send(self, cmd: bytes, data: bytes = b"") -> None:
        self._out.append(struct.pack("!I", len(data) + 1) + cmd + data)

    def read(self) -> tuple[bytes, bytes]:
        self.flush()
        return super().read()

    def flush(self) -> None:
        if self._out:
            self.sock.sendall(b"".join(self._out))
            self._out.clear()

    def negotiate(self) -> tuple[int, int]:
        offer = super().negotiate()
        rest = self.macro_lists
        while len(rest) >= 5:
            (stage,) = struct.unpack("!I", rest[:4])
            names, _, rest = rest[4:].partition(b"\0")
            self._lists[stage] = names.decode() or POSTFIX_MACROS.get(stage, "")
        return offer

    def message(self, sender: str, rcpts: Sequence[str], headers: Sequence[tuple[str, str]],
                queue_id: str) -> list[tuple[bytes, bytes]]:
        """One message from connect to end of message; the milter's replies to it."""
        self._step(0, b"C", _z("client.example.test") + b"4" + struct.pack("!H", 25) + _z("127.0.0.1"),
                   Milter.P_NOCONNECT, Milter.P_NR_CONN)
        self._step(1, b"H", _z("client.example.test"), Milter.P_NOHELO, Milter.P_NR_HELO)
        self._known["{mail_addr}"] = sender.strip("<>")
        self._step(2, b"M", _z(sender, "SIZE=2000"), Milter.P_NOMAIL, Milter.P_NR_MAIL)
        self._known["i"] = queue_id
        for rcpt in rcpts:
            self._known.update({"{rcpt_addr}": rcpt.strip("<>"), "{rcpt_host}": "127.0.0.1", "{rcpt_mailer}": "smtp"})
            self._step(3, b"R", _z(rcpt), Milter.P_NORCPT, Milter.P_NR_RCPT)
        self._step(4, b"T", b"", Milter.P_NODATA, Milter.P_NR_DATA)
        for name, value in headers:
            self._step(6, b"L", _z(name, value), Milter.P_NOHDRS, Milter.P_NR_HDR, macro_cmd=b"L")
        self._macros(5, b"E")
        self.send(b"E")
        return self.final_replies()

    def quit(self) -> None:
        """The end of the SMTP session, then the connection closed."""
        self.send(b"A")
        self.send(b"A")
        self.send(b"Q")
        self.flush()
        self.close()

    def _step(self, stage: int, cmd: bytes, data: bytes, skip: int, quiet: int, macro_cmd: bytes = b"") -> None:
        self._macros(stage, macro_cmd or cmd)
        if not self.protocol & skip:
            self.send(cmd, data)
            if not self.protocol & quiet:
                assert self.read() == (b"c", b"")

    def _macros(self, stage: int, cmd: bytes) -> None:
        names = self._lists.get(stage, "").split()
        self.send(b"D", cmd + b"".join(_z(name, self._known[name]) for name in names if name in self._known))
