"""The record types every part of bouncefilter shares.

A parser turns a message into :class:`Finding` objects (what the message says about one
recipient); :mod:`bouncefilter.classify.pipeline` completes them into :class:`BounceRecord` objects
(adding the reason and the ``hard`` verdict, decided in one place by
:mod:`bouncefilter.classify.reasons`). Everything here is pure data. The immutable types are named tuples rather than frozen
dataclasses: importing ``dataclasses`` and creating each frozen dataclass cost
milliseconds, paid by every short-lived process (one pipe delivery imports these at
start).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

#: Reasons that mean the address itself is permanently bad (a 4.x status never is).
HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved", "notaccept"})

#: The header the milter adds to outbound mail; complaints and bounces that return the
#: original headers carry it back.
TRACKING_HEADER = "X-Bouncefilter-Token"



class Kind(StrEnum):
    """What a record is about (its members are the strings the store and the API carry)."""

    BOUNCE = "bounce"  # delivery failed for good
    DELAY = "delay"  # the MTA is still trying
    DELIVERED = "delivered"  # a success DSN: delivered, relayed, expanded
    COMPLAINT = "complaint"  # an ARF report (RFC 5965)
    AUTOREPLY = "autoreply"  # an out-of-office or other RFC 3834 reply
    CHALLENGE = "challenge"  # a challenge/response request: prove a person sent it


#: Every kind, as the strings they are (a record's ``kind`` is one of these, or ``""``).
KINDS = frozenset(Kind)
#: The kinds whose record is about one recipient of the sent message and counts against it
#: (an auto-reply's or a challenge's address is whoever answered, and counts for nothing).
NAMED = frozenset({Kind.BOUNCE, Kind.DELAY, Kind.DELIVERED, Kind.COMPLAINT})


class Outcome(StrEnum):
    """What a stored row is, once the pipe has weighed its token: its record's kind when a
    valid token ties it to a sent message (and, for the kinds that name a recipient, the
    message was sent to that address), or one of the outcomes below. Only the kinds and
    ``reply`` (with a valid token) count; the rest are kept for the record."""

    BOUNCE = Kind.BOUNCE.value
    DELAY = Kind.DELAY.value
    DELIVERED = Kind.DELIVERED.value
    COMPLAINT = Kind.COMPLAINT.value
    AUTOREPLY = Kind.AUTOREPLY.value
    CHALLENGE = Kind.CHALLENGE.value
    REPLY = "reply"  # a valid token, but no parser claims the message: a person answering
    FORGED = "forged"  # the token's MAC is wrong, or it is no token of ours at all
    EXPIRED = "expired"  # a valid MAC, older than verp.max_age_days
    NOTOKEN = "notoken"  # a bounce, complaint or auto-reply that names no token anywhere
    UNKNOWN = "unknown"  # neither a token nor anything a parser claims, or a classifier failure
    STRANGER = "stranger"  # a valid token, about an address the message was not sent to

#: Outcomes no recipient is ever judged by, in the order reports list them.
UNTRUSTED = (Outcome.FORGED, Outcome.EXPIRED, Outcome.NOTOKEN, Outcome.STRANGER, Outcome.UNKNOWN)
#: Outcomes never forwarded: no verified token ties them to an account, or the token's
#: message was not sent to the address they name.
NEVER_FORWARDED = frozenset({Outcome.FORGED, Outcome.EXPIRED, Outcome.NOTOKEN, Outcome.STRANGER})


class Original(NamedTuple):
    """The identity of the message that bounced, as far as the bounce returns it."""

    message_id: str = ""
    subject: str = ""
    token: str = ""
    return_path: str = ""
    sender: str = ""
    to: str = ""


class Finding:
    """What one parser read about one recipient; mutable while the parser works.

    A parser reports what the message says, never a reason: ``code`` holds a vendor's
    code words the text rules cannot read in the diagnostic (an SES bounce subtype, an
    Exchange MSEXCH code, a spam-filter header: written ``vendor:word``, looked up in
    :mod:`bouncefilter.classify.wording`), ``expired`` that the MTA gave up after its retries
    (delivery time expired); :mod:`bouncefilter.classify.reasons` decides from those, the status,
    the SMTP command and the words.
    (A plain class with slots, not a dataclass: the dataclasses module and each class it
    makes cost milliseconds at import, in every pipe process.)
    """

    __slots__ = ("recipient", "kind", "action", "status", "replycode", "diagnostic", "reporting_mta", "remote_mta",
                 "original_recipient", "code", "expired", "feedback_type", "arrival_date", "source_ip", "extra")

    def __init__(self, recipient: str, kind: str = "bounce", action: str = "", status: str = "", replycode: str = "",
                 diagnostic: str = "", reporting_mta: str = "", remote_mta: str = "", original_recipient: str = "",
                 code: str = "", expired: bool = False, feedback_type: str = "", arrival_date: str = "", source_ip: str = "",
                 extra: dict[str, str] | None = None) -> None:
        self.recipient = recipient
        self.kind = kind
        self.action = action
        self.status = status
        self.replycode = replycode
        self.diagnostic = diagnostic
        self.reporting_mta = reporting_mta
        self.remote_mta = remote_mta
        self.original_recipient = original_recipient
        self.code = code
        self.expired = expired
        self.feedback_type = feedback_type
        self.arrival_date = arrival_date
        self.source_ip = source_ip
        self.extra: dict[str, str] = {} if extra is None else extra

    def __repr__(self) -> str:
        return f"Finding({', '.join(f'{name}={getattr(self, name)!r}' for name in self.__slots__)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable


class BounceRecord(NamedTuple):
    """One recipient event, complete: the unit the store, the API and forwarding use."""

    recipient: str
    kind: str
    reason: str
    hard: bool
    status: str = ""
    replycode: str = ""
    action: str = ""
    diagnostic: str = ""
    reporting_mta: str = ""
    remote_mta: str = ""
    original_recipient: str = ""
    feedback_type: str = ""
    arrival_date: str = ""
    source_ip: str = ""
    original_message_id: str = ""
    subject: str = ""
    token: str = ""
    return_path: str = ""
    envelope_sender: str = ""
    parser: str = ""

    def to_dict(self) -> dict[str, object]:
        """The record as a plain dict of its fields."""
        return dict(self._asdict())


class Classification(NamedTuple):
    """The classifier's verdict on one message.

    ``outcome`` is ``bounce`` (records describe failures, delays or successes),
    ``complaint``, ``autoreply``, ``challenge`` or ``unknown`` (not a bounce: no records).
    """

    outcome: str
    records: tuple[BounceRecord, ...]
    original: Original
    parser: str = ""


class SentMessage(NamedTuple):
    """One outbound message as the milter records it."""

    message_key: str
    token: str
    account: str
    sent_at: float
    queue_id: str = ""
    message_id: str = ""
    subject: str = ""
    sender: str = ""
    bounce_address: str = ""
    recipients: tuple[str, ...] = ()
