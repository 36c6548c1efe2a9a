"""Sendmail's notices without a delivery-status part: Sendmail 5 and Sendmail 8 sent
without DSN, also when a person forwards one (quoted with ``> ``)::

       ----- The following addresses had permanent fatal errors -----
    <user@example.com>
        (reason: 550 5.1.1 <user@example.com>... User unknown)

       ----- Transcript of session follows -----
    ... while talking to mx.example.com.:
    >>> RCPT To:<user@example.com>
    <<< 550 5.1.1 <user@example.com>... User unknown
    550 5.1.1 <user@example.com>... User unknown

       ----- Unsent message follows -----

Sendmail 5 writes only the transcript. Each ``NNN <address>... error`` line there names
a recipient; the ``<<<`` replies of the session before it explain it. A transcript that
names no address at all (``421 example.com (smtp)... Deferred``) is about the one
recipient of the returned message.
"""

from __future__ import annotations

import re

from bouncefilter.classify import lazy, status, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import ANY_ADDRESS, DOTTED_ADDRESS, clean_address, find_addresses
from bouncefilter.core.record import Finding

_FATAL = "----- The following addresses had permanent fatal errors -----"
_TRANSCRIPT = "----- Transcript of session follows -----"
_ENDS = (
    "----- Unsent message follows -----",
    "----- Original message follows -----",
    "----- Message header follows -----",
    "----- Original message headers follow -----",
    "----- Returned message header follows -----",
)
_RCPT_LINE_RE = lazy.regex(
    rf"^(?P<code>[245]\d\d)[ -](?:[245]\.\d{{1,3}}\.\d{{1,3}} )?<?(?P<addr>{DOTTED_ADDRESS})>?\.\.\.[ \t]*(?P<rest>.*)$"
)
_HOST_LINE_RE = lazy.regex(r"^(?P<code>[245]\d\d) (?P<host>[^\s<>]{1,255}) \(\w{1,20}\)\.\.\.[ \t]*(?P<rest>.*)$")
_SESSION_RE = lazy.regex(r"^(?:\.\.\. )?while talking to ([^\s:]{1,255})\.?:", re.I)
_FATAL_LINE_RE = lazy.regex(rf"^[ \t]*<(?P<addr>{DOTTED_ADDRESS})>[ \t]*(?P<rest>.*)$")
_REASON_RE = lazy.regex(r"^\(?reason: ?(.*?)\)?$", re.I)
_EXPANDED_RE = lazy.regex(rf"^\(expanded from: ?<?({ANY_ADDRESS})>?\)$", re.I)
_TO_RE = lazy.regex(r"^To:[ \t]*(.{1,1000})$", re.M | re.I)
_QUOTE_RE = lazy.regex(r"^> ?", re.M)
_EXPIRED_RE = lazy.regex(r"cannot send message for \d{1,4} (?:days?|hours?)", re.I)


def parse(view: View) -> list[Finding] | None:
    """Findings for the recipients a Sendmail notice names; ``None`` if not one."""
    if "returned mail" not in view.subject_lower:
        return None
    text = view.text
    if _TRANSCRIPT not in text and _FATAL not in text:
        return None
    if f"> {_TRANSCRIPT}" in text or f">    {_FATAL}" in text:
        text = _QUOTE_RE.sub("", text)
    notice = textbounce.before_marker(text, _ENDS)
    expired = bool(_EXPIRED_RE.search(view.subject))
    found = _merge(_fatal(notice), _transcript(notice))
    if not found:
        found = _unnamed(notice, textbounce.after_marker(text, _ENDS))
    for finding in found:
        _complete(finding, expired)
    return found or None


def _fatal(notice: str) -> list[Finding]:
    """Findings from Sendmail 8's list of addresses with permanent fatal errors. A pipe
    or file that failed (``"|/usr/bin/procmail"``) stands for the address it was
    ``(expanded from: <address>)``; the command stays in the diagnostic."""
    listing = textbounce.section(notice, (_FATAL,), (_TRANSCRIPT,))
    found: list[Finding] = []
    for line in listing.splitlines():
        stripped = line.strip()
        match = _FATAL_LINE_RE.match(line)
        if match:
            found.append(Finding(recipient=clean_address(match.group("addr")), diagnostic=match.group("rest")))
            continue
        expanded = _EXPANDED_RE.match(stripped)
        reason = _REASON_RE.match(stripped)
        if expanded:
            if found and not found[-1].recipient:
                found[-1].recipient = clean_address(expanded.group(1))
        elif found and reason and stripped:
            found[-1].diagnostic = " ".join(f"{found[-1].diagnostic} {reason.group(1)}".split())
        elif stripped[:1] in ('"', "|", "/"):
            found.append(Finding(recipient="", diagnostic=stripped))
    return [finding for finding in found if finding.recipient]


def _transcript(notice: str) -> list[Finding]:
    """A finding per ``NNN <address>... error`` line, with its session's replies."""
    session: list[str] = []
    remote = ""
    found: list[Finding] = []
    for line in textbounce.after_marker(notice, (_TRANSCRIPT,)).splitlines():
        line = line.strip()
        talking = _SESSION_RE.match(line)
        if talking:
            session, remote = [], talking.group(1).rstrip(".").lower()
        elif line.startswith("<<<"):
            session.append(line[3:].strip())
        elif (match := _RCPT_LINE_RE.match(line)) is not None:
            error = match.group("rest")
            diagnostic = textbounce.unfold(session + [error] if error not in " ".join(session) else session)
            found.append(Finding(
                recipient=clean_address(match.group("addr")),
                replycode=status.find_replycode(diagnostic) or match.group("code"),
                diagnostic=diagnostic,
                remote_mta=remote,
            ))
            session, remote = [], ""
    return found


def _merge(fatal: list[Finding], transcript: list[Finding]) -> list[Finding]:
    """The fatal list, detailed by the transcript; transcript-only recipients after."""
    by_address: dict[str, Finding] = {}
    for finding in transcript:
        by_address.setdefault(finding.recipient.lower(), finding)
    merged: list[Finding] = []
    for finding in fatal:
        detail = by_address.pop(finding.recipient.lower(), None)
        if detail is not None:
            detail.diagnostic = detail.diagnostic or finding.diagnostic
            finding = detail
        merged.append(finding)
    merged.extend(by_address.values())
    seen: set[str] = set()
    out = []
    for finding in merged:
        if finding.recipient and finding.recipient.lower() not in seen:
            seen.add(finding.recipient.lower())
            out.append(finding)
    return out


def _unnamed(notice: str, returned: str) -> list[Finding]:
    """One finding for the returned message's recipient from the transcript's first
    host line, when no line names an address."""
    lines = [
        match for line in textbounce.after_marker(notice, (_TRANSCRIPT,)).splitlines()
        if (match := _HOST_LINE_RE.match(line.strip())) is not None
    ]
    to = _TO_RE.search(returned)
    recipients = find_addresses(to.group(1)) if to else []
    if not lines or len(recipients) != 1:
        return []
    first = lines[0]
    return [Finding(
        recipient=recipients[0],
        replycode=first.group("code"),
        diagnostic=" ".join(f"{first.group('code')} {first.group('rest')}".split()),
        remote_mta=first.group("host").lower(),
    )]


def _complete(finding: Finding, expired: bool) -> None:
    """Action and status: the code in the text, else the class of the reply code (a
    message that expired stays class 4: Sendmail still calls the condition temporary)."""
    finding.action = "failed"
    finding.expired = expired
    if expired or finding.replycode.startswith("4"):
        default = "4.0.0"
    else:
        default = "5.0.0"
    finding.status = textbounce.status_or(finding.diagnostic, default)
    if not finding.replycode:
        finding.replycode = status.find_replycode(finding.diagnostic)
