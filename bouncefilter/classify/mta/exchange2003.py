"""Microsoft Exchange 5.5 to 2003 (Internet Mail Service / Connector) non-delivery reports.

Layout::

    Your message
      To:      sender@example.org
      Subject: ...
    did not reach the following recipient(s):          (or "could not be reached:")

    user@example.com on Thu, 29 Apr 2010 00:00:00 -0000
        The recipient name is not recognized
        MSEXCH:IMS:ORG:SITE:SERVER 0 (000C05A6) Unknown Recipient

Recognised by ``X-MS-Embedded-Report``, the ``X-Mailer`` or ``X-MimeOLE`` of these
versions, or an ``Undeliverable:`` subject, together with the recipient-list sentence.
A recipient may be written as an X.400 address carrying ``SMTP=user@example.com``.
The hexadecimal code after ``MSEXCH:`` names the failure: it is passed on as the code
words ``msexch:CODE``, which the wording table reads.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy
from bouncefilter.classify.textbounce import finding, unfold
from bouncefilter.classify.view import View
from bouncefilter.core.address import ADDRESS
from bouncefilter.core.record import Finding

_MAILERS = ("internet mail service", "internet mail connector", "produced by microsoft exchange")
_LIST_RE = lazy.regex(r"^(?:did not reach the following recipient\(s\)|The following recipient\(s\) could not be reached):[ \t]*$", re.M)
_RECIPIENT_RE = lazy.regex(
    rf"^[ \t]*(?:[^\n]{{0,200}}?SMTP=)?({ADDRESS});? on \S.{{0,60}}$", re.I
)
_MSEXCH_CODE_RE = lazy.regex(r"MSEXCH:.{0,200}?\(([0-9A-F]{8})\)")
#: The MTS-ID line (and its folded tail) identifies the message, not the failure.
_NOISE_RE = lazy.regex(r"^(?:The MTS-ID of the original message is:|;)")


def parse(view: View) -> list[Finding] | None:
    """Findings for an Exchange 2003-era report; ``None`` otherwise."""
    if "recipient(s)" not in view.text or not _is_exchange(view):
        return None
    listing = _LIST_RE.search(view.text)
    if listing is None:
        return None
    out = []
    for address, lines in _blocks(view.text[listing.end():]):
        diagnostic = unfold(lines)
        code = _MSEXCH_CODE_RE.search(diagnostic)
        out.append(finding(address, diagnostic, code=f"msexch:{code.group(1).lower()}" if code else ""))
    return out or None


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """(recipient, error lines) per ``ADDRESS on DATE`` line; a block ends at a blank line."""
    blocks: list[tuple[str, list[str]]] = []
    open_block = False
    for line in text.splitlines():
        match = _RECIPIENT_RE.match(line)
        if match:
            blocks.append((match.group(1), []))
            open_block = True
        elif not line.strip():
            open_block = False
        elif open_block:
            if not _NOISE_RE.match(line.strip()):
                blocks[-1][1].append(line)
        elif blocks:
            break  # past the listing
    return blocks


def _is_exchange(view: View) -> bool:
    if view.header("X-MS-Embedded-Report") or view.subject_lower.startswith("undeliverable"):
        return True
    mailer = f"{view.header('X-Mailer')} {view.header('X-MimeOLE')}".lower()
    return any(name in mailer for name in _MAILERS)
