"""Zoho Mail's bounces (``mailer-daemon@mail.zoho.com``, ``X-ZohoMail``).

Layout::

    This message was created automatically by mail delivery software.
    A message that you sent could not be delivered to one or more of its recipients.
    This is a permanent error.

    user@example.com Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <user@...>... User Unknown

    Received:from mail.zoho.com by mx.zohomail.com ...        (the original's headers)

A delay says the message "has not yet been delivered" and names each address on a
line of its own, with a ``Reason:`` line.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import address_blocks, dedupe, finding
from bouncefilter.classify.view import View
from bouncefilter.core.record import Finding

_HEADERS_RE = lazy.regex(r"^Received: ?from ", re.M)
_CODE_RE = lazy.regex(r"ERROR_CODE ?: ?([245]\d\d)\b")
_STATUS_RE = lazy.regex(r"ERROR_CODE ?: ?([245]\.\d{1,3}\.\d{1,3})\b")
_DELAY = "has not yet been delivered"


def parse(view: View) -> list[Finding] | None:
    """Findings for a Zoho Mail bounce or delay notice; ``None`` otherwise."""
    if not _is_zoho(view):
        return None
    text = view.text
    headers = _HEADERS_RE.search(text)
    if headers:
        text = text[: headers.start()]
    if "delivery software" not in text:
        return None
    kind = "delay" if _DELAY in text else "bounce"
    out = []
    for address, error in address_blocks(text):
        code = _CODE_RE.search(error)
        code_status = _STATUS_RE.search(error)
        out.append(finding(
            address, error, kind=kind,
            replycode=code.group(1) if code else "",
            status=code_status.group(1) if code_status else "",
        ))
    return dedupe(out) or None


def _is_zoho(view: View) -> bool:
    if "zoho" in view.sender_lower:
        return True
    return "delivery software" in view.text and (
        bool(view.header("X-ZohoMail")) or "zoho" in view.header("X-Mailer").lower()
    )
