"""qmail's notices, and those of its descendants (netqmail, indimail, vpopmail hosts, and
the reworded forks some large providers ran)::

    Hi. This is the qmail-send program at mail.example.org.
    I'm afraid I wasn't able to deliver your message to the following addresses.
    This is a permanent error; I've given up. Sorry it didn't work out.

    <user@example.com>:
    192.0.2.1 does not like recipient.
    Remote host said: 550 5.1.1 <user@example.com>... User unknown
    Giving up on 192.0.2.1.

    --- Below this line is a copy of the message.

qmail's own errors end in a status code, ``(#5.1.1)``; a remote server's answer
follows "Remote host said:".
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS
from bouncefilter.core.record import Finding

_SUBJECTS = ("failure notice", "delivery failure", "failed delivery", "failure delivery")
#: The openings of qmail-send's notice and of the reworded forks.
_INTROS = (
    "This is the qmail-send program at",
    "wasn't able to deliver your message to the following addresses",
    "Unable to deliver message to the following address(es)",
    "Your mail message to the following address(es) could not be delivered",
)
_ENDS = (
    "--- Below this line is a copy of the message",
    "--- Below the next line is a copy of the message",
    "--- Enclosed is a copy of the message",
    "--- Original message follows",
    "--- Undelivered message follows",
)
_LINE_RE = lazy.regex(rf"^<(?P<addr>{DOTTED_ADDRESS})>:?[ \t]*(?P<rest>.*)$")
_REPORTER_RE = lazy.regex(r"(?:qmail-send program at|^Message from) +([A-Za-z0-9][A-Za-z0-9_.-]{0,252})", re.M)
_REMOTE_RE = lazy.regex(r"(?:Remote host said|remote host [^\s]{1,64} said):[ \t]*(.*)$", re.I)
_EXPIRED = "this message has been in the queue too long"
#: A notice that only says the queue lifetime ran out, with no code of its own.


def parse(view: View) -> list[Finding] | None:
    """Findings for each ``<address>:`` block of a qmail notice; ``None`` otherwise."""
    if not view.subject_lower.startswith(_SUBJECTS) or not textbounce.is_daemon(view):
        return None
    text = view.text
    if not any(intro in text for intro in _INTROS):
        return None
    notice = textbounce.before_marker(text, _ENDS)
    reporter = _REPORTER_RE.search(notice)
    reporting_mta = reporter.group(1).rstrip(".").lower() if reporter else ""
    found = [
        _finding(address, error, reporting_mta)
        for address, error in textbounce.address_blocks(notice, _LINE_RE)
    ]
    return found or None


def _finding(address: str, error: str, reporting_mta: str) -> Finding:
    remote = _REMOTE_RE.search(error)
    answer = remote.group(1) if remote else ""
    return textbounce.failure(address, error, "5.0.0", answer, expired=_EXPIRED in error, reporting_mta=reporting_mta)
