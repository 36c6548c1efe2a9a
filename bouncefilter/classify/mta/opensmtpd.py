"""OpenSMTPD's plain-text notices (versions before its RFC 3464 reports)::

        An error has occurred while attempting to deliver a message for
        the following list of recipients:

    user@example.com: 550 5.1.1 <user@example.com>... User unknown

        Below is a copy of the original message:

A delay warning says "A message is delayed for more than ... for the following list of
recipients:" instead.
"""

from __future__ import annotations

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS
from bouncefilter.core.record import Finding

_SUBJECT = "delivery status notification:"
_START = "following list of recipients:"
_ENDS = ("Below is a copy of the original message", "Below is a copy of the message headers")
_LINE_RE = lazy.regex(rf"^(?P<addr>{DOTTED_ADDRESS}):[ \t]+(?P<rest>.*)$")
#: The queue lifetime ran out; OpenSMTPD gives up for good.


def parse(view: View) -> list[Finding] | None:
    """Findings for each ``address: error`` line; ``None`` if not an OpenSMTPD notice."""
    if not view.subject_lower.startswith(_SUBJECT) or not textbounce.is_daemon(view):
        return None
    body = textbounce.section(view.text, (_START,), _ENDS)
    if not body:
        return None
    delay = "delay" in view.subject_lower or "warning" in view.subject_lower
    found = [
        _finding(address, error, delay)
        for address, error in textbounce.address_blocks(body, _LINE_RE)
    ]
    return found or None


def _finding(address: str, error: str, delay: bool) -> Finding:
    expired = not delay and error.lower().startswith("envelope expired")
    return textbounce.failure(address, error, "4.0.0" if delay else "5.0.0", expired=expired,
                              kind="delay" if delay else "bounce")
