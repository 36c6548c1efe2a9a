"""m-FILTER (Digital Arts) notices: a Japanese preface, the failed address, then the
server's answer and the SMTP command in labelled sections::

    kijitora@example.com

    -------server message
    550 5.1.1 <kijitora@example.com>: Recipient address rejected: User unknown

    -------SMTP command
    DATA

    -------original message
"""

from __future__ import annotations

from bouncefilter.classify import lazy, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS
from bouncefilter.core.record import Finding

_SERVER = "-------server message"
_COMMAND = "-------SMTP command"
_ENDS = ("-------original message", "-------original mail info", _COMMAND)
_LINE_RE = lazy.regex(rf"^(?P<addr>{DOTTED_ADDRESS})[ \t]*$")


def parse(view: View) -> list[Finding] | None:
    """A finding per address before the server message; ``None`` if not m-FILTER's."""
    if not textbounce.is_daemon(view) and view.sender.strip() != "<>":
        return None
    text = view.text
    split = text.find(_SERVER)
    if split < 0:
        return None
    reply = textbounce.unfold(textbounce.before_marker(text[split + len(_SERVER):], _ENDS).splitlines())
    addresses = [address for address, _ in textbounce.address_blocks(text[:split], _LINE_RE)]
    return textbounce.dedupe(textbounce.failure(address, reply) for address in addresses) or None
