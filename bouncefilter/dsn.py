"""RFC 3464 delivery status notifications (and RFC 6533 global ones).

Reads every ``message/delivery-status`` or ``message/global-delivery-status`` part: the
per-message fields, then one :class:`~bouncefilter.record.Finding` per recipient block.
A DSN whose report part is mislabelled (``text/plain`` holding ``Final-Recipient:``
fields) is read the same way.
"""

from __future__ import annotations

import re
from email.message import Message

from bouncefilter import mime, status
from bouncefilter.record import Finding
from bouncefilter.view import View

REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")

_KIND_BY_ACTION = {
    "failed": "bounce",
    "delayed": "delay",
    "delivered": "delivered",
    "relayed": "delivered",
    "expanded": "delivered",
}
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")
_FIELD_LINE_RE = re.compile(r"^(final-recipient|original-recipient|action|status|diagnostic-code)\s*:", re.I | re.M)

Fields = list[tuple[str, str]]


def parse(view: View) -> list[Finding] | None:
    """Findings for every recipient block of every report part; ``None`` if not a DSN."""
    blocks = _report_blocks(view)
    if blocks is None:
        return None
    return findings_from_blocks(blocks)


def findings_from_blocks(blocks: list[Fields]) -> list[Finding]:
    """Findings from parsed field blocks: per-message fields first, then recipients."""
    per_message: dict[str, str] = {}
    findings: list[Finding] = []
    for block in blocks:
        for fields in _split_recipients(block):
            names = {name for name, _ in fields}
            if names.isdisjoint(_RECIPIENT_FIELDS):
                per_message.update((name, value) for name, value in fields if name not in per_message)
                continue
            finding = _finding(dict(_first_values(fields)), per_message)
            if finding is not None:
                findings.append(finding)
    return findings


def _report_blocks(view: View) -> list[Fields] | None:
    parts = view.parts_of(*REPORT_TYPES)
    if parts:
        blocks: list[Fields] = []
        for part in parts:
            blocks.extend(_blocks_of_part(part))
        return blocks
    text = view.text
    if "final-recipient" in text.lower() and _FIELD_LINE_RE.search(text):
        return parse_fields(text[_FIELD_LINE_RE.search(text).start() - _per_message_lead(text):])
    return None


def _per_message_lead(text: str) -> int:
    """How far before the first recipient field a ``Reporting-MTA:`` block starts."""
    first = _FIELD_LINE_RE.search(text)
    assert first is not None
    before = text[: first.start()]
    index = before.lower().rfind("reporting-mta:")
    return first.start() - index if index >= 0 else 0


def _blocks_of_part(part: Message) -> list[Fields]:
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses message/delivery-status into one Message per block.
        blocks = [
            [(name.lower(), mime.decode_value(value)) for name, value in block.raw_items()]
            for block in payload
            if isinstance(block, Message)
        ]
        if any(blocks):
            return blocks
    return parse_fields(mime.text(part))


def parse_fields(text: str) -> list[Fields]:
    """Split ``Name: value`` blocks separated by blank lines; folded lines are joined."""
    blocks: list[Fields] = []
    current: Fields = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[:1] in (" ", "\t") and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip() and len(name) < 64:
            current.append((name.strip().lower(), value.strip()))
        elif current and not line.lstrip().startswith("--"):
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
    if current:
        blocks.append(current)
    return blocks


def _split_recipients(block: Fields) -> list[Fields]:
    """One block per recipient, also when a DSN forgot the blank lines between them."""
    out: list[Fields] = []
    current: Fields = []
    seen: set[str] = set()
    for name, value in block:
        if name in _RECIPIENT_FIELDS and name in seen and current:
            out.append(current)
            current, seen = [], set()
        elif name == "final-recipient" and "final-recipient" in seen:
            out.append(current)
            current, seen = [], set()
        current.append((name, value))
        seen.add(name)
    if current:
        out.append(current)
    return out


def _first_values(fields: Fields) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for name, value in fields:
        seen.setdefault(name, value)
    return list(seen.items())


def _finding(fields: dict[str, str], per_message: dict[str, str]) -> Finding | None:
    final = mime.clean_address(fields.get("final-recipient", ""))
    original = mime.clean_address(fields.get("original-recipient", ""))
    recipient = final or original
    if not recipient:
        return None
    raw_diagnostic = fields.get("diagnostic-code", "")
    diagnostic = diagnostic_text(raw_diagnostic)
    code = status.normalize(fields.get("status", ""))
    if not code or (code.endswith(".0.0") and diagnostic):
        code = status.find_status(diagnostic) or code
    action = fields.get("action", "").strip().lower().split(" ")[0] if fields.get("action") else ""
    return Finding(
        recipient=recipient,
        kind=_kind(action, code),
        action=action,
        status=code,
        replycode=status.find_replycode(diagnostic),
        diagnostic=diagnostic,
        reporting_mta=mime.mtaname(per_message.get("reporting-mta", "")),
        remote_mta=mime.mtaname(fields.get("remote-mta", "")),
        original_recipient=original if original != recipient else "",
        arrival_date=per_message.get("arrival-date", ""),
        reason="mailererror" if raw_diagnostic.lower().startswith("x-unix") else "",
        extra={"sender": mime.clean_address(per_message.get("x-postfix-sender", ""))},
    )


def diagnostic_text(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` -> ``550 5.1.1 ...`` (the type prefix dropped, unfolded)."""
    value = " ".join(value.split())
    head, sep, rest = value.partition(";")
    if sep and head.strip().lower() in ("smtp", "x-unix", "x-local", "x-postfix", "x-exim", "x-ses", "x-notes", "x-smtp"):
        return rest.strip()
    if sep and " " not in head.strip() and len(head) < 16:
        return rest.strip()
    return value


def _kind(action: str, code: str) -> str:
    if action in _KIND_BY_ACTION:
        return _KIND_BY_ACTION[action]
    if code.startswith("2"):
        return "delivered"
    return "bounce"
