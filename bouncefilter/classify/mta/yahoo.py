"""Yahoo! Mail's (and AOL's, and SES-relayed) ``Failure Notice`` bounces, told by
their opening sentence.

Layout::

    Sorry, we were unable to deliver your message to the following address.

    <user@example.com>:
    Remote host said: 550 5.1.1 <user@example.com>... User Unknown [RCPT_TO]

    --- Below this line is a copy of the message.

The bracketed tag names the SMTP command the remote host refused; it is kept as the
finding's ``command`` (the SMTP verb: ``RCPT``, ``MAIL``, ``DATA``, ...).
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import address_blocks, finding
from bouncefilter.classify.view import View
from bouncefilter.core.record import Finding

_START = "Sorry, we were unable to deliver your message to the following address"
_END = "--- Below this line is a copy of the message."
_SAID_RE = lazy.regex(r"^Remote host said:\s*", re.I)
#: Yahoo writes the reply code bare or with a colon (``550: 5.2.2 ...``).
_CODE_RE = lazy.regex(r"^([245]\d\d):?(?=\s)")
_COMMAND_RE = lazy.regex(r"\s*\[(RCPT_TO|MAIL_FROM|DATA|CONNECT|HELO|EHLO)\]\s*$")


def parse(view: View) -> list[Finding] | None:
    """Findings for a Yahoo! ``Failure Notice``; ``None`` otherwise."""
    text = view.text
    start = text.find(_START)
    if start < 0:
        return None
    end = text.find(_END, start)
    section = text[text.find("\n", start) + 1: end if end >= 0 else len(text)]
    out = []
    for address, error in address_blocks(section):
        error = _SAID_RE.sub("", error)
        command = _COMMAND_RE.search(error)
        if command:
            error = error[: command.start()]
        code = _CODE_RE.match(error)
        item = finding(address, error, replycode=code.group(1) if code else "")
        if command:
            item.extra["command"] = command.group(1).split("_")[0]
        out.append(item)
    return out or None
