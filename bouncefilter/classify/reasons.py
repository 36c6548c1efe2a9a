"""The reason taxonomy: why a delivery failed, and whether the address is bad for good.

Reason names are sisimai's. Every parser hands its findings here; this module alone
decides the reason and the ``hard`` verdict, so the two stay consistent across formats.

Order of precedence, from what settles a reason best to what only suggests one:

1. the record's kind (complaint, auto-reply, challenge, success), then a vendor's code
   words the parser found (an SES bounce subtype, an Exchange MSEXCH code), looked up in
   the wording table;
2. a decisive RFC 3463 status (``X.2.2`` is a full mailbox whatever the words say);
3. the diagnostic's words (the table in :mod:`bouncefilter.classify.wording`), read in context:
   "user unknown" is trusted unless the refusal came once the message data was sent
   (the recipient had been accepted, so a filter speaks: filtered); a temporary status
   keeps it soft (see :func:`is_hard`); words about an address refused before any
   address was sent (at the greeting, EHLO or HELO) are about our client (blocked); an
   unknown domain under a temporary status is a DNS problem; an address refused at
   ``MAIL FROM`` is our sender being rejected;
4. the MTA's word that it gave up after its retries (expired);
5. the status code's general meaning, then the reply code's;
6. the SMTP command alone (refused at connection or greeting: blocked), a delay notice
   (expired), words that match nothing (onhold), nothing at all (undefined).
"""

from __future__ import annotations

from bouncefilter.classify import lazy, phrases
from bouncefilter.classify.dsntext import command_in
from bouncefilter.core.record import HARD_REASONS

#: Status details (``subject.detail``) whose meaning outranks any wording.
_DECISIVE_STATUS = {
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "3.4": "mesgtoobig",
    "7.13": "suspend",
    "7.17": "hasmoved",
    "7.18": "hasmoved",
    "7.25": "requireptr",
    "7.27": "rejected",
    "7.30": "failedstarttls",
}

#: RFC 3463 meanings, used when the text says nothing clearer. ``X.0.0``, ``X.5.0``
#: and ``X.3.0``/``4.4.0``-style "other" codes say too little to name a reason.
_STATUS_MEANING = {
    "1.0": "userunknown",
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.3": "userunknown",
    "1.4": "filtered",
    "1.9": "systemerror",
    "1.10": "notaccept",
    "2.0": "filtered",
    "2.1": "suspend",
    "2.4": "systemerror",
    "3.1": "systemfull",
    "3.2": "notaccept",
    "3.3": "systemerror",
    "3.5": "systemerror",
    "4.1": "expired",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",
    "4.5": "systemfull",
    "4.6": "networkerror",
    "4.7": "expired",
    "4.8": "networkerror",
    "5.2": "syntaxerror",
    "5.3": "toomanyconn",
    "5.4": "syntaxerror",
    "5.5": "systemerror",
    "5.6": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "6.6": "contenterror",
    "6.7": "contenterror",
    "6.8": "contenterror",
    "6.9": "contenterror",
    "7.0": "securityerror",
    "7.1": "securityerror",
    "7.2": "securityerror",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.10": "securityerror",
    "7.11": "securityerror",
    "7.12": "securityerror",
    "7.14": "securityerror",
    "7.15": "securityerror",
    "7.16": "mesgtoobig",
    "7.19": "securityerror",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.26": "authfailure",
    "7.28": "spamdetected",
    "7.29": "authfailure",
}
#: Temporary failures read differently: a disabled mailbox or a refused client.
_TEMPORARY_MEANING = {"2.1": "blocked", "7.1": "blocked", "7.0": "securityerror"}

#: SMTP reply codes that name a reason (RFC 5321, RFC 7504, RFC 3207, RFC 4954).
_REPLY_MEANING = {
    "521": "notaccept",
    "556": "notaccept",
    "525": "suspend",
    "551": "hasmoved",
    "523": "failedstarttls",
    "524": "failedstarttls",
    "530": "securityerror",
    "535": "securityerror",
    "538": "securityerror",
    "571": "blocked",
}
#: Replies about the dialogue itself: unknown command, bad argument, wrong order.
_SYNTAX_REPLIES = frozenset({*(f"50{n}" for n in range(8)), *(f"40{n}" for n in range(1, 8))})

#: Reasons a wording gives about the recipient's address; refused at ``MAIL FROM``
#: they are about our sender instead.
_ADDRESS_REASONS = frozenset({"userunknown", "hostunknown", "filtered", "suspend", "hasmoved", "notaccept"})

_REPLY_RE = lazy.regex(r"\b([245]\d\d)\b")
_WORDS_RE = lazy.regex(r"[a-z]{3,}")
_STATUS_RE = lazy.regex(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def decide(kind: str, status: str, diagnostic: str, code: str = "", command: str = "", expired: bool = False) -> str:
    """The reason for one record.

    ``status`` is the record's RFC 3463 code, ``diagnostic`` the remote's or the MTA's
    words, ``code`` a vendor's code words (``ses:mailboxfull``, looked up in the wording
    table before any text), ``command`` the SMTP command the error answered (``CONN``,
    ``EHLO``, ``HELO``, ``MAIL``, ``RCPT``, ``DATA``, ...), ``expired`` that the MTA
    gave up after its retries.
    """
    if kind == "complaint":
        return "feedback"
    if kind == "autoreply":
        return "vacation"
    if kind == "delivered":
        return "delivered"
    if kind == "challenge":
        return "challenge"
    coded = phrases.match(phrases.normalise(code)) if code else ""
    if coded:
        return coded
    detail = _detail(status)
    decisive = _DECISIVE_STATUS.get(detail)
    if decisive:
        return decisive
    text = " ".join(diagnostic.lower().split()) if diagnostic else ""
    command = command or command_in(text)
    found = phrases.match(phrases.normalise(text)) if text else ""
    if found:
        return _in_context(found, status, detail, command)
    if expired:
        return "expired"
    return _without_words(kind, status, detail, text, command)


def _in_context(found: str, status: str, detail: str, command: str) -> str:
    """A reason the words gave, corrected by what the status and the command add."""
    if command == "MAIL" and found in _ADDRESS_REASONS:
        return "rejected"
    if command in ("CONN", "EHLO", "HELO") and found in _ADDRESS_REASONS:
        # Refused before any address was sent (RFC 5321's order): about our client.
        return "blocked"
    if found == "userunknown" and command == "DATA" and not detail.startswith("1."):
        # Refused once the data was sent, the recipient had been accepted: the words
        # are a filter's, unless an addressing status (X.1.x) says otherwise.
        return "filtered"
    if found == "hostunknown" and status.startswith("4"):
        return "networkerror"
    return found


def _without_words(kind: str, status: str, detail: str, text: str, command: str) -> str:
    """The reason when no wording in the text names one."""
    meaning = (_TEMPORARY_MEANING.get(detail) if status.startswith("4") else None) or _STATUS_MEANING.get(detail)
    if meaning:
        return "rejected" if command == "MAIL" and meaning in _ADDRESS_REASONS else meaning
    reply = _REPLY_RE.search(text)
    code = reply.group(1) if reply else ""
    if code in _REPLY_MEANING:
        return _REPLY_MEANING[code]
    if command in ("CONN", "EHLO", "HELO"):
        return "blocked"
    if command == "MAIL":
        return "rejected"
    if code in _SYNTAX_REPLIES:
        return "syntaxerror"
    if kind == "delay" or status.startswith("4") and not _WORDS_RE.search(text):
        return "expired"
    return "onhold" if code or _STATUS_RE.search(text) else "undefined"


def _detail(status: str) -> str:
    """``5.1.1`` -> ``1.1``; ``""`` for an empty or malformed status."""
    head, sep, rest = status.partition(".")
    return rest if sep and head in ("2", "4", "5") else ""


def is_hard(reason: str, status: str) -> bool:
    """Whether the address is permanently bad: a hard reason with no temporary status."""
    return reason in HARD_REASONS and not status.startswith("4")
