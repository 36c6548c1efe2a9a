"""fml, the Japanese mailing list manager: its refusal of a post from a non-member::

    Subject: You sender@example.org are not member (list ML)

    You are not a member of this mailing list <list@example.com>.

The post bounced off the list: the list address is the recipient, and the list
rejected the sender, which the notice states in words no status code carries.
"""

from __future__ import annotations

from bouncefilter.classify import lazy
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

_SUBJECT_RE = lazy.regex(r"^you .{1,320} are not member \(.{1,200} ml\)$")
_LIST_RE = lazy.regex(r"You are not a member of this mailing list <([^>\s]{3,320})>")


def parse(view: View) -> list[Finding] | None:
    """The list address of an fml non-member notice; ``None`` otherwise."""
    if not view.subject_lower.startswith("you ") or not _SUBJECT_RE.match(view.subject_lower):
        return None
    match = _LIST_RE.search(view.text)
    address = clean_address(match.group(1)) if match else ""
    if not match or not address:
        return None
    return [Finding(
        recipient=address,
        action="failed",
        status="5.0.0",
        diagnostic=" ".join(match.group(0).split()),
        code="fml:non-member",
    )]
