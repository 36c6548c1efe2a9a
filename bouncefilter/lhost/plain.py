"""Small helpers the hosted-service and commercial-MTA formats share.

Their notices often state no RFC 3463 code at all; a record still needs the class of
the failure, so :func:`finding` gives such a record the generic ``5.0.0`` (or ``4.0.0``
for a delay), the code a DSN writes when it knows nothing more specific.
"""

from __future__ import annotations

from collections.abc import Iterable

from bouncefilter import mime, status
from bouncefilter.record import Finding


def generic_status(kind: str) -> str:
    """``4.0.0`` for a delay, ``5.0.0`` for a failure: the class without a detail."""
    return "4.0.0" if kind == "delay" else "5.0.0"


def finding(recipient: str, diagnostic: str, kind: str = "bounce", **fields: str) -> Finding:
    """A finding whose status is the one in ``fields``, else in the text, else generic."""
    code = fields.pop("status", "") or status.find_status(diagnostic) or generic_status(kind)
    return Finding(recipient=recipient, kind=kind, status=code, diagnostic=diagnostic, **fields)


def unfold(lines: Iterable[str]) -> str:
    """Lines joined into one, with runs of white space collapsed."""
    return " ".join(" ".join(lines).split())


def failed_recipients(value: str) -> list[str]:
    """The addresses of an ``X-Failed-Recipients:`` header value, in order."""
    return [addr for addr in (mime.clean_address(item) for item in value.split(",")) if addr]


def dedupe(findings: list[Finding]) -> list[Finding]:
    """``findings`` without repeats of an address (the first one stays)."""
    seen: set[str] = set()
    out = []
    for item in findings:
        key = item.recipient.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
