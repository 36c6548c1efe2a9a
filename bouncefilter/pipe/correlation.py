"""Which sent message a received message is about (its VERP token, wherever it is), and
what each of its records may then count as.

The pipe's correlation, pure: the envelope recipient's token decides alone when there
is one (a made-up or mangled one there is forged, even if the body quotes a valid one);
otherwise the candidates in order of trust are the returned original's tracking header,
the records' tokens, the VERP addresses in Return-Path and X-Postfix-Sender, and the
DSN's ``Original-Envelope-Id``; the first valid or expired one wins, failing that the
first forged one. Time is an argument.

A valid token proves which message a bounce is about, not that the address it names was
one of that message's recipients: anyone who received one tracked message could report
any address at all against its token. So a record that names a recipient
(:data:`NAMED`) counts only when the message was sent to that address
(:func:`outcome`); any other is a ``stranger``, kept for the record and never counted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bouncefilter.core import verp
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import KINDS, NAMED, Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from bouncefilter.core.record import Classification

_ENVID_RE = re.compile(rb"^original-envelope-id:[ \t]*<?([a-z2-7]{31})\b", re.I | re.M)


def verdict(recipient: str, classification: Classification, raw: bytes, prefix: str, domain: str,
            keys: Sequence[bytes], today: date, max_age_days: int) -> verp.Verdict | None:
    """What the message's token says, or ``None`` when it names no token at all.

    A token in the envelope recipient decides alone (a made-up or mangled one there is
    forged even if the body quotes a valid one). Otherwise the first valid or expired
    token among the other places wins; failing that, the first one found is forged.
    """
    ttl = max_age_days
    if domain and "@" not in recipient.strip("<> "):
        recipient = f"{recipient.strip('<> ')}@{domain}"  # Sendmail may pass the local part only
    envelope = verp.token_of(recipient, prefix, domain) if domain else ""
    if envelope:
        return verp.verify(envelope, keys, today, ttl)
    first: verp.Verdict | None = None
    for token in _tokens(classification, raw, prefix, domain):
        found = verp.verify(token, keys, today, ttl)
        if found.status != verp.FORGED:
            return found
        first = first or found
    return first


def _tokens(classification: Classification, raw: bytes, prefix: str, domain: str) -> list[str]:
    """Candidate tokens outside the envelope, in order of trust, without repeats."""
    found = [classification.original.token]
    addresses = [classification.original.return_path]
    for record in classification.records:
        found.append(record.token)
        addresses += [record.return_path, record.envelope_sender]
    if domain:
        found += [verp.token_of(address, prefix, domain) for address in addresses if address]
    found += [match.decode("ascii").lower() for match in _ENVID_RE.findall(raw[: 1 << 20])]
    seen: list[str] = []
    for token in found:
        token = token.strip().lower()
        if token and token not in seen:
            seen.append(token)
    return seen




def outcome(kind: str, parser: str, status: str, recipient: str, original_recipient: str,
            sent_to: frozenset[str] | None) -> str:
    """A record's outcome, given its kind (``""`` when no parser claimed the message), the
    token's verdict status (``""`` for no token) and ``sent_to``, the recipients of the
    message the token names as :func:`addressees` gives them (``None`` when the store has
    no row for it).

    With a valid token a record is its kind, except that a record naming a recipient
    (:data:`NAMED`) of a known message is a ``stranger`` unless that message was sent to
    the address, or to its Original-Recipient (RFC 3464 2.3.1: the address before an
    alias or forward changed it). A message no parser claims is a person's ``reply`` (or
    ``unknown`` when the classifier failed on it). Without a valid token the status is the
    outcome (``forged``, ``expired``), or ``notoken`` / ``unknown`` with none at all.
    """
    if status == verp.VALID:
        if kind not in KINDS:
            return Outcome.UNKNOWN if parser == "error" else Outcome.REPLY
        if kind in NAMED and recipient and sent_to is not None and not sent_to_either(
                recipient, original_recipient, sent_to):
            return Outcome.STRANGER
        return kind
    if status:
        return status
    return Outcome.NOTOKEN if kind else Outcome.UNKNOWN


def addressees(recipients: Sequence[str]) -> frozenset[str]:
    """A sent message's recipients as :func:`outcome` compares them. Addresses compare
    without regard to case: the domain is case-insensitive, and the local part, which
    RFC 5321 leaves to the receiving system, is folded by nearly every one, and by many
    bounces as they quote it."""
    return frozenset(address.lower() for address in recipients)


def sent_to_either(recipient: str, original_recipient: str, sent_to: frozenset[str]) -> bool:
    """Whether ``recipient`` or ``original_recipient`` (``rfc822;addr`` or bare) is one
    of ``sent_to`` (:func:`addressees`)."""
    candidates = (recipient, clean_address(original_recipient) if original_recipient else "")
    return any(candidate and candidate.lower() in sent_to for candidate in candidates)
