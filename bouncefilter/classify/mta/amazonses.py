"""Amazon SES notifications sent as mail through Amazon SNS: JSON, no report part.

The body is a notification object (``notificationType`` or, from event publishing,
``eventType``: ``Bounce``, ``Complaint``, ``Delivery``, ``DeliveryDelay``), either bare
or as the ``Message`` string of an SNS envelope (``"Type": "Notification"``). Sendmail
may have split the long JSON line with ``!`` + newline + space; that is undone first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bouncefilter.classify import lazy, mime, status
from bouncefilter.classify.textbounce import finding
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import Finding

if TYPE_CHECKING:
    from typing import Any

_SPLIT_RE = lazy.regex(r"!\n ")
_DECODER = json.JSONDecoder()

def parse(view: View) -> list[Finding] | None:
    """Findings for an SES bounce, complaint, delivery or delay notification."""
    if not _is_sns_mail(view):
        return None
    note = _notification(view.text)
    if note is None:
        return None
    kind = str(note.get("notificationType") or note.get("eventType") or "").lower()
    reader = _READERS.get(kind)
    if reader is None:
        return None
    sender = str(_dict(note.get("mail")).get("source") or "")
    findings = reader(note)
    for item in findings:
        if sender:
            item.extra["sender"] = sender
    return findings or None


def _is_sns_mail(view: View) -> bool:
    """SNS's sender or subject, or a body that is a JSON object (cheap tests first)."""
    return (
        "amazonaws.com" in view.sender_lower
        or view.subject_lower == "aws notification message"
        or view.text[:200].lstrip()[:1] == "{" and bool(view.header("x-amz-sns-message-id"))
    )


def _notification(text: str) -> dict[str, Any] | None:
    """The SES notification object in ``text``, unwrapped from an SNS envelope."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = _DECODER.raw_decode(_SPLIT_RE.sub("", text[start:]))
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("Message"), str):
        try:
            obj = json.loads(obj["Message"])
        except ValueError:
            return None
    return obj if isinstance(obj, dict) else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _bounce(note: dict[str, Any]) -> list[Finding]:
    bounce = _dict(note.get("bounce"))
    transient = str(bounce.get("bounceType", "")).lower() == "transient"
    subtype = str(bounce.get("bounceSubType", "")).lower()
    code = f"ses:{subtype}" if subtype else ""
    mta = mime.mtaname(str(bounce.get("reportingMTA") or ""))
    out = []
    for rcpt in map(_dict, _list(bounce.get("bouncedRecipients"))):
        address = clean_address(str(rcpt.get("emailAddress") or ""))
        if not address:
            continue
        diagnostic = _strip_type(str(rcpt.get("diagnosticCode") or ""))
        code = status.normalize(str(rcpt.get("status") or "")) or status.find_status(diagnostic)
        out.append(finding(
            address, diagnostic, status=code or ("4.0.0" if transient else ""),
            action=str(rcpt.get("action") or "failed"), code=code,
            reporting_mta=mta, remote_mta=str(bounce.get("remoteMtaIp") or ""),
        ))
    return out


def _delay(note: dict[str, Any]) -> list[Finding]:
    delay = _dict(note.get("deliveryDelay"))
    mta = mime.mtaname(str(delay.get("reportingMTA") or ""))
    out = []
    for rcpt in map(_dict, _list(delay.get("delayedRecipients"))):
        address = clean_address(str(rcpt.get("emailAddress") or ""))
        if address:
            diagnostic = _strip_type(str(rcpt.get("diagnosticCode") or ""))
            out.append(finding(
                address, diagnostic, kind="delay", status=status.normalize(str(rcpt.get("status") or "")),
                action="delayed", reporting_mta=mta,
            ))
    return out


def _complaint(note: dict[str, Any]) -> list[Finding]:
    complaint = _dict(note.get("complaint"))
    # A feedback loop that names no type is still a "this is spam" report.
    feedback = str(complaint.get("complaintFeedbackType") or "abuse")
    arrival = str(complaint.get("arrivalDate") or complaint.get("timestamp") or "")
    out = []
    for rcpt in map(_dict, _list(complaint.get("complainedRecipients"))):
        address = clean_address(str(rcpt.get("emailAddress") or ""))
        if address:
            out.append(Finding(
                recipient=address, kind="complaint", feedback_type=feedback, arrival_date=arrival,
                diagnostic=str(complaint.get("userAgent") or ""),
            ))
    return out


def _delivery(note: dict[str, Any]) -> list[Finding]:
    delivery = _dict(note.get("delivery"))
    response = str(delivery.get("smtpResponse") or "")
    mta = mime.mtaname(str(delivery.get("reportingMTA") or ""))
    out = []
    for rcpt in _list(delivery.get("recipients")):
        address = clean_address(str(rcpt))
        if address:
            out.append(Finding(
                recipient=address, kind="delivered", action="delivered",
                status=status.find_status(response) or "2.0.0", diagnostic=response,
                reporting_mta=mta, remote_mta=str(delivery.get("remoteMtaIp") or ""),
            ))
    return out


def _strip_type(diagnostic: str) -> str:
    """``smtp; 550 5.1.1 ...`` -> ``550 5.1.1 ...``."""
    head, sep, rest = diagnostic.partition(";")
    return rest.strip() if sep and head.strip().lower() in ("smtp", "x-unix", "x-postfix") else diagnostic.strip()


_READERS = {
    "bounce": _bounce,
    "complaint": _complaint,
    "delivery": _delivery,
    "deliverydelay": _delay,
}
