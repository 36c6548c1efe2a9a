"""The message an ``smtp`` forwarding target receives. Pure.

The original bounce, unchanged below its first line (a leading mbox ``From `` line is
dropped: it is no header), with header fields stating what bouncefilter found added on
top: ``X-Bouncefilter-Kind``, ``-Reason``, ``-Recipient``, ``-Status``, ``-Hard``,
``-Message-ID``. Line ends are made CRLF, SMTP's own form, so the receiver gets the
original octets line for line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.header import Header

_BARE_LF = re.compile(rb"(?<!\r)\n")
#: (header field, the stored row's column); a field whose value is empty is left out.
_FIELDS = (
    ("X-Bouncefilter-Kind", "outcome"),
    ("X-Bouncefilter-Reason", "reason"),
    ("X-Bouncefilter-Recipient", "recipient"),
    ("X-Bouncefilter-Status", "status"),
    ("X-Bouncefilter-Hard", "hard"),
    ("X-Bouncefilter-Message-ID", "original_message_id"),
)


def forwarded(raw: bytes, row: Mapping[str, object]) -> bytes:
    """The message to send for the stored ``row`` whose received message was ``raw``."""
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    added = b"".join(_field(name, _value(row[column])) for name, column in _FIELDS if _value(row[column]))
    return added + _BARE_LF.sub(b"\r\n", raw)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())  # one line, whatever the remote MTA wrote


def _field(name: str, value: str) -> bytes:
    """``Name: value`` CRLF, the value RFC 2047-encoded when it is not ASCII."""
    if not value.isascii():
        value = Header(value, "utf-8").encode()
    return f"{name}: {value}\r\n".encode("ascii")
