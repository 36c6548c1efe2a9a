"""The record types every part of bouncefilter shares.

A parser turns a message into :class:`Finding` objects (what the message says about one
recipient); :mod:`bouncefilter.classify` completes them into :class:`BounceRecord` objects
(adding the reason and the ``hard`` verdict, decided in one place by
:mod:`bouncefilter.reasons`). Everything here is pure data. The immutable types are named tuples rather than frozen
dataclasses: each frozen dataclass costs about a millisecond to create, paid by every
short-lived process (one pipe delivery imports these at start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

#: The header the milter adds to outbound mail; complaints and bounces that return the
#: original headers carry it back.
TRACKING_HEADER = "X-Bouncefilter-Token"

#: What a record is about. ``bounce``: delivery failed for good; ``delay``: still trying;
#: ``delivered``: a success DSN (delivered, relayed, expanded); ``complaint``: an ARF
#: report; ``autoreply``: an out-of-office or other RFC 3834 reply.
KINDS = ("bounce", "delay", "delivered", "complaint", "autoreply")


class Original(NamedTuple):
    """The identity of the message that bounced, as far as the bounce returns it."""

    message_id: str = ""
    subject: str = ""
    token: str = ""
    return_path: str = ""
    sender: str = ""
    to: str = ""
    sender_address: str = ""  # From: of the original, for complaints with no recipient


@dataclass(slots=True)
class Finding:
    """What one parser read about one recipient; mutable while the parser works.

    ``reason`` is a hint only a parser that knows its format better than the text rules
    should set; otherwise :mod:`bouncefilter.reasons` decides it from status and text.
    """

    recipient: str
    kind: str = "bounce"
    action: str = ""
    status: str = ""
    replycode: str = ""
    diagnostic: str = ""
    reporting_mta: str = ""
    remote_mta: str = ""
    original_recipient: str = ""
    reason: str = ""
    feedback_type: str = ""
    arrival_date: str = ""
    source_ip: str = ""
    extra: dict[str, str] = field(default_factory=dict)


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
        """The record as a plain dict; ``feedbacktype`` is the scoring interface's name."""
        data: dict[str, object] = self._asdict()
        data["feedbacktype"] = data["feedback_type"]
        return data


class Classification(NamedTuple):
    """The classifier's verdict on one message.

    ``outcome`` is ``bounce`` (records describe failures, delays or successes),
    ``complaint``, ``autoreply`` or ``unknown`` (not a bounce: no records).
    """

    outcome: str
    records: tuple[BounceRecord, ...]
    original: Original
    parser: str = ""
