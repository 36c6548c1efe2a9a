"""TransWARE Active!hunter's reports: Sendmail's wording in a report without a
delivery-status part (``X-AHMAILID``, an ``Active!Hunter`` MIME boundary).

Layout::

      ----- The following addresses had permanent fatal errors -----

    >>> user@example.com <user@example.com>

      ----- Transcript of session follows -----
    550 <user@example.com>: Recipient address rejected: ...
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

_ERRORS_RE = lazy.regex(r"^ *-{3,} The following addresses had (?:permanent fatal errors|transient non-fatal errors) -{3,}", re.M)
_TRANSCRIPT_RE = lazy.regex(r"^ *-{3,} Transcript of session follows -{3,}", re.M)
_RCPT_RE = lazy.regex(r"^>>> *(\S{3,320})", re.M)


def parse(view: View) -> list[Finding] | None:
    """Findings for an Active!hunter report; ``None`` otherwise."""
    text = view.text
    if "The following addresses had" not in text:
        return None
    if not view.header("X-AHMAILID") and "active!hunter" not in view.header("Content-Type").lower():
        return None
    errors = _ERRORS_RE.search(text)
    if errors is None:
        return None
    transcript = _TRANSCRIPT_RE.search(text, errors.end())
    listing = text[errors.end(): transcript.start() if transcript else len(text)]
    session = [line for line in text[transcript.end():].splitlines() if line.strip()] if transcript else []
    kind = "delay" if "transient" in errors.group(0) else "bounce"
    out = []
    for match in _RCPT_RE.finditer(listing):
        address = clean_address(match.group(1))
        if address:
            own = [line for line in session if address.lower() in line.lower()]
            out.append(finding(address, unfold(own or session), kind=kind))
    return out or None
