"""How MTAs word each failure: the text rules behind :func:`bouncefilter.reasons.decide`.

One ordered table. Reasons are tried top to bottom and the first whose phrases occur in
the (lower-cased, whitespace-collapsed) diagnostic wins, so more specific reasons come
before broader ones. Phrases are regular expressions kept linear: literal words,
character classes and bounded gaps (``.{0,40}``), never nested quantifiers.
"""

from __future__ import annotations

import re

_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("feedback", ()),
    ("virusdetected", (
        r"virus", r"malware", r"infected", r"banned attachment",
    )),
    ("spamdetected", (
        r"spam", r"\bubec?\b", r"junk mail", r"bulk mail", r"message content rejected",
    )),
    ("requireptr", (
        r"reverse dns", r"reverse lookup", r"\bptr\b", r"rdns", r"cannot find your hostname",
        r"cannot resolve your address", r"client host name unknown", r"no ptr",
    )),
    ("authfailure", (
        r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework",
    )),
    ("norelaying", (
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)",
        r"not permitted to relay", r"unable to relay", r"relay not permitted",
        r"we do not relay", r"not allowed to relay", r"no relaying",
    )),
    ("hasmoved", (
        r"has moved", r"address changed", r"user has changed",
    )),
    ("mesgtoobig", (
        r"message (?:size )?exceeds", r"message too (?:big|large)", r"too big",
        r"size limit", r"exceeds? (?:the )?(?:maximum|size)", r"message is too large",
    )),
    ("mailboxfull", (
        r"mailbox (?:is )?full", r"over ?quota", r"quota exceeded", r"exceeded storage",
        r"mailbox full", r"insufficient (?:disk )?space", r"disk quota", r"full mailbox",
        r"mailbox size limit", r"exceeds? (?:his|her|its|the user'?s?) (?:mailbox )?quota",
        r"user'?s? mailbox is full", r"storage (?:quota|allocation)", r"too much mail",
    )),
    ("suspend", (
        r"disabled", r"suspended", r"inactive", r"deactivated", r"not active",
        r"account (?:is )?locked", r"expired account", r"account expired",
        r"mailbox (?:is )?(?:currently )?unavailable",
    )),
    ("hostunknown", (
        r"host (?:or domain name )?not found", r"unknown host", r"host unknown",
        r"domain (?:name )?not found", r"no such domain", r"unrouteable",
        r"unroutable", r"name service error", r"domain does not exist",
        r"unknown domain", r"nxdomain", r"no mx", r"domain not found",
        r"illegal host/domain", r"host not found",
    )),
    ("userunknown", (
        r"user unknown", r"unknown user", r"no such (?:user|mailbox|recipient|person|address)",
        r"(?:user|mailbox|recipient|address|account) (?:does not|doesn'?t) exist",
        r"(?:user|mailbox|recipient|address|account) (?:is )?unknown",
        r"invalid (?:recipient|mailbox|address|user)", r"unknown (?:recipient|mailbox|address|local part)",
        r"recipient (?:address )?rejected", r"not a valid (?:user|mailbox|recipient)",
        r"user not found", r"mailbox not found", r"recipient not found",
        r"address (?:not|non) ?existent", r"non-?existent", r"no mailbox",
        r"not our customer", r"unknown or illegal alias", r"bad destination mailbox",
        r"no account", r"user doesn'?t have", r"unrouteable address",
        r"mailbox unavailable", r"is not a known user", r"not listed in",
        r"unknown local part", r"verify failed", r"undeliverable address",
    )),
    ("notaccept", (
        r"does not accept mail", r"null mx", r"not accepting mail", r"accepts no mail",
    )),
    ("expired", (
        r"delivery time expired", r"retry time(?:out)? (?:exceeded|expired)",
        r"message expired", r"queue time", r"too long in queue", r"gave up",
        r"could not be delivered within", r"was not delivered within",
        r"delivery expired", r"have been failing for", r"retry timeout",
    )),
    ("toomanyconn", (
        r"too many (?:connections|sessions|concurrent)", r"connection limit",
    )),
    ("speeding", (
        r"rate limit", r"too many (?:messages|emails|recipients)", r"sending rate",
        r"receiving mail at a rate",
    )),
    ("badreputation", (
        r"reputation", r"sender score",
    )),
    ("blocked", (
        r"blacklist", r"blocklist", r"block ?list", r"black list", r"\brbl\b",
        r"dnsbl", r"spamhaus", r"spamcop", r"blocked", r"client host .{0,80} rejected",
        r"access denied", r"connection refused", r"not allowed to send",
        r"ip .{0,40} (?:is )?(?:listed|rejected|banned)", r"banned",
    )),
    ("policyviolation", (
        r"policy", r"prohibited", r"not permitted",
    )),
    ("rejected", (
        r"sender (?:address )?rejected", r"domain of sender", r"sender verify",
        r"sender denied", r"mail from .{0,60} rejected", r"envelope sender",
        r"address rejected",
    )),
    ("filtered", (
        r"filtered", r"content filter", r"delivery not authorized", r"refused",
        r"rejected by", r"not authorized",
    )),
    ("securityerror", (
        r"authentication required", r"tls", r"encryption", r"certificate",
        r"must issue a starttls",
    )),
    ("syntaxerror", (
        r"syntax error", r"command unrecognized", r"bad sequence", r"unrecognized command",
    )),
    ("contenterror", (
        r"content", r"header", r"mime",
    )),
    ("systemfull", (
        r"system full", r"disk full", r"out of (?:disk )?space",
    )),
    ("mailererror", (
        r"mailer error", r"command (?:died|failed|output)", r"procmail", r"exit code",
        r"x-unix", r"pipe to",
    )),
    ("networkerror", (
        r"network", r"connection (?:timed out|reset|closed|refused)", r"timed out",
        r"mail loop", r"routing loop", r"loops? back", r"too many hops", r"dns",
        r"no route",
    )),
    ("systemerror", (
        r"system error", r"internal error", r"server error", r"temporary failure",
        r"local error", r"try again later",
    )),
)

_COMPILED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile("|".join(patterns))) for reason, patterns in _TABLE if patterns
)


def match(text: str) -> str:
    """The first reason whose phrases occur in ``text`` (lower case), or ``""``."""
    for reason, pattern in _COMPILED:
        if pattern.search(text):
            return reason
    return ""
