"""MailFoundry's notices::

    Unable to deliver message to: <user@example.com>
    Delivery failed for the following reason:
    Server mx.example.com[192.0.2.1] failed with: 550 <user@example.com> No such user here

    This has been a permanent failure.  No further delivery attempts will be made.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_RECIPIENT_RE = lazy.regex(rf"^Unable to deliver message to: <?({DOTTED_ADDRESS})>?", re.M)
_REASON = "Delivery failed for the following reason:"
_ENDS = ("This has been a permanent failure", "\n\n")
_ANSWER_RE = lazy.regex(r"failed with: (.{1,1000})$")


def parse(view: View) -> list[Finding] | None:
    """A finding per recipient of a MailFoundry notice; ``None`` otherwise."""
    if view.subject_lower != "message delivery has failed" or not textbounce.is_daemon(view):
        return None
    text = view.text
    recipients = [clean_address(match.group(1)) for match in _RECIPIENT_RE.finditer(text)]
    reason = textbounce.section(text, (_REASON,), _ENDS)
    if not recipients or not reason:
        return None
    error = textbounce.unfold(reason.splitlines())
    answer = _ANSWER_RE.search(error)
    return textbounce.dedupe(
        textbounce.failure(
            address, error,
            answer=answer.group(1) if answer else "",
            remote_mta=textbounce.remote_host(error),
        )
        for address in recipients
    ) or None
