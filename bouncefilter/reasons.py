"""The reason taxonomy: why a delivery failed, and whether the address is bad for good.

Reason names are sisimai's. Every parser hands its findings here; this module alone
decides the reason (from the parser's hint, the diagnostic text and the RFC 3463
status) and the ``hard`` verdict, so the two stay consistent across formats.
"""

from __future__ import annotations

import re

from bouncefilter import phrases

#: Every reason a record can carry.
REASONS = frozenset(
    """userunknown hostunknown hasmoved notaccept mailboxfull suspend exceedlimit
    mesgtoobig expired systemerror networkerror mailererror filtered rejected blocked
    policyviolation norelaying authfailure requireptr badreputation spamdetected
    virusdetected contenterror notcompliantrfc syntaxerror securityerror toomanyconn
    speeding systemfull failedstarttls onhold undefined feedback vacation delivered""".split()
)

#: Reasons that mean the address itself is permanently bad.
HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})

#: RFC 3463 codes whose meaning settles the reason, whatever the text says.
_DECISIVE_STATUS = {
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.6": "hasmoved",
    "1.10": "notaccept",
    "2.2": "mailboxfull",
    "3.4": "mesgtoobig",
    "4.7": "expired",
    "7.25": "requireptr",
}

#: RFC 3463 codes that suggest a reason when the text says nothing clearer.
_STATUS_FALLBACK = {
    "1.0": "userunknown",
    "1.3": "userunknown",
    "1.4": "userunknown",
    "1.7": "rejected",
    "1.8": "rejected",
    "2.0": "mailboxfull",
    "2.1": "suspend",
    "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.0": "systemerror",
    "3.1": "systemfull",
    "3.2": "systemerror",
    "3.3": "systemerror",
    "3.5": "systemerror",
    "4.0": "networkerror",
    "4.1": "networkerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "networkerror",
    "4.5": "toomanyconn",
    "4.6": "networkerror",
    "5.0": "syntaxerror",
    "5.2": "syntaxerror",
    "5.3": "exceedlimit",
    "5.4": "syntaxerror",
    "5.5": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "7.0": "securityerror",
    "7.1": "rejected",
    "7.2": "systemerror",
    "7.3": "systemerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.8": "authfailure",
    "7.9": "securityerror",
    "7.10": "securityerror",
    "7.13": "suspend",
    "7.14": "securityerror",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.26": "authfailure",
    "7.27": "notaccept",
}

_SPACE_RE = re.compile(r"\s+")


def decide(kind: str, status: str, diagnostic: str, hint: str = "") -> str:
    """The reason for one record.

    Order: the record's kind (complaints, auto-replies, successes); a parser's hint;
    a decisive status code; the diagnostic text; the status code's general meaning;
    ``expired`` for a delay notice that says nothing more; else ``undefined``.
    """
    if kind == "complaint":
        return "feedback"
    if kind == "autoreply":
        return "vacation"
    if kind == "delivered":
        return "delivered"
    if hint in REASONS:
        return hint
    detail = status[2:] if len(status) > 2 else ""
    decisive = _DECISIVE_STATUS.get(detail)
    if decisive:
        return decisive
    found = phrases.match(_SPACE_RE.sub(" ", diagnostic.lower())) if diagnostic else ""
    if found:
        return found
    fallback = _STATUS_FALLBACK.get(detail)
    if fallback:
        return fallback
    return "undefined"


def is_hard(reason: str, status: str) -> bool:
    """Whether the address is permanently bad: a hard reason with no temporary status."""
    return reason in HARD_REASONS and not status.startswith("4")
