"""Gmail's plain-text bounces (``Delivery Status Notification (Failure|Delay)``).

Layout::

    Delivery to the following recipient failed permanently:     (or "has been delayed:")

         user@example.com

    Technical details of permanent failure:
    Google tried to deliver your message, but it was rejected by the server for the
    recipient domain example.com by mx.example.com. [192.0.2.1].

    The error that the other server returned was:
    550 5.1.1 <user@example.com>... User Unknown

    ----- Original message -----

Gmail's newer bounces carry a delivery-status part and are read as DSNs.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import failed_recipients, finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_SENDERS = ("mailer-daemon@googlemail.com", "mailer-daemon@google.com", "mailer-daemon@gmail.com")
_END_MARKERS = ("----- Original message -----", "----- Message header follows -----")
_START_RE = lazy.regex(r"^Delivery to the following recipients? (failed permanently|has been delayed|failed)", re.M)
_DETAILS_RE = lazy.regex(r"^Technical details of (permanent|temporary) failure:[ \t]*$", re.M)
_SERVER_SAID = "The error that the other server returned was:"
_RETRY_RE = lazy.regex(r"^Message will be retried for .{0,40}$", re.M)
#: The recipient list is a few lines; a bound keeps address scanning cheap on junk.
_MAX_LISTING = 8192
_REMOTE_RE = lazy.regex(r"\bby ([A-Za-z0-9][A-Za-z0-9.-]{0,250})\.? \[([0-9A-Fa-f.:]{3,45})\]")


def parse(view: View) -> list[Finding] | None:
    """Findings for a Gmail plain-text bounce or delay notice; ``None`` otherwise."""
    if not any(sender in view.sender_lower for sender in _SENDERS):
        return None
    text = _notice(view.text)
    start = _START_RE.search(text)
    if start is None:
        return None
    details = _DETAILS_RE.search(text, start.end())
    listing = text[start.end(): details.start() if details else len(text)][:_MAX_LISTING]
    delayed = start.group(1) == "has been delayed"
    kind = "delay" if delayed else "bounce"
    diagnostic, remote = _diagnostic(text[details.end():] if details else "", listing)
    recipients = find_addresses(_RETRY_RE.sub("", listing)) or failed_recipients(view.header("X-Failed-Recipients"))
    return [finding(addr, diagnostic, kind=kind, remote_mta=remote) for addr in recipients] or None


def _notice(text: str) -> str:
    """The notification without the returned original."""
    for marker in _END_MARKERS:
        index = text.find(marker)
        if index >= 0:
            return text[:index]
    return text


def _diagnostic(details: str, listing: str) -> tuple[str, str]:
    """(error text, remote MTA): the remote server's words if quoted, else Google's."""
    remote = _REMOTE_RE.search(details)
    said = details.find(_SERVER_SAID)
    error = details[said + len(_SERVER_SAID):] if said >= 0 else details
    error = unfold(error.splitlines())
    if not error:
        retry = _RETRY_RE.search(listing)
        error = retry.group(0).strip() if retry else ""
    return error, (remote.group(1).rstrip(".").lower() if remote else "")
