"""Postfix's notices without a delivery-status part: old Postfix, or one with DSN
turned off, and the postmaster's copy of an SMTP session error::

    This is the Postfix program at host mail.example.org.
    ...
    <user@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1
        <user@example.com>: Recipient address rejected: User unknown

The postmaster notice (``Postfix SMTP server: errors from ...``) carries a transcript
whose ``RCPT TO`` names the recipient and whose last error reply is the failure.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_INTROS = ("This is the Postfix program at host ", "This is the mail system at host ")
_WARNING = "THIS IS A WARNING ONLY"
_ENDS = ("--- Delivery report unavailable ---", "Undelivered Message", "-- Original message")
_LINE_RE = lazy.regex(
    rf"^<(?P<addr>{DOTTED_ADDRESS})>(?: \(expanded from <(?P<orig>[^>\s]{{1,320}})>\))?:[ \t]*(?P<rest>.*)$"
)
_REPORTER_RE = lazy.regex(r"at host ([A-Za-z0-9][A-Za-z0-9_.-]{0,252})")
_SERVER_SUBJECT = "postfix smtp server: errors from"
_RCPT_RE = lazy.regex(rf"^ In:  RCPT TO:<({DOTTED_ADDRESS})>", re.M | re.I)
_ERROR_REPLY_RE = lazy.regex(r"^ Out: ([45]\d\d .{0,500})$", re.M)


def parse(view: View) -> list[Finding] | None:
    """Findings for a plain-text Postfix notice; ``None`` if not one."""
    if not textbounce.is_daemon(view):
        return None
    if view.subject_lower.startswith(_SERVER_SUBJECT):
        return _server_errors(view.text)
    text = view.text
    start = next((index for index in map(text.find, _INTROS) if index >= 0), -1)
    if start < 0:
        return None
    notice = textbounce.before_marker(text[start:], _ENDS)
    delay = _WARNING in notice
    reporter = _REPORTER_RE.search(notice)
    found = []
    for line_match, error in _blocks(notice):
        found.append(textbounce.failure(
            clean_address(line_match.group("addr")), error, "4.0.0" if delay else "5.0.0",
            kind="delay" if delay else "bounce",
            reporting_mta=reporter.group(1).rstrip(".").lower() if reporter else "",
            remote_mta=textbounce.remote_host(error),
            original_recipient=clean_address(line_match.group("orig") or ""),
        ))
    return found or None


def _blocks(notice: str) -> list[tuple[re.Match[str], str]]:
    """``(address line match, error text)`` per ``<address>: error`` block."""
    blocks: list[tuple[re.Match[str], list[str]]] = []
    current: list[str] | None = None
    for line in notice.splitlines():
        match = _LINE_RE.match(line)
        if match:
            current = [match.group("rest")]
            blocks.append((match, current))
        elif current is not None and line[:1] in (" ", "\t") and line.strip():
            current.append(line)
        else:
            current = None
    return [(match, textbounce.unfold(lines)) for match, lines in blocks if lines]


def _server_errors(text: str) -> list[Finding] | None:
    """The recipient of a postmaster's session transcript, with the last error reply."""
    recipient = _RCPT_RE.search(text)
    replies = _ERROR_REPLY_RE.findall(text)
    if recipient is None or not replies:
        return None
    error = " ".join(replies[-1].split())
    return [textbounce.failure(clean_address(recipient.group(1)), error, f"{error[0]}.0.0")]
