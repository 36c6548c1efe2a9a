"""Bounces of unknown make: a last, cautious try before calling a message unknown.

A message is considered only when all of these hold, so that a person's reply, a
newsletter or a notice from a postmaster is never taken for a bounce:

1. its subject is not a reply or forward (``Re:``, ``Fwd:``, ...);
2. its notification text (before any returned copy of the original, as
   :mod:`bouncefilter.classify.original` finds it) says that a
   message was not delivered: anywhere when it is sent by a mailer daemon or postmaster
   or its subject says delivery failed, else in its opening lines (a failure notice of
   unknown make, from an unknown sender, says so first);
3. an address in that text stands next to an error: a status or reply code, a phrase
   such as "user unknown" or "mailbox full", or any wording of the reason table
   (:mod:`bouncefilter.classify.wording`); the error may also come in the paragraph just before
   an address that stands alone.

Each such address (other than the bounce's own correspondents, senders and aliases the
text names, and role addresses such as postmaster) becomes a finding whose diagnostic
is the error text beside it; a notice that delivery is only delayed gives ``delay``
findings.
"""

from __future__ import annotations

import re

from bouncefilter.classify import mime, phrases, textbounce
from bouncefilter.classify.view import View
from bouncefilter.core.address import ADDRESS, ANY_ADDRESS, clean_address, find_addresses
from bouncefilter.core.record import Finding

#: Only this much of the notification is read: the failure is always stated up front.
MAX_TEXT = 32 * 1024
MAX_FINDINGS = 50
MAX_DIAGNOSTIC = 500
MAX_PARAGRAPHS = 200
#: How many paragraphs after an address may explain its failure.
_CONTEXT_PARAGRAPHS = 3
#: How much of a notification from an unknown sender must say it failed.
_OPENING = 600

_DAEMON_RE = re.compile(
    r"mailer[-_ ]?daemon|postmaster|mail ?delivery (?:sub)?system|mail delivery service"
    r"|mail administrator|double-bounce|mail transport system|internet mail delivery"
    r"|delivery status notification|mail system",
    re.I,
)
_FAILURE_SUBJECT_RE = re.compile(
    r"undeliver|delivery (?:status notification|failure|failed|notification|problem)"
    r"|(?:mail|message) delivery (?:failed|failure)|returned mail|failure notice"
    r"|non[- ]?deliver|could not be delivered|not delivered|bounced? (?:mail|message|notification)"
    r"|delivery has failed|mail system error|permanent error|unzustellbar|nicht zugestellt"
    r"|non remis|no entregado|non recapitabile|non consegnato|メールエラー|配信エラー|送信エラー|配信不能|不達",
    re.I,
)
_REPLY_PREFIX_RE = re.compile(r"^[ \t]{0,8}(?:re|aw|sv|vs|fw|fwd|wg|tr|rif|antw|odp|ynt)[ \t]{0,4}(?:\[\d{1,4}\])?[ \t]{0,4}:", re.I)
#: "The following recipients failed / did not receive / could not be reached": a list
#: of failed addresses follows.
_FOLLOWING_FAILED = r"(?:following|these) (?:recipients?|address(?:es)?)\b[^\n.]{0,40}(?:failed|could not|were not|was not|did not|cannot)"
#: A statement, anywhere in the notification, that a message was not delivered.
_UNDELIVERED_RE = re.compile(
    r"undeliver|could ?n[o']t be delivered|not (?:been )?delivered|delivery (?:has )?failed"
    r"|delivery failure|failed to deliver|unable to deliver|permanent(?:ly)? (?:error|fail)"
    r"|fatal error|returned to sender|was rejected|were rejected|has been rejected"
    r"|message (?:was )?(?:refused|bounced)|bounce notification|could not deliver"
    r"|error[^\n.]{0,40}deliver|has been delayed|delivery[^\n.]{0,40}delayed"
    r"|delivery errors?\b|returned mail|delivery to [^\n.]{0,60}(?:failed|was not|could not)"
    r"|" + _FOLLOWING_FAILED + r"|nicht zugestellt|unzustellbar|n'a pas pu (?:être|etre) (?:remis|distribu)|no se (?:ha )?pudo entregar",
    re.I,
)
_CODE_RE = re.compile(r"(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d])|(?<![\w.])[45][0-5]\d(?=[ -])")
#: A notice that delivery is only delayed and still being tried.
_DELAY_RE = re.compile(
    r"has been delayed|delivery[^\n.]{0,40}delayed|will be retried|will (?:keep|continue) trying"
    r"|warning message only|not yet been delivered",
    re.I,
)
#: An error next to an address: codes or the wording MTAs use for a failed recipient.
_ERROR_RE = re.compile(
    _CODE_RE.pattern + r"|user unknown|unknown (?:user|recipient|address|mailbox)|no such (?:user|mailbox|recipient|address)"
    r"|(?:does not|doesn'?t) exist|not found|mailbox (?:is )?(?:full|unavailable|disabled)"
    r"|over ?quota|quota exceeded|undeliverable|could ?n[o']t be delivered|delivery (?:has )?failed"
    r"|failed permanently|permanent (?:error|failure)|rejected|refused|disabled|suspended"
    r"|invalid (?:recipient|address|mailbox|user)|host unknown|unknown host|domain not found"
    r"|not accepting mail|timed out|expired|temporary failure|delayed|will be retried|not listed"
    r"|" + _FOLLOWING_FAILED,
    re.I,
)
_SENDER_RE = re.compile(
    r"\b(?:sent by|from|sender|generated from|expanded from)[\s:<\"'(]{1,8}"
    rf"({ADDRESS})",
    re.I,
)
#: A line holding nothing but an address, as plain-text bounces start a recipient's block.
_ADDRESS_LED_RE = re.compile(rf"[ \t]{{0,20}}<?{ANY_ADDRESS}>?:?[ \t]*(?:\n|$)")
#: Addresses that are not recipients, and local parts of role addresses (tried
#: without them when no other address is found: a bounce for postmaster@ exists).
Excluded = tuple[set[str], frozenset[str]]
_ROLE_LOCAL_PARTS = frozenset(
    "postmaster mailer-daemon mailer_daemon mailerdaemon abuse hostmaster root noreply "
    "no-reply donotreply do-not-reply double-bounce".split()
)


def parse(view: View) -> list[Finding] | None:
    """Findings for a bounce no specific parser recognised; ``None`` otherwise."""
    if _REPLY_PREFIX_RE.match(view.subject):
        return None
    text = view.notification[:MAX_TEXT]
    if is_delivery_report(view):
        if not (_UNDELIVERED_RE.search(text) or _UNDELIVERED_RE.search(view.subject)):
            return None
    elif not _UNDELIVERED_RE.search(text[:_OPENING]):
        return None
    others = _correspondents(view) | _senders(text)
    found = _findings(text, (others, _ROLE_LOCAL_PARTS)) or _findings(text, (others, frozenset()))
    if found and _DELAY_RE.search(text):
        for finding in found:
            finding.kind = "delay"
    return found or None


def is_delivery_report(view: View) -> bool:
    """Whether a message says it reports on a delivery: from a mailer daemon or a
    postmaster, or with a failure subject; never a reply or forward written by a person.
    """
    if _REPLY_PREFIX_RE.match(view.subject):
        return False
    return bool(_DAEMON_RE.search(view.sender) or _FAILURE_SUBJECT_RE.search(view.subject))


def _correspondents(view: View) -> set[str]:
    """Addresses that are not recipients: the bounce's correspondents, the original's."""
    values = [view.header(name) for name in ("From", "To", "Cc", "Reply-To", "Sender")]
    if view.returned is not None:
        values += [mime.header(view.returned, name) for name in ("From", "Return-Path", "Sender")]
    return {addr.lower() for value in values for addr in find_addresses(value)}


def _senders(text: str) -> set[str]:
    """Addresses the text introduces as a sender or an alias (``A message sent by <a@b>``,
    ``(ultimately generated from a@b)``, ``(expanded from <a@b>)``): not recipients."""
    return {clean_address(match.group(1)).lower() for match in _SENDER_RE.finditer(text)}


def _candidate(address: str, excluded: Excluded) -> bool:
    addresses, roles = excluded
    return address.lower() not in addresses and address.rpartition("@")[0].lower() not in roles


def _findings(text: str, excluded: Excluded) -> list[Finding]:
    """A finding per candidate address whose error text (its own lines, else its
    paragraph and the paragraphs explaining it) names an error.

    A block led by an address alone on its line (``<user@example.com>:``) counts
    without a known error phrase when another such block in the message has one.
    """
    paragraphs = _paragraphs(text)
    blocks: list[tuple[str, str, bool]] = []  # (address, diagnostic, names an error)
    for index, paragraph in enumerate(paragraphs):
        if "@" not in paragraph:
            continue
        for addresses, segment in _segments(paragraph, excluded):
            diagnostic = segment
            if not _names_error(segment, addresses):
                diagnostic = _context(paragraphs, index, addresses, excluded)
            diagnostic = " ".join(diagnostic.split())[:MAX_DIAGNOSTIC]
            named = _names_error(diagnostic, addresses)
            if named or (_ADDRESS_LED_RE.match(segment) and "\n" in segment):
                blocks.extend((address, diagnostic, named) for address in addresses)
        if len(blocks) >= MAX_FINDINGS:
            break
    if not any(named for _, _, named in blocks):
        return []
    return textbounce.findings((address, diagnostic) for address, diagnostic, _ in blocks)[:MAX_FINDINGS]


def _segments(paragraph: str, excluded: Excluded) -> list[tuple[list[str], str]]:
    """The paragraph cut before each line that names a new candidate address:
    ``(addresses, text)`` pairs, the text starting with the address line."""
    segments: list[tuple[list[str], list[str]]] = []
    for line in paragraph.splitlines():
        addresses = [a for a in find_addresses(line) if _candidate(a, excluded)] if "@" in line else []
        new = [a for a in addresses if not segments or a not in segments[-1][0]]
        if new:
            segments.append((new, [line]))
        elif segments:
            segments[-1][1].append(line)
    return [(addresses, "\n".join(lines)) for addresses, lines in segments]


def _context(paragraphs: list[str], index: int, addresses: list[str], excluded: Excluded) -> str:
    """Paragraph ``index`` and the ones after it that explain the failure of
    ``addresses``: up to the first with a status or reply code, else the first naming
    an error, never past a paragraph naming another candidate address. A paragraph
    just before that introduces the list (it ends with a colon) comes first."""
    picked = [paragraphs[index]]
    previous = paragraphs[index - 1] if index else ""
    if previous.rstrip().endswith(":"):
        picked.insert(0, previous)
    elif _ADDRESS_LED_RE.fullmatch(paragraphs[index] + "\n") and "@" not in previous and _ERROR_RE.search(previous):
        # The error stated first, then the address alone: "The account is over quota.
        # <a@example.com>"; the paragraph ends where the address starts.
        return previous + "\n" + paragraphs[index]
    base = len(picked)
    first_error = base if _ERROR_RE.search(paragraphs[index]) else 0
    for paragraph in paragraphs[index + 1 : index + 1 + _CONTEXT_PARAGRAPHS]:
        if "@" in paragraph and any(
            _candidate(a, excluded) and a not in addresses for a in find_addresses(paragraph)
        ):
            break
        picked.append(paragraph)
        if _CODE_RE.search(paragraph):
            return "\n".join(picked)
        if not first_error and _ERROR_RE.search(paragraph):
            first_error = len(picked)
    return "\n".join(picked[: first_error or base])


def _names_error(text: str, addresses: list[str]) -> bool:
    """Whether ``text`` names an error once the addresses themselves are taken out: the
    cues above, or a wording of the reason table."""
    for address in addresses:
        text = text.replace(address, " ")
    return bool(_ERROR_RE.search(text)) or bool(phrases.match(phrases.normalise(text)))


def _paragraphs(text: str) -> list[str]:
    """Blocks of non-blank lines, at most :data:`MAX_PARAGRAPHS`."""
    out: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            out.append("\n".join(current))
            current = []
            if len(out) >= MAX_PARAGRAPHS:
                return out
    if current:
        out.append("\n".join(current))
    return out
