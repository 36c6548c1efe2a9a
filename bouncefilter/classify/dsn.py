"""RFC 3464 delivery status notifications (and RFC 6533 global ones).

Reads every ``message/delivery-status`` or ``message/global-delivery-status`` part of
the notification itself (not one inside a returned message): the per-message fields,
then one :class:`~bouncefilter.core.record.Finding` per recipient block, whatever its
``Action``. The human-readable part completes what the report leaves vague (see
:mod:`bouncefilter.classify.dsntext`): the diagnostic when the report has none, the status when
it says only ``X.0.0``, the SMTP command the error answered. A message that is a DSN
always gets findings here, even when its report names no recipient, so it never falls
through to the plain-text parsers.

Also read: a report part mislabelled ``text/plain`` holding ``Final-Recipient:``
fields, and a report inside a multipart whose boundary does not match its header.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from bouncefilter.classify import lazy, mime, status
from bouncefilter.classify.dsntext import Notice, command_in
from bouncefilter.classify.mime import Part
from bouncefilter.classify.view import View
from bouncefilter.core.address import ANY_ADDRESS, clean_address, find_addresses
from bouncefilter.core.record import Finding

REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")

_KIND_BY_ACTION = {
    "failed": "bounce",
    "delayed": "delay",
    "delivered": "delivered",
    "relayed": "delivered",
    "expanded": "delivered",
}
_CLASS_BY_KIND = {"bounce": "5", "delay": "4", "delivered": "2"}
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")
_FIELD_LINE_RE = lazy.regex(r"^(final-recipient|original-recipient|action|status|diagnostic-code)\s*:", re.I | re.M)
_REPORT_HEADER_RE = lazy.regex(r"^content-type:[ \t]*message/(?:global-)?delivery-status\b", re.I | re.M)
_DIAGNOSTIC_TYPES = ("smtp", "x-unix", "x-local", "x-postfix", "x-exim", "x-ses", "x-notes", "x-smtp")
_WORD_RE = lazy.regex(r"[A-Za-z]{3,}")
_EXPANDED_RE = lazy.regex(r"\(expanded from:[^()]{0,300}\)", re.I)
_XTEXT_RE = lazy.regex(r"\\x\{([0-9A-Fa-f]{1,6})\}|\+([0-9A-Fa-f]{2})")
_UTF8_ADDR_RE = lazy.regex(ANY_ADDRESS)

#: Longest diagnostic taken from a notice that names no recipient block.
MAX_SUMMARY = 600

Fields = list[tuple[str, str]]


def parse(view: View) -> list[Finding] | None:
    """Findings for every recipient block of every report part; ``None`` if not a DSN."""
    found = _report(view)
    if found is None:
        return None
    report, human = found
    notice = Notice(human)
    findings = findings_from_blocks(parse_fields(report), notice)
    return findings or _recipientless(view, notice)


def findings_from_blocks(blocks: list[Fields], notice: Notice | None = None) -> list[Finding]:
    """Findings from parsed field blocks: per-message fields first, then recipients."""
    per_message: dict[str, str] = {}
    findings: list[Finding] = []
    notice = notice or Notice("")
    for block in blocks:
        for fields in _split_recipients(block):
            names = {name for name, _ in fields}
            if names.isdisjoint(_RECIPIENT_FIELDS):
                for name, value in fields:
                    per_message.setdefault(name, value)
                continue
            finding = _finding(dict(_first_values(fields)), per_message, notice)
            if finding is not None:
                findings.append(finding)
    return findings


def _report(view: View) -> tuple[str, str | Callable[[], str]] | None:
    """``(report fields text, human-readable text or a function giving it)``, or
    ``None`` when not a DSN."""
    if any(ctype in REPORT_TYPES for ctype in view.part_types):
        parts = _report_parts(view.msg)
        if parts:
            return "\n\n".join(_part_text(part) for part in parts), lambda: view.text
        wrapped = _wrapped_report(view.msg)
        if wrapped is not None:
            return wrapped
    if view.msg.children is None and view.content_type.startswith("multipart/"):
        broken = _report_in_raw(view.msg.payload())
        if broken is not None:
            return broken
    text = view.text
    if _mentions_final_recipient(text):
        first = _FIELD_LINE_RE.search(text)
        if first is not None:
            start = first.start()
            lead = text.lower().rfind("reporting-mta:", 0, start)
            start = lead if lead >= 0 else start
            return text[start:], text[:start]
    return None


def _mentions_final_recipient(text: str) -> bool:
    """A cheap test for a ``Final-Recipient`` field in any usual spelling."""
    return "inal-Recipient" in text or "inal-recipient" in text or "FINAL-RECIPIENT" in text


def _report_parts(msg: Part) -> list[Part]:
    """Report parts of the notification itself, not of a message it returns."""
    found: list[Part] = []
    stack = [(msg, 0)]
    seen = 0
    while stack and seen < mime.MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        ctype = part.content_type
        if ctype in REPORT_TYPES:
            found.append(part)
        elif ctype.startswith("multipart/") and depth < mime.MAX_DEPTH and part.children:
            stack.extend((child, depth + 1) for child in reversed(part.children))
    return found


def _wrapped_report(msg: Part) -> tuple[str, str] | None:
    """A DSN that a gateway forwarded as an attachment of its own notice."""
    for part in _attached(msg):
        if part.content_type == "multipart/report":
            parts = _report_parts(part)
            if parts:
                return "\n\n".join(_part_text(p) for p in parts), mime.all_text(part)
    return None


def _attached(msg: Part) -> list[Part]:
    """Messages attached at the top level of ``msg`` (``message/rfc822`` parts)."""
    return [
        part.children[0]
        for part in msg.children or ()
        if part.content_type == "message/rfc822" and part.children
    ]


def _part_text(part: Part) -> str:
    """A report part's text. The parser splits ``message/delivery-status`` into one
    part per block; a line that is not a field (an unfolded continuation) ends its
    headers, so the block's body is kept too and everything is re-read as text."""
    if part.children is None:
        return mime.text(part)
    chunks = []
    for block in part.children:
        lines = [f"{name}: {value}" for name, value in block.headers]
        if block.children is None:
            # The raw bytes, as 8-bit text (RFC 6533) may be.
            body = block.decoded()
            if body.strip():
                lines.append(mime.decode_bytes(body, "utf-8"))
        chunks.append("\n".join(lines))
    text = "\n\n".join(chunks)
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    encoding = mime.header(part, "Content-Transfer-Encoding").strip().lower()
    return _decoded(text, encoding) if encoding in ("base64", "quoted-printable") else text


def _decoded(text: str, encoding: str) -> str:
    """A report encoded for transport (some Exchange servers base64 theirs), decoded;
    ``text`` itself when it does not decode."""
    try:
        if encoding == "base64":
            data = binascii.a2b_base64("".join(text.split()))
        else:
            data = binascii.a2b_qp(text.encode("utf-8", "replace"))
    except (binascii.Error, ValueError):
        return text
    return mime.decode_bytes(data, "utf-8")


def _report_in_raw(body: str) -> tuple[str, str] | None:
    """The report and the notice in a multipart whose boundary did not parse."""
    header = _REPORT_HEADER_RE.search(body)
    if header is None:
        return None
    start = body.find("\n\n", header.end())
    if start < 0:
        return None
    end = body.find("\n--", start)
    end = len(body) if end < 0 else end
    return body[start + 2:end], body[: header.start()]


def parse_fields(text: str) -> list[Fields]:
    """Split ``Name: value`` blocks separated by blank lines; folded lines are joined,
    and so are lines that continue a value without the leading white space."""
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
        current.append((name, value))
        seen.add(name)
    if current:
        out.append(current)
    return out


def _first_values(fields: Fields) -> list[tuple[str, str]]:
    """Each field's first value (a repeated field keeps its first)."""
    seen: dict[str, str] = {}
    for name, value in fields:
        seen.setdefault(name, value)
    return list(seen.items())


#: A delivery report's whole diagnostic saying the message itself expired.
_ENVELOPE_EXPIRED_RE = lazy.regex(r"^\S{0,320}:? ?envelope expired\.?$", re.I)

def _finding(fields: dict[str, str], per_message: dict[str, str], notice: Notice) -> Finding | None:
    """The finding for one recipient block, ``None`` when it names no recipient."""
    final_value = fields.get("final-recipient", "")
    final = recipient_address(final_value)
    original = recipient_address(fields.get("original-recipient", ""))
    recipient = final or original or notice.generated_by(_address_value(final_value))
    if not recipient:
        return None
    action = fields.get("action", "").strip().lower().split(" ")[0] if fields.get("action") else ""
    diagnostic = _diagnostic(fields, recipient, notice)
    code = _status(status.normalize(fields.get("status", "")), diagnostic)
    kind = _kind(action, code)
    expired = kind == "delay" and bool(_ENVELOPE_EXPIRED_RE.match(diagnostic))
    if expired:
        # OpenSMTPD reports its final give-up under "Action: delayed" with only these
        # words, the message already gone from its queue: a failure, not a delay.
        kind, action = "bounce", "failed"
    return Finding(
        recipient=recipient,
        kind=kind,
        action=action,
        status=code or _CLASS_BY_KIND[kind] + ".0.0",
        replycode=status.find_replycode(diagnostic),
        diagnostic=diagnostic,
        reporting_mta=mime.mtaname(per_message.get("reporting-mta", "")),
        remote_mta=mime.mtaname(fields.get("remote-mta", "")),
        original_recipient=original if original != recipient else "",
        arrival_date=per_message.get("arrival-date", ""),
        expired=expired,
        extra={
            "sender": clean_address(per_message.get("x-postfix-sender", "")),
            "command": command_in(diagnostic) or notice.command(recipient),
        },
    )


def _diagnostic(fields: dict[str, str], recipient: str, notice: Notice) -> str:
    """The ``Diagnostic-Code`` text; when it says nothing in words, completed by the
    status field's comment and the notice's paragraph about the recipient (a local
    mailer's exit code, by the Sendmail transcript). A local delivery program's words
    keep their ``X-Unix;`` type: the text rules read it."""
    raw = fields.get("diagnostic-code", "")
    diagnostic = diagnostic_text(raw)
    if _is_thin(_EXPANDED_RE.sub("", diagnostic)):
        notes = notice.notes(recipient) or notice.notes(_address_value(fields.get("final-recipient", "")))
        if not status.find_replycode(notes):
            notes = f"{notes} {notice.transcript()}".strip()
        diagnostic = " ".join(filter(None, (diagnostic, _status_comment(fields.get("status", "")), notes)))
    if raw[:6].lower() == "x-unix":
        diagnostic = f"X-Unix; {diagnostic}"
    return diagnostic


def _status(field: str, diagnostic: str) -> str:
    """The status: the code in the diagnostic (the remote's own words, or the notice's
    when the report had none) when it is specific (a Sendmail ``4.4.7`` field over a
    ``450 4.7.1`` reply, a vague ``5.0.0`` field), else the field."""
    spoken = status.find_status(diagnostic)
    if spoken and not spoken.endswith(".0.0"):
        return spoken
    return field or spoken


def _status_comment(value: str) -> str:
    """``4.0.0 (host name lookup failure)`` -> ``host name lookup failure``."""
    opening = value.find("(")
    return value[opening + 1:].rstrip(") ").strip() if opening >= 0 else ""


def _is_thin(diagnostic: str) -> bool:
    """Whether a diagnostic says nothing in words (``""``, ``550``, ``255``)."""
    return _WORD_RE.search(diagnostic) is None


def recipient_address(value: str) -> str:
    """A ``Final-Recipient``/``Original-Recipient`` value's address: ``rfc822;
    <a@b>`` and RFC 6533 ``utf-8; a@b`` (``\\x{HH}`` and xtext ``+HH`` decoded)."""
    if value.isascii() and "\\x{" not in value:
        return clean_address(value)
    return _utf8_address(_address_value(value))


def _utf8_address(value: str) -> str:
    """An RFC 6533 address, ``\\x{HH}`` and ``+HH`` escapes decoded; ``""`` if none."""
    value = _XTEXT_RE.sub(_unescaped, value.strip())
    match = _UTF8_ADDR_RE.search(value.strip("<> "))
    if not match:
        return ""
    local, _, domain = match.group(0).rpartition("@")
    return f"{local}@{domain.strip('.').lower()}" if "." in domain else ""


def _unescaped(match: re.Match[str]) -> str:
    """The character a ``\\x{HHHH}`` or ``+HH`` escape stands for; U+FFFD if none."""
    point = int(match.group(1) or match.group(2), 16)
    return chr(point) if point <= 0x10FFFF else "\ufffd"


def _address_value(value: str) -> str:
    """The value after the address type (``rfc822;/var/mail/x`` -> ``/var/mail/x``)."""
    return value.partition(";")[2].strip() if ";" in value else value.strip()


def diagnostic_text(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` -> ``550 5.1.1 ...`` (the type prefix dropped, unfolded)."""
    value = " ".join(value.split())
    head, sep, rest = value.partition(";")
    if sep and head.strip().lower() in _DIAGNOSTIC_TYPES:
        return rest.strip()
    if sep and " " not in head.strip() and len(head) < 16:
        return rest.strip()
    return value


def _kind(action: str, code: str) -> str:
    """The record kind an ``Action`` (else the status class) means."""
    if action in _KIND_BY_ACTION:
        return _KIND_BY_ACTION[action]
    if code.startswith("2"):
        return "delivered"
    if code.startswith("4"):
        return "delay"
    return "bounce"


def _recipientless(view: View, notice: Notice) -> list[Finding]:
    """Findings for a DSN whose report names no recipient: the ``X-Failed-Recipients``
    header, else the addresses the notice lists, else one finding with no address
    (the classifier then takes the returned original's ``To:``)."""
    listed = find_addresses(view.header("X-Failed-Recipients")) or notice.recipients()
    text = notice.text.strip()
    if not listed:
        return [Finding(recipient="", status="5.0.0", diagnostic=_summary(text))]
    findings = []
    for address in listed:
        notes = notice.notes(address)
        diagnostic = notes if not _is_thin(notes.replace(address, "")) else _summary(text)
        findings.append(Finding(
            recipient=address,
            status=status.find_status(diagnostic) or "5.0.0",
            replycode=status.find_replycode(diagnostic),
            diagnostic=diagnostic,
            extra={"command": notice.command(address)},
        ))
    return findings


def _summary(text: str) -> str:
    """The notice cut to a diagnostic's length."""
    return " ".join(text.split())[:MAX_SUMMARY]
