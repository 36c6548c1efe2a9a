"""An unnamed MTA (sisimai's "X6") that reports each refusal in one sentence::

    We had trouble delivering your message. Full details follow:
    ...
    SMTP Server <mx.example.com> rejected recipient <user@example.com> (Error following
    RCPT command). It responded as follows: [550 5.1.1 User unknown]
"""

from __future__ import annotations

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_SIGNATURE = "We had trouble delivering your message. Full details follow:"
_REJECT_RE = lazy.regex(
    rf"SMTP Server <([^>\s]{{1,255}})> rejected recipient <({DOTTED_ADDRESS})>"
    r"[^\[\n]{0,200}?responded as follows: \[([^\]]{1,1000})\]"
)


def parse(view: View) -> list[Finding] | None:
    """A finding per rejected recipient; ``None`` if not this format."""
    if not textbounce.is_daemon(view):
        return None
    text = view.text
    if _SIGNATURE not in text:
        return None
    found = []
    for match in _REJECT_RE.finditer(" ".join(text.split())):
        found.append(textbounce.failure(
            clean_address(match.group(2)), match.group(0), answer=match.group(3).strip(),
            remote_mta=match.group(1).lower(),
        ))
    return found or None
