"""The reasons a record can carry, as a StrEnum: sisimai's names, which most bounce tools
share. :mod:`bouncefilter.classify.reasons` decides which one a record gets; the API
checks a ``reason`` filter against them. (A module of its own, off the pipe's path: the
pipe stores the decided reason as the string it is, and creating this enum would cost
each pipe process most of a millisecond.)
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why delivery failed (or what the record is, for the kinds that are no failure):
    sisimai's reason names, which most bounce tools share."""

    USERUNKNOWN = "userunknown"
    HOSTUNKNOWN = "hostunknown"
    HASMOVED = "hasmoved"
    NOTACCEPT = "notaccept"
    MAILBOXFULL = "mailboxfull"
    SUSPEND = "suspend"
    EXCEEDLIMIT = "exceedlimit"
    MESGTOOBIG = "mesgtoobig"
    EXPIRED = "expired"
    SYSTEMERROR = "systemerror"
    NETWORKERROR = "networkerror"
    MAILERERROR = "mailererror"
    FILTERED = "filtered"
    REJECTED = "rejected"
    BLOCKED = "blocked"
    POLICYVIOLATION = "policyviolation"
    NORELAYING = "norelaying"
    AUTHFAILURE = "authfailure"
    REQUIREPTR = "requireptr"
    BADREPUTATION = "badreputation"
    SPAMDETECTED = "spamdetected"
    VIRUSDETECTED = "virusdetected"
    CONTENTERROR = "contenterror"
    NOTCOMPLIANTRFC = "notcompliantrfc"
    SYNTAXERROR = "syntaxerror"
    SECURITYERROR = "securityerror"
    TOOMANYCONN = "toomanyconn"
    SPEEDING = "speeding"
    SYSTEMFULL = "systemfull"
    FAILEDSTARTTLS = "failedstarttls"
    ONHOLD = "onhold"
    UNDEFINED = "undefined"
    FEEDBACK = "feedback"  # a complaint
    VACATION = "vacation"  # an auto-reply
    DELIVERED = "delivered"  # a success DSN
    CHALLENGE = "challenge"  # a challenge/response request
