"""IBM (Lotus) Domino's delivery failure reports (``DELIVERY FAILURE: ...``).

Layout::

    Your message

      Subject: ...

    was not delivered to:

      user@example.com

    because:

      User some.name (user@example.com) not listed in Domino Directory
"""

from __future__ import annotations

from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_SUBJECTS = ("delivery failure:", "delivery_failure:", "delivery report")
_TO = "was not delivered to:"
_BECAUSE = "because:"
#: The recipient list is a few lines; a bound keeps address scanning cheap on junk.
_MAX_LISTING = 8192


def parse(view: View) -> list[Finding] | None:
    """Findings for a Domino report; ``None`` otherwise."""
    if not view.subject_lower.startswith(_SUBJECTS):
        return None
    text = view.text
    start = text.find(_TO)
    if start < 0:
        return None
    because = text.find(_BECAUSE, start)
    listing = text[start + len(_TO): because if because >= 0 else len(text)][:_MAX_LISTING]
    diagnostic = _first_paragraph(text[because + len(_BECAUSE):]) if because >= 0 else ""
    return [finding(addr, diagnostic) for addr in find_addresses(listing)] or None


def _first_paragraph(text: str) -> str:
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip():
            lines.append(line)
        elif lines:
            break
    return unfold(lines)
