"""Exim's plain-text notices (and Mail.ru's, which are Exim's with a Russian preface).

Exim names the failed addresses in the ``X-Failed-Recipients`` header and, in the body,
after "The following address(es) failed:" (or, in a delay warning, "...has not yet been
delivered is/are:"): each address indented two spaces, its error below it indented four::

      user@example.com
        SMTP error from remote mail server after RCPT TO:<user@example.com>:
        host mx.example.com [192.0.2.1]: 550 5.1.1 User unknown

    ------ This is a copy of the message, including all the headers. ------
"""

from __future__ import annotations

import re

from bouncefilter import mime, textbounce
from bouncefilter.record import Finding
from bouncefilter.view import View

_SUBJECTS = ("mail delivery failed", "warning: message", "mail failure")
#: (start markers, kind, reason hint) per kind of notice. Exim itself says that a
#: malformed address is a syntax error, which no status code in the text conveys.
_SECTIONS = (
    (("address(es) failed:", "address failed:", "addresses failed:"), "bounce", ""),
    (("incorrectly constructed:",), "bounce", "syntaxerror"),
    (("not yet been delivered is:", "not yet been delivered are:"), "delay", ""),
)
_ENDS = (
    "------ This is a copy of",
    "------ The body of the message",
    "------ The headers of the message",
    "No action is required on your part",
    "This address has been ignored",
    "These addresses have been ignored",
)
#: ``  address`` (two spaces, no more), or ``  text <address>: error`` for a
#: malformed address, whose <address> is the recipient.
_LINE_RE = re.compile(
    rf"^  (?P<token>[^\s<>]{{1,320}})(?:[ \t]+<(?P<bracketed>{textbounce.ADDRESS})>)?:?(?:[ \t]+(?P<rest>.*))?$"
)
_GENERATED_RE = re.compile(r"\((?:ultimately )?generated from ([^\s)]{1,320})\)")
_SMTP_ERROR_RE = re.compile(
    r"SMTP error from remote (?:mail )?server (?:after|for) (?:[^:<\n]{0,60}:<[^>\n]{0,320}>)?[^:\n]{0,80}:"
)
_HOST_PREFIX_RE = re.compile(r"^\s*host:?\s+[^\s\[]{1,255}\s*\[[^\]]{1,64}\]:?")
_EXPIRED_RE = re.compile(
    r"retry timeout exceeded|retry time not reached for any host after a long failure period"
    r"|all hosts have been failing for a long time",
)
#: An error that is only a retry timeout (no cause before it): a temporary condition
#: that lasted too long, RFC 3463's "delivery time expired".
_EXPIRED_STATUS = "4.4.7"


def parse(view: View) -> list[Finding] | None:
    """Findings for each address an Exim notice names; ``None`` if not Exim's."""
    failed_header = view.header("X-Failed-Recipients")
    if not failed_header and not (
        textbounce.is_daemon(view) and view.subject_lower.startswith(_SUBJECTS)
    ):
        return None
    for starts, kind, reason in _SECTIONS:
        body = textbounce.section(view.text, starts, _ENDS)
        if body:
            break
    else:
        return None
    known = mime.addresses(failed_header)
    found = [_finding(address, lines, kind, reason) for address, lines in _blocks(body, known)]
    return found or None


def _blocks(body: str, known: list[str]) -> list[tuple[str, list[str]]]:
    """``(recipient, error lines)`` per two-space-indented address line."""
    blocks: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        match = _LINE_RE.match(line)
        if match:
            address = _resolve(match.group("bracketed") or match.group("token"), known)
            blocks.append((address, [match.group("rest") or ""]))
        elif blocks and line.startswith("   "):
            blocks[-1][1].append(line)
    return [(address, lines) for address, lines in blocks if address]


def _resolve(token: str, known: list[str]) -> str:
    """The printed address, or the ``X-Failed-Recipients`` one a bare local part names."""
    address = mime.clean_address(token)
    if address:
        return address
    local = token.strip("<>:").lower()
    for candidate in known:
        if candidate.lower().partition("@")[0] == local:
            return candidate
    return known[0] if len(known) == 1 else ""


def _finding(address: str, lines: list[str], kind: str, reason: str) -> Finding:
    error = textbounce.unfold(lines)
    origin = _GENERATED_RE.search(error)
    if origin:
        error = " ".join((error[: origin.start()] + error[origin.end():]).split())
    default = "4.0.0" if kind == "delay" else "5.0.0"
    if _EXPIRED_RE.match(error):
        default = _EXPIRED_STATUS
    return textbounce.failure(
        address, error, default, _response(error),
        kind=kind,
        remote_mta=textbounce.remote_host(error),
        original_recipient=mime.clean_address(origin.group(1)) if origin else "",
        reason=reason,
    )


def _response(error: str) -> str:
    """What the remote server answered, without Exim's preamble; ``""`` if it did not."""
    match = None
    for match in _SMTP_ERROR_RE.finditer(error):
        pass
    if match is None:
        return ""
    answer = error[match.end():]
    host = _HOST_PREFIX_RE.match(answer)
    return answer[host.end():].strip() if host else answer.strip()
