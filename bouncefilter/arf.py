"""RFC 5965 abuse reports (ARF): spam complaints and authentication-failure reports.

A report is a ``multipart/report; report-type=feedback-report`` with a
``message/feedback-report`` part. The complained-about recipient is the report's
``Original-Rcpt-To`` (one record each); when a feedback loop redacts it, the returned
original's ``To:`` stands in.
"""

from __future__ import annotations

from email.message import Message

from bouncefilter import dsn, mime
from bouncefilter.record import Finding
from bouncefilter.view import View

REPORT_TYPE = "message/feedback-report"


def parse(view: View) -> list[Finding] | None:
    """One ``complaint`` finding per reported recipient; ``None`` if not a report."""
    parts = view.parts_of(REPORT_TYPE)
    if not parts:
        return None
    fields = _fields(parts[0])
    recipients = [
        addr for value in fields.get("original-rcpt-to", []) if (addr := mime.clean_address(value))
    ]
    if not recipients:
        recipients = _recipients_of_original(view)
    feedback_type = (fields.get("feedback-type", ["abuse"])[0] or "abuse").lower()
    return [
        Finding(
            recipient=recipient,
            kind="complaint",
            feedback_type=feedback_type,
            arrival_date=_first(fields, "arrival-date") or _first(fields, "received-date"),
            source_ip=_first(fields, "source-ip"),
            reporting_mta=mime.mtaname(_first(fields, "reporting-mta")),
            diagnostic=_first(fields, "user-agent"),
            extra={"sender": mime.clean_address(_first(fields, "original-mail-from"))},
        )
        for recipient in recipients or [""]
    ]


def _fields(part: Message) -> dict[str, list[str]]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        pairs = [(n.lower(), mime.decode_value(v)) for n, v in payload[0].raw_items()]
    else:
        pairs = [pair for block in dsn.parse_fields(mime.text(part)) for pair in block]
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _first(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _recipients_of_original(view: View) -> list[str]:
    original = view.returned
    if original is None:
        return []
    return mime.addresses(mime.header(original, "To"))[:1]
