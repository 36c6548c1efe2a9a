"""An unnamed MTA (sisimai's "X3") that lists the failed recipients with bullets and
the SMTP exchange under "Technical details"::

    Delevery to the following recipients failed permanently:

       * user@example.com

    ===========================================================================
                                 Technical details:

    SMTP:RCPT host 192.0.2.1: 553 5.3.0 <user@example.com>... No such user here
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_START_RE = lazy.regex(r"(?:Delevery|Delivery) to the following recipients? failed permanently:")
_BULLET_RE = lazy.regex(rf"^[ \t]*\*[ \t]*<?({DOTTED_ADDRESS})>?[ \t]*$", re.M)
_DETAILS = "Technical details:"
_SMTP_RE = lazy.regex(r"^SMTP:(\w{1,10}) host ([^\s:]{1,255}): (.{1,1000})$", re.M)


def parse(view: View) -> list[Finding] | None:
    """A finding per bulleted recipient; ``None`` if not this format."""
    if not view.subject_lower.startswith("delivery status notification"):
        return None
    text = view.text
    start = _START_RE.search(text)
    if start is None:
        return None
    details = text.find(_DETAILS, start.end())
    listing = text[start.end():details] if details > 0 else text[start.end():]
    replies = list(_SMTP_RE.finditer(text, details)) if details > 0 else []
    found: list[Finding] = []
    for match in _BULLET_RE.finditer(listing):
        address = clean_address(match.group(1))
        reply = _reply_for(address, replies)
        error = " ".join(reply.group(3).split()) if reply else ""
        found.append(textbounce.failure(address, error, remote_mta=reply.group(2).lower() if reply else ""))
    return found or None


def _reply_for(address: str, replies: list[re.Match[str]]) -> re.Match[str] | None:
    """The reply that names ``address``, else the only reply there is."""
    for reply in replies:
        if address.lower() in reply.group(3).lower():
            return reply
    return replies[0] if len(replies) == 1 else None
