"""Which sent message a received message is about: its VERP token, wherever it is.

The pipe's correlation, pure: the envelope recipient's token decides alone when there
is one (a made-up or mangled one there is forged, even if the body quotes a valid one);
otherwise the candidates in order of trust are the returned original's tracking header,
the records' tokens, the VERP addresses in Return-Path and X-Postfix-Sender, and the
DSN's ``Original-Envelope-Id``; the first valid or expired one wins, failing that the
first forged one. Time is an argument.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bouncefilter.core import verp

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
