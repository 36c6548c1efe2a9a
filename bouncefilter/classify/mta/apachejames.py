"""Apache James's notices::

    Error: Invalid user address

    Error message below:
    550 - Requested action not taken: no such user here

    Message details:
      Subject: ...
      MAIL FROM: sender@example.org
      RCPT TO: user@example.com
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_DETAILS = "\nMessage details:"
_ERROR_RE = lazy.regex(r"^Error: (.{1,200})$", re.M)
_MESSAGE_RE = lazy.regex(r"^Error message below:\n(.{1,1000}?)\n\n", re.M | re.S)
_RCPT_RE = lazy.regex(r"^[ \t]*RCPT TO:[ \t]*(.{1,2000})$", re.M | re.I)


def parse(view: View) -> list[Finding] | None:
    """A finding per ``RCPT TO`` recipient of a James notice; ``None`` otherwise."""
    if not textbounce.is_daemon(view):
        return None
    text = view.text
    if "Error message below:" not in text or _DETAILS not in text:
        return None
    rcpt = _RCPT_RE.search(text, text.find(_DETAILS))
    if rcpt is None:
        return None
    summary = _ERROR_RE.search(text)
    message = _MESSAGE_RE.search(text)
    parts = [summary.group(1) if summary else "", message.group(1) if message else ""]
    error = textbounce.unfold(parts)
    return textbounce.dedupe(textbounce.failure(address, error) for address in find_addresses(rcpt.group(1))) or None
