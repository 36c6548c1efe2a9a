"""Verizon Wireless's MMS gateway (vzwpix.com): the recipient is only in the summary of
the original below the error::

    Message could not be delivered to mobile.
    Error: No valid recipients for this MM

    Original Message:
    To: 5555550100@vzwpix.com
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_ORIGINAL = "Original Message:"
_ERROR_RE = lazy.regex(r"^Error: (.{1,500})$", re.M)
_TO_RE = lazy.regex(r"^To:[ \t]*(.{1,1000})$", re.M)


def parse(view: View) -> list[Finding] | None:
    """The recipient of a Verizon MMS notice; ``None`` otherwise."""
    if "vzwpix.com" not in view.sender_lower:
        return None
    text = view.text
    split = text.find(_ORIGINAL)
    if split < 0:
        return None
    to = _TO_RE.search(text, split)
    notice = text[:split]
    error_line = _ERROR_RE.search(notice)
    error = textbounce.unfold([notice.strip().splitlines()[0] if notice.strip() else "", error_line.group(1) if error_line else ""])
    recipients = find_addresses(to.group(1)) if to else []
    return textbounce.dedupe(textbounce.failure(address, error) for address in recipients) or None
