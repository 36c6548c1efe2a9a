"""GMX and 1&1 (web.de, kundenserver.de): United Internet's own notices::

    A message that you sent could not be delivered to one or more of
    its recipients. This is a permanent error. The following address
    failed:

    "user@example.com":
    SMTP error from remote server after RCPT command:
    host: mx.example.com
    5.1.1 <user@example.com>... User unknown

    --- The header of the original message is following. ---

The address stands alone on its line, bare, quoted or in <>, with a colon or not.
"""

from __future__ import annotations

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS
from bouncefilter.core.record import Finding

_MARKER = "--- The header of the original message is following. ---"
_START_RE = lazy.regex(r"address(?:\(es\))?\s+failed:")
_LINE_RE = lazy.regex(rf"^[<\"]?(?P<addr>{DOTTED_ADDRESS})[>\"]?:?[ \t]*$")
_HOST_RE = lazy.regex(r"\bhost:?[ \t]+([A-Za-z0-9][A-Za-z0-9_.-]{0,252})")
_EXPIRED = "retry timeout exceeded"
#: The notice says the error is permanent; a timeout then means the lifetime ran out.


def parse(view: View) -> list[Finding] | None:
    """Findings for each address a GMX or 1&1 notice names; ``None`` otherwise."""
    if not view.subject_lower.startswith("mail delivery failed") or not textbounce.is_daemon(view):
        return None
    text = view.text
    end = text.find(_MARKER)
    if end < 0:
        return None
    start = _START_RE.search(text, 0, end)
    if start is None:
        return None
    found = [
        _finding(address, error)
        for address, error in textbounce.address_blocks(text[start.end():end], _LINE_RE)
    ]
    return found or None


def _finding(address: str, error: str) -> Finding:
    error = error.removeprefix("Reason: ")
    host = _HOST_RE.search(error)
    remote_mta = host.group(1).rstrip(".").lower() if host else ""
    return textbounce.failure(address, error, "5.0.0", expired=_EXPIRED in error, remote_mta=remote_mta)
