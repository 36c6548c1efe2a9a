"""Trend Micro InterScan Messaging Security Suite (InterScan MSS) reports.

Two layouts: the SMTP exchange (``Sent <<< RCPT TO:<addr>`` then
``Received >>> 550 ...``; the two words are translated in localised versions), or
``Reason: Unable to deliver message to <addr> ...``. Recognised by the ``InterScan``
sender name, MIME boundary or banner.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import dedupe, finding
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address, find_addresses
from bouncefilter.core.record import Finding

_SENT_RE = lazy.regex(
    r"^[^<>\n]{0,30}<<< RCPT TO: ?<?([^<>\s]{3,320})>?[ \t]*\n(?:[^<>\n]{0,30}>>> (.{0,1000}))?", re.M | re.I
)
_REASON_RE = lazy.regex(r"^Reason: *(.{0,1000})$", re.M)


def parse(view: View) -> list[Finding] | None:
    """Findings for an InterScan MSS report; ``None`` otherwise."""
    text = view.text
    if "interscan" not in view.sender_lower and "InterScan" not in text:
        if "<<<" not in text or "interscan" not in view.header("Content-Type").lower():
            return None
    out = [finding(clean_address(m.group(1)), (m.group(2) or "").strip()) for m in _SENT_RE.finditer(text)]
    for item in out:
        item.extra["command"] = "RCPT"
    for match in _REASON_RE.finditer(text):
        reason = match.group(1).strip()
        out.extend(finding(addr, reason) for addr in find_addresses(reason))
    return dedupe([item for item in out if item.recipient]) or None
