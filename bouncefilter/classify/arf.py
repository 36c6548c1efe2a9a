"""RFC 5965 abuse reports (ARF): spam complaints and authentication-failure reports.

A report is a ``multipart/report; report-type=feedback-report`` with a
``message/feedback-report`` part. Microsoft's older junk-mail reports (JMRP) carry no
report part: they attach the original, which names the complaining recipient in
``X-HmXmrOriginalRecipient``; they are read here too.

The complained-about recipient, in order of trust: every ``Original-Rcpt-To`` of the
report (one record each), a ``Removal-Recipient`` (opt-out reports), the JMRP header,
then the returned original's ``To:``. When a feedback loop redacts all of these the
record keeps an empty recipient: the original's tracking token still identifies it.
"""

from __future__ import annotations

from bouncefilter.classify import dsn, mime
from bouncefilter.classify.mime import Part
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address, find_addresses
from bouncefilter.core.record import Finding

REPORT_TYPE = "message/feedback-report"
#: The header Microsoft's junk-mail reports add to the returned original.
JMRP_HEADER = "X-HmXmrOriginalRecipient"
_RECIPIENT_FIELDS = ("original-rcpt-to", "removal-recipient")

Fields = dict[str, list[str]]


def parse(view: View) -> list[Finding] | None:
    """One ``complaint`` finding per reported recipient; ``None`` if not a report."""
    part = _report_part(view)
    if part is not None:
        return _findings(_fields(part), view)
    if view.msg.children is not None and view.returned is not None:
        jmrp = clean_address(mime.header(view.returned, JMRP_HEADER))
        if jmrp:
            return [Finding(recipient=jmrp, kind="complaint", feedback_type="abuse")]
    return None


def _report_part(view: View) -> Part | None:
    """The feedback-report part, also when a report mislabels it as ``text/plain``."""
    parts = view.parts_of(REPORT_TYPE)
    if parts:
        return parts[0]
    if view.content_type != "multipart/report" or "feedback-report" not in view.header("Content-Type").lower():
        return None
    children = view.msg.children
    return children[1] if children is not None and len(children) > 1 else None


def _findings(fields: Fields, view: View) -> list[Finding]:
    recipients = _recipients(fields) or _recipients_of_original(view)
    feedback_type = (_first(fields, "feedback-type") or "abuse").lower()
    return [
        Finding(
            recipient=recipient,
            kind="complaint",
            feedback_type=feedback_type,
            arrival_date=_first(fields, "arrival-date") or _first(fields, "received-date"),
            source_ip=_first(fields, "source-ip"),
            reporting_mta=mime.mtaname(_first(fields, "reporting-mta")),
            diagnostic=_first(fields, "user-agent"),
            extra={"sender": clean_address(_first(fields, "original-mail-from"))},
        )
        for recipient in recipients or [""]
    ]


def _fields(part: Part) -> Fields:
    """The report's fields by lower-case name, every value kept in order."""
    if part.children:
        pairs = [(n.lower(), mime.decode_value(v)) for block in part.children for n, v in block.headers]
    else:
        pairs = [pair for block in dsn.parse_fields(mime.text(part)) for pair in block]
    out: Fields = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _first(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _recipients(fields: Fields) -> list[str]:
    """Addresses the report names itself, without duplicates, in order."""
    for name in _RECIPIENT_FIELDS:
        found: dict[str, str] = {}
        for value in fields.get(name, []):
            address = clean_address(value)
            if address:
                found.setdefault(address.lower(), address)
        if found:
            return list(found.values())
    return []


def _recipients_of_original(view: View) -> list[str]:
    """The returned original's JMRP header or first ``To:`` address; ``[]`` if redacted."""
    original = view.returned
    if original is None:
        return []
    for name in (JMRP_HEADER, "To"):
        found = find_addresses(mime.header(original, name))
        if found:
            return found[:1]
    return []
