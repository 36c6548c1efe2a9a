"""Lotus Notes' SMTP MTA (before Domino 5): ``Undeliverable message``.

Layout: the reason comes first, then the address it applies to; a notice that names
no address means the recipient in the returned message's ``To:``::

    ------- Failure Reasons  --------

    User  not listed in public Name & Address Book
    user@example.com

    ------- Returned Message --------
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

_START_RE = lazy.regex(r"^-{3,} Failure Reasons +-{3,}[ \t]*$", re.M)
_END_RE = lazy.regex(r"^-{3,} Returned Message +-{3,}", re.M)
_TO_RE = lazy.regex(r"^To: *(.{3,400})$", re.M)


def parse(view: View) -> list[Finding] | None:
    """Findings for a Lotus Notes report; ``None`` otherwise."""
    if not view.subject_lower.startswith("undeliverable message"):
        return None
    text = view.text
    start = _START_RE.search(text)
    if start is None:
        return None
    end = _END_RE.search(text, start.end())
    reasons: list[str] = []
    out = []
    for line in text[start.end(): end.start() if end else len(text)].splitlines():
        address = clean_address(line) if "@" in line and len(line.split()) == 1 else ""
        if address:
            out.append(finding(address, unfold(reasons)))
            reasons = []
        elif line.strip():
            reasons.append(line)
    if not out and end:
        returned_to = _TO_RE.search(text, end.end())
        address = clean_address(returned_to.group(1)) if returned_to else ""
        if address:
            out.append(finding(address, unfold(reasons)))
    return out or None
