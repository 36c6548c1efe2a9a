"""The DragonFly Mail Agent (dma): one recipient per notice, in plain text::

    This is the DragonFly Mail Agent v0.13 at mail.example.org.

    There was an error delivering your mail to <user@example.com>.

    mx.example.com [192.0.2.1] did not like our RCPT TO:
    550 5.1.1 <user@example.com>: Recipient address rejected: User unknown

    Message headers follow.

dma also names the recipient in an ``X-Original-To:`` header of the notice.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

_SIGNATURE = "This is the DragonFly Mail Agent"
_ENDS = ("Message headers follow.", "Original message follows.")
_INTRO_RE = lazy.regex(r"^This is the DragonFly Mail Agent \S+ at ([^\s]+?)\.?$", re.M)
_RECIPIENT_RE = lazy.regex(rf"There was an error delivering your mail to <?({DOTTED_ADDRESS})>?")
_REMOTE_RE = lazy.regex(r"^(\S+) \[[^\]\n]{1,64}\] did not like our [^:\n]{1,40}:", re.M)
#: "Could not deliver for the last 432000 seconds. Giving up.": the queue lifetime ran out.
_EXPIRED_RE = lazy.regex(r"Could not deliver for the last \d{1,12} seconds")


def parse(view: View) -> list[Finding] | None:
    """The finding of a dma notice; ``None`` if the message is not one."""
    if not view.subject_lower.startswith("mail delivery failed") or not textbounce.is_daemon(view):
        return None
    text = view.text
    start = text.find(_SIGNATURE)
    if start < 0:
        return None
    notice = textbounce.before_marker(text[start:], _ENDS)
    match = _RECIPIENT_RE.search(notice)
    recipient = clean_address(match.group(1)) if match else clean_address(view.header("X-Original-To"))
    if not recipient:
        return None
    error_text = notice[match.end():] if match else notice
    error = textbounce.unfold(error_text.lstrip(".").splitlines())
    intro = _INTRO_RE.search(notice)
    remote = _REMOTE_RE.search(error_text)
    response = textbounce.unfold(error_text[remote.end():].splitlines()) if remote else error
    return [
        textbounce.failure(
            recipient, error, "5.0.0", response, expired=bool(_EXPIRED_RE.search(error)),
            reporting_mta=intro.group(1).lower() if intro else "",
            remote_mta=remote.group(1).lower() if remote else "",
        )
    ]
