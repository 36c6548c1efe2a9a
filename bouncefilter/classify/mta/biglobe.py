"""BIGLOBE (Japan) notices: the addresses, then the reason in a second section::

       ----- The following addresses had delivery problems -----
    user@example.com

       ----- Non-delivered information -----
    The number of messages in recipient's mailbox exceeded the local limit.
"""

from __future__ import annotations

from bouncefilter.classify import textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import find_addresses
from bouncefilter.core.record import Finding

_ADDRESSES = "----- The following addresses had delivery problems -----"
_INFORMATION = "----- Non-delivered information -----"


def parse(view: View) -> list[Finding] | None:
    """A finding per listed address; ``None`` if not a BIGLOBE notice."""
    if "biglobe" not in view.sender_lower:
        return None
    text = view.text
    listing = textbounce.section(text, (_ADDRESSES,), (_INFORMATION,))
    error = textbounce.unfold(textbounce.section(text, (_INFORMATION,), ("\n\n\n", "----- ")).splitlines())
    if not listing:
        return None
    return textbounce.dedupe(textbounce.failure(address, error) for address in find_addresses(listing)) or None
