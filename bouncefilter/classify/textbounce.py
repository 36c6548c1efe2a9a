"""Shared reading of plain-text bounces, for the format modules in :mod:`bouncefilter.classify.mta`.

Most MTAs that write no delivery-status part follow one layout: a preamble, then per
failed recipient a line naming the address followed by the error, then a marker line
before the returned copy of the message. The helpers here do those steps; a format
module supplies its markers, its address-line pattern and its own quirks.

Every pattern is linear (no nested quantifiers, bounded gaps), and the helpers only
ever see the notification text, never the returned original.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bouncefilter.classify import lazy, status
from bouncefilter.classify.view import View
from bouncefilter.core.address import DOTTED_ADDRESS, clean_address
from bouncefilter.core.record import Finding

if TYPE_CHECKING:
    from typing import Any  # Finding's fields: strings, the expired flag, the extra map

#: The longest error text kept for one recipient: real ones are a few hundred
#: characters; a longer one is hostile or garbage and must not cost time downstream.
MAX_ERROR = 4096

#: A mail address as MTAs print it in notices: for embedding in a format's patterns.

#: The default line that starts a recipient block: an address, optionally in <> or
#: quotes, optionally followed by a colon and the start of the error text.
ADDRESS_LINE_RE = lazy.regex(
    rf"^[ \t]*[<\"]?(?P<addr>{DOTTED_ADDRESS})[>\"]?:?(?:[ \t]+(?P<rest>.*))?$"
)

_DAEMON_RE = lazy.regex(r"mailer[-_ ]?daemon|postmaster|post_master|mail ?delivery|mail administrator", re.I)
#: The start of an SMTP reply line: ``550-5.7.1 `` or ``550 ``.
_REPLY_PREFIX_RE = lazy.regex(r"^([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})(?: |$))?")
#: ``host mx.example.com [192.0.2.1]`` or ``mx.example.com[192.0.2.1]`` in an error text.
#: A host is named early in an error text; looking no further keeps hostile text cheap.
_HOST_SEARCH = 2000
_HOST_RE = lazy.regex(r"\b(?:host:?[ \t]+)?([A-Za-z0-9][A-Za-z0-9_.-]{0,252}\.[A-Za-z0-9-]{2,63})[ \t]?[\[(]\d{1,3}(?:\.\d{1,3}){3}[\])]")


def is_daemon(view: View) -> bool:
    """Whether the bounce's From: names a mailer daemon or a postmaster (cheap)."""
    return bool(_DAEMON_RE.search(view.sender))


def before_marker(text: str, markers: Iterable[str]) -> str:
    """``text`` up to the first of ``markers`` (case-sensitive substrings); all of it if none."""
    cut = len(text)
    for marker in markers:
        index = text.find(marker)
        if 0 <= index < cut:
            cut = index
    return text[:cut]


def after_marker(text: str, markers: Iterable[str]) -> str:
    """``text`` after the first of ``markers`` found (tried in order); ``""`` if none is present."""
    for marker in markers:
        index = text.find(marker)
        if index >= 0:
            return text[index + len(marker):]
    return ""


def section(text: str, starts: Iterable[str], ends: Iterable[str]) -> str:
    """The text after the first of ``starts`` and before the first of ``ends`` that
    follows it; ``""`` when no start marker is present."""
    return before_marker(after_marker(text, starts), ends)


def address_blocks(
    text: str,
    line_re: re.Pattern[str] = ADDRESS_LINE_RE,
    resolve: Callable[[str], str] = clean_address,
) -> list[tuple[str, str]]:
    """``(address, error text)`` per block that starts with a line matching ``line_re``.

    ``line_re`` names the address ``addr`` and the rest of its line ``rest`` (optional).
    ``resolve`` turns the printed address into the recipient (``""`` drops the block).
    A block runs until a blank line after some error text, or the next address line.
    The error text is unfolded into one line (see :func:`unfold`).
    """
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = line_re.match(line)
        if match:
            blocks.append((resolve(match.group("addr")), [match.groupdict().get("rest") or ""]))
            continue
        if not blocks:
            continue
        if not line.strip():
            if any(part.strip() for part in blocks[-1][1]):
                blocks.append(("", []))
            continue
        blocks[-1][1].append(line)
    return [(addr, unfold(lines)) for addr, lines in blocks if addr]


def unfold(lines: Iterable[str]) -> str:
    """Lines of an error text as one line, whitespace collapsed, at most
    :data:`MAX_ERROR` characters.

    A multi-line SMTP reply (``550-5.7.1 a`` / ``550 5.7.1 b``) keeps its code and
    status once: ``550 5.7.1 a b``.
    """
    out: list[str] = []
    code = ""
    size = 0
    for line in lines:
        line = line.strip()[:MAX_ERROR]
        if not line:
            continue
        size += len(line)
        if size > 2 * MAX_ERROR:
            break
        match = _REPLY_PREFIX_RE.match(line)
        if match and match.group(1) == code:
            line = line[match.end():]
        elif match:
            code = match.group(1)
            line = f"{code} {match.group(2) or ''} {line[match.end():]}"
        out.append(line)
    return " ".join(" ".join(out).split())[:MAX_ERROR]


def remote_host(text: str) -> str:
    """The first ``host [ip]`` name in an error text, lower case; ``""`` if none."""
    match = _HOST_RE.search(text, 0, _HOST_SEARCH)
    return match.group(1).lower() if match else ""


def status_or(text: str, default: str) -> str:
    """The ``D.S.N`` in ``text``, else ``default``."""
    return status.find_status(text) or default


def failure(recipient: str, error: str, default: str = "5.0.0", answer: str = "", expired: bool = False,
            **fields: Any) -> Finding:
    """A finding for a failed (or, with ``kind="delay"``, delayed) delivery.

    Status and reply code come from ``answer`` (what the remote server said) when
    given, else from ``error``; the status falls back to ``default``, the class the
    format means when it prints none. ``expired``: the MTA says it gave up after its
    retries.
    """
    source = answer or error
    kind = fields.pop("kind", "bounce")
    return Finding(
        recipient=recipient,
        kind=kind,
        action=fields.pop("action", "delayed" if kind == "delay" else "failed"),
        status=status_or(source, default),
        replycode=status.find_replycode(source),
        diagnostic=error,
        expired=expired,
        **fields,
    )


def dedupe(found: Iterable[Finding]) -> list[Finding]:
    """``found`` without empty recipients and repeats of an address (the first stays)."""
    seen: set[str] = set()
    out: list[Finding] = []
    for finding in found:
        key = finding.recipient.lower()
        if key and key not in seen:
            seen.add(key)
            out.append(finding)
    return out


def findings(blocks: Iterable[tuple[str, str]], **fields: Any) -> list[Finding]:
    """A finding per ``(address, error text)`` pair, deduplicated by address.

    ``fields`` are :class:`~bouncefilter.core.record.Finding` fields every finding shares.
    """
    seen: set[str] = set()
    out: list[Finding] = []
    for address, error in blocks:
        key = address.lower()
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(Finding(recipient=address, diagnostic=error, **fields))
    return out


def generic_status(kind: str) -> str:
    """``4.0.0`` for a delay, ``5.0.0`` for a failure: the class without a detail, for
    notices that state no RFC 3463 code at all."""
    return "4.0.0" if kind == "delay" else "5.0.0"


def finding(recipient: str, diagnostic: str, kind: str = "bounce", **fields: Any) -> Finding:
    """A finding whose status is the one in ``fields``, else in the text, else generic."""
    code = fields.pop("status", "") or status.find_status(diagnostic) or generic_status(kind)
    return Finding(recipient=recipient, kind=kind, status=code, diagnostic=diagnostic, **fields)


def failed_recipients(value: str) -> list[str]:
    """The addresses of an ``X-Failed-Recipients:`` header value, in order."""
    return [addr for addr in (clean_address(item) for item in value.split(",")) if addr]
