"""au one net (KDDI, ``dion.ne.jp`` / ``auone-net.jp``) error notices.

Layout, after an optional Japanese summary::

    Your mail sent on: Thu, 29 Apr 2013 23:45:22 +0900
         Could not be delivered to: <user@example.dion.ne.jp>
         As their mailbox is full.

``X-SPASIGN: NG`` marks a message KDDI's anti-spam filter refused: ``filtered``.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

_DOMAINS = ("dion.ne.jp", "auone-net.jp")
_DELIVERED_TO_RE = lazy.regex(r"^[ \t]*Could not be delivered to: *<?([^<>\s]{3,320})>?[ \t]*$", re.M)


def parse(view: View) -> list[Finding] | None:
    """Findings for an au one net notice; ``None`` otherwise."""
    text = view.text
    if "Could not be delivered to:" not in text or not _from_kddi(view):
        return None
    matches = list(_DELIVERED_TO_RE.finditer(text))
    out = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        reason_lines = []
        for line in text[match.end(): end].splitlines()[1:]:
            if not line.strip():
                break
            reason_lines.append(line)
        address = clean_address(match.group(1))
        if address:
            out.append(finding(address, unfold(reason_lines)))
    if view.header("X-SPASIGN").strip().upper() == "NG":
        for item in out:
            item.code = "x-spasign:ng"
    return out or None


def _from_kddi(view: View) -> bool:
    where = (view.sender_lower, view.header("Reply-To").lower(), view.header("Message-ID").lower())
    return any(domain in value for domain in _DOMAINS for value in where)
