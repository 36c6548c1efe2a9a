"""The messages an ``smtp`` forwarding target receives. Pure.

For a bounce event (:func:`forwarded`): the original bounce, unchanged below its first line (a leading mbox ``From `` line is
dropped: it is no header), with header fields stating what bouncefilter found added on
top: ``X-Bouncefilter-Kind``, ``-Reason``, ``-Recipient``, ``-Status``, ``-Hard``,
``-Message-ID``. Line ends are made CRLF, SMTP's own form, so the receiver gets the
original octets line for line.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

from bouncefilter.core.window import iso

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


#: (header field, the change's key) of a suppression notification; empty values left out.
_CHANGE_FIELDS = (
    ("X-Bouncefilter-Event", "event"),
    ("X-Bouncefilter-Account", "account"),
    ("X-Bouncefilter-Address", "address"),
    ("X-Bouncefilter-Reason", "reason"),
    ("X-Bouncefilter-Detail", "detail"),
    ("X-Bouncefilter-At", "at"),
    ("X-Bouncefilter-Until", "until"),
    ("X-Bouncefilter-Bounce-ID", "bounce_id"),
    ("X-Bouncefilter-Actor", "actor"),
)
_MOMENTS = ("at", "until")


def notification(change: Mapping[str, object], to: str, sender: str, identifier: str) -> bytes:
    """The message telling ``to`` of ``change`` (as
    :func:`bouncefilter.store.suppressions.history_event` gives it), from ``sender``,
    with ``<identifier@sender's domain>`` as its Message-ID (the same on every retry).
    Moments (``at``, ``until``) are written in RFC 3339, UTC."""
    shown = {key: _shown(key, value) for key, value in change.items()}
    lifted = change["event"] == "suppression.lifted"
    note = EmailMessage(policy=SMTP)
    note["From"] = f"bouncefilter <{sender}>"
    note["To"] = to
    note["Subject"] = (f"bouncefilter: {shown['address']} {'lifted off' if lifted else 'put on'} the suppression"
                       f" list of {shown['account']} ({shown['reason']})")
    note["Date"] = formatdate(float(change["at"]), usegmt=True)  # type: ignore[arg-type]
    note["Message-ID"] = f"<{identifier}@{sender.rpartition('@')[2] or 'localhost'}>"
    note["Auto-Submitted"] = "auto-generated"
    for name, key in _CHANGE_FIELDS:
        if shown.get(key):
            note[name] = shown[key]
    note.set_content(_words(shown, lifted))
    return note.as_bytes()


def _shown(key: str, value: object) -> str:
    if value is None:
        return ""
    if key in _MOMENTS and isinstance(value, (int, float)):
        return iso(float(value))
    return _value(value)


def _words(shown: Mapping[str, str], lifted: bool) -> str:
    """The notification's body: what happened, then each field on a line of its own."""
    if lifted:
        said = f"{shown['address']} is no longer suppressed for the account {shown['account']}."
    else:
        lasting = f"until {shown['until']}" if shown.get("until") else "until it is lifted"
        said = (f"{shown['address']} is suppressed for the account {shown['account']} {lasting}: "
                "mail to it is no longer sent.")
    lines = [textwrap.fill(said, 72), ""] + [f"{key}: {shown[key]}" for _, key in _CHANGE_FIELDS if shown.get(key)]
    return "\n".join(lines) + "\n"
