"""McAfee MXLogic's bounces (``MAILER-DAEMON@...mxlogic.net``, ``X-MX-Bounce``).

Exim's layout with MXLogic's words::

    A message that you have sent could not be delivered to one or more
    recipients.  This is a permanent error.  The following address failed:

      <user@example.com>: 550 5.1.1 <user@example.com>: Recipient address rejected: ...

    Included is a copy of the message header:
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import address_blocks, dedupe, finding
from bouncefilter.classify.view import View
from bouncefilter.core.record import Finding

_START_RE = lazy.regex(r"The following address(?:es)? failed:[ \t]*$", re.M)
_END = "Included is a copy of the message header:"


def parse(view: View) -> list[Finding] | None:
    """Findings for an MXLogic bounce; ``None`` otherwise."""
    if not _is_mxlogic(view):
        return None
    text = view.text
    start = _START_RE.search(text)
    if start is None:
        return None
    end = text.find(_END, start.end())
    section = text[start.end(): end if end >= 0 else len(text)]
    return dedupe([finding(addr, error) for addr, error in address_blocks(section)]) or None


def _is_mxlogic(view: View) -> bool:
    if "mxlogic" in view.sender_lower:
        return True
    return _END in view.text and (
        view.header("Message-ID").startswith("<mxl~")
        or bool(view.header("X-MX-Bounce") or view.header("X-MXL-NoteHash"))
    )
