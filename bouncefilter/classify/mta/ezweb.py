"""au by KDDI's EZweb mobile mail (``Postmaster@ezweb.ne.jp`` or ``@au.com``,
``Mail System Error - Returned Mail``).

Layouts: a ``Recipient: <addr>`` block with the SMTP exchange (``>>> RCPT TO``,
``<<< 550 ...``); or a sentence ("The user(s) account is disabled.", "Each of the
following recipients was rejected by a remote mail server.") and the bare ``<addr>``,
before or after it, perhaps with the remote reply on the same line
(``<addr>: 550 user unknown``). The returned headers follow a line of dashes.
``X-SPASIGN: NG`` marks a message EZweb's own anti-spam filter refused: ``filtered``.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import ADDRESS, clean_address
from bouncefilter.core.record import Finding

_SUBJECT = "mail system error - returned mail"
_SENDERS = ("@ezweb.ne.jp", "@au.com")
_END_RE = lazy.regex(r"^(?:-{20,}[ \t]*|Content-Type: message/rfc822.*)$", re.M | re.I)
_RECIPIENT_RE = lazy.regex(r"^[ \t]*Recipient: *<([^<>\s]{3,320})>", re.M)
#: ``<addr>`` at the start of a line, and what follows it on that line.
_ANGLE_LINE_RE = lazy.regex(rf"^[ \t]*<({ADDRESS})>:?[ \t]*(.*)$")


def parse(view: View) -> list[Finding] | None:
    """Findings for an EZweb returned-mail notice; ``None`` otherwise."""
    if view.subject_lower != _SUBJECT or not any(s in view.sender_lower for s in _SENDERS):
        return None
    text = view.text
    end = _END_RE.search(text)
    if end:
        text = text[: end.start()]
    findings = _recipient_blocks(text) if _RECIPIENT_RE.search(text) else _sentence(text)
    if view.header("X-SPASIGN").strip().upper() == "NG":
        for item in findings:
            item.code = "x-spasign:ng"
    return findings or None


def _recipient_blocks(text: str) -> list[Finding]:
    """``Recipient: <addr>`` blocks: the SMTP exchange that follows is the error."""
    out = []
    matches = list(_RECIPIENT_RE.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        lines = [line.strip() for line in text[match.end(): end].splitlines() if line.strip()]
        replies = [line[3:].strip() for line in lines if line.startswith("<<<")]
        sent = next((line[3:].split() for line in lines if line.startswith(">>>")), [])
        address = clean_address(match.group(1))
        if address:
            out.append(finding(address, unfold(replies or lines)))
            if sent:
                out[-1].extra["command"] = sent[0].split(":")[0].upper()
    return out


def _sentence(text: str) -> list[Finding]:
    """Bare ``<addr>`` lines: the other lines are the error sentence they share."""
    own: dict[str, str] = {}
    sentence: list[str] = []
    for line in text.splitlines():
        match = _ANGLE_LINE_RE.match(line)
        address = clean_address(match.group(1)) if match else ""
        if match and address:
            own.setdefault(address, match.group(2).strip())
        elif line.strip():
            sentence.append(line)
    shared = unfold(sentence)
    return [finding(addr, unfold((shared, error))) for addr, error in own.items()]
