"""Ipswitch IMail Server's notices: one ``Reason: address`` line per recipient, then
"Original message follows."::

    Unknown user: user@example.com

The reasons are IMail's fixed words; "Delivery failed N attempts" means it gave up
retrying. IMail writes these notices as the recipient's own server, so "Unknown user"
is its user directory speaking: the address does not exist.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_END = "Original message follows."
_LINE_RE = lazy.regex(rf"^(?P<rest>[A-Za-z][^:\n]{{2,80}}):[ \t]+<?(?P<addr>{DOTTED_ADDRESS})>?[ \t]*$", re.M)
_EXPIRED_RE = lazy.regex(r"^Delivery failed \d{1,5} attempts")


def parse(view: View) -> list[Finding] | None:
    """A finding per ``reason: address`` line; ``None`` if not an IMail notice."""
    if not view.subject_lower.startswith("undeliverable mail") or "postmaster" not in view.sender_lower:
        return None
    text = view.text
    end = text.find(_END)
    if end < 0:
        return None
    found = [
        _finding(match.group("addr"), " ".join(match.group("rest").split()))
        for match in _LINE_RE.finditer(text, 0, end)
    ]
    return textbounce.dedupe(found) or None


def _finding(address: str, error: str) -> Finding:
    return textbounce.failure(clean_address(address), error, "5.0.0", expired=bool(_EXPIRED_RE.match(error)))
