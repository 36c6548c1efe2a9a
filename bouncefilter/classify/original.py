"""The returned original: where a bounce carries the message it returns, and its identity.

The one place that finds the returned original. It is a ``message/rfc822`` or
``text/rfc822-headers`` part (:attr:`bouncefilter.classify.view.View.returned`), a part that is
the original itself with no wrapper, or an inline copy pasted into the notification
text (qmail, Exim and many others paste it below a marker line such as ``--- Below
this line is a copy of the message.``, or paste its header block as it was).
:func:`notification_end` says where that copy starts, so that the parsers that read
the notification (the heuristic, the challenge detector) never read the original's
words as the bounce's; :func:`find` reads the identity (Message-ID, Subject, token,
Return-Path, To, From).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bouncefilter.classify import lazy, mime
from bouncefilter.classify.mime import Part
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import TRACKING_HEADER, Original

if TYPE_CHECKING:
    from bouncefilter.classify.view import View  # the view reads this module; this one only names its type

#: A line that starts a pasted header block. Sought as a line end followed by the
#: field (a literal first character lets the search skip from line end to line end).
_INLINE_START = r"(?:Return-Path|Received|Message-ID|Subject|X-Bouncefilter-Token|DKIM-Signature|MIME-Version|Date|From|To):[ \t]?(?=\S)"
_INLINE_START_RE = lazy.regex(_INLINE_START, re.I)
_INLINE_LINE_RE = lazy.regex("\n" + _INLINE_START, re.I)
#: A line that starts a header field; any other line of a pasted block continues one.
_FIELD_START_RE = lazy.regex(r"([A-Za-z][A-Za-z0-9-]{0,75}):")
_MAX_BLOCKS = 8
_IDENTITY_FIELDS = frozenset({"message-id", "subject", TRACKING_HEADER.lower(), "return-path", "to"})
#: Headers that must appear in a block for it to count as the original's headers.
_IDENTITY = r"(?:Message-ID|X-Bouncefilter-Token|Return-Path):"
_IDENTITY_RE = lazy.regex(_IDENTITY, re.I)
_IDENTITY_LINE_RE = lazy.regex("\n" + _IDENTITY, re.I)
_MESSAGE_ID_RE = lazy.regex(r"<[^<>\s]{1,250}>")
#: A line that says a returned copy follows (``------ This is a copy of the message``,
#: ``Original message headers:``), or a header field that only a pasted original's
#: header block starts with.
_MARKER_RE = lazy.regex(
    r"^(?:[-=_*#> \t]{2,20}[^\n]{0,60}?(?:original|returned|copy|undelivered|bounced)[^\n]{0,60}$"
    r"|[^\n]{0,40}(?:original message|copy of (?:the|your) message|returned message|bounced e-?mail"
    r"|message headers|original headers)[^\n]{0,20}:[ \t]*$"
    r"|(?:received|return-path|message-id|dkim-signature|x-mailer):[ \t])",
    re.I | re.M,
)


Fields = dict[str, str]


def find(view: View) -> Original:
    """The original's identity; fields it cannot find are empty."""
    headers = view.returned
    if headers is not None and _has_identity(headers):
        fields = _first_values(headers.headers)
    else:
        fields = inline_fields(view.text)
        if not fields:
            attached = _attached_without_wrapper(view)
            fields = (_first_values(attached.headers) if attached is not None else {}) or (
                _first_values(headers.headers) if headers is not None else {}
            )
    return Original(
        message_id=fields.get("message-id", "").strip() or _replied_to(view),
        subject=fields.get("subject", ""),
        token=fields.get(TRACKING_HEADER.lower(), "").strip(),
        return_path=clean_address(fields.get("return-path", "")),
        to=fields.get("to", ""),
    )


def _replied_to(view: View) -> str:
    """The message an answer names in ``In-Reply-To`` (RFC 5322; RFC 3834 asks
    auto-replies to set it), when no copy of the original came back: ``""`` if none."""
    found = _MESSAGE_ID_RE.search(view.header("In-Reply-To"))
    return found.group() if found else ""


def _first_values(items: Iterable[tuple[str, object]]) -> Fields:
    """The decoded first value of each identity field, by lower-case name (one pass)."""
    found: Fields = {}
    for name, value in items:
        key = name.strip().lower()
        if key in _IDENTITY_FIELDS and key not in found:
            found[key] = mime.decode_value(value)
    return found


def _attached_without_wrapper(view: View) -> Part | None:
    """A part that is the original itself, its headers serving as the part's own (some
    MTAs attach it with no ``message/rfc822`` wrapper): the first with a Message-ID."""
    for part in view.parts[1:]:
        if part.get("Message-ID"):
            return part
    return None


def _has_identity(headers: Part) -> bool:
    return any(headers.get(name) for name in ("Message-ID", TRACKING_HEADER, "Subject"))


def notification_end(text: str) -> int:
    """Where the returned copy of the original starts in ``text`` (a notification's
    text): the first marker line, or the first pasted header block naming the original;
    ``len(text)`` when there is none."""
    marker = _MARKER_RE.search(text)
    end = marker.start() if marker else len(text)
    block = _identity_block(text[:end])
    return block[0] if block else end


def notification(text: str) -> str:
    """``text`` up to where a returned copy of the original starts."""
    return text[: notification_end(text)]


def inline_fields(text: str) -> Fields:
    """The identity fields of a header block pasted into ``text`` (one that names a
    Message-ID, token or Return-Path); ``{}`` when there is none."""
    block = _identity_block(text)
    return _first_values(_pasted_fields(text[block[0] : block[1]])) if block else {}


def _identity_block(text: str) -> tuple[int, int] | None:
    """``(start, end)`` of the first header block pasted into ``text`` that names a
    Message-ID, token or Return-Path; ``None`` when there is none."""
    position = 0
    for _ in range(_MAX_BLOCKS):
        start = _inline_start(text, position)
        if start < 0:
            return None
        end = text.find("\n\n", start)
        end = len(text) if end < 0 else end
        block = text[start:end]
        if _IDENTITY_RE.match(block) or _IDENTITY_LINE_RE.search(block):
            return start, end
        position = end
    return None


def _inline_start(text: str, position: int) -> int:
    """Where the first line at or after ``position`` that starts a pasted header block
    begins; -1 if none does."""
    if (position == 0 or text[position - 1 : position] == "\n") and _INLINE_START_RE.match(text, position):
        return position
    found = _INLINE_LINE_RE.search(text, position)
    return found.start() + 1 if found else -1


def _pasted_fields(block: str) -> list[tuple[str, str]]:
    """``(name, value)`` for each field of a pasted block. A line that does not start a
    field continues the one before, indented or not: Exchange and others re-wrap long
    fields without the leading white space RFC 5322 asks for."""
    fields: list[tuple[str, str]] = []
    for line in block.split("\n"):
        match = _FIELD_START_RE.match(line) if line[:1] not in (" ", "\t") else None
        if match:
            fields.append((match.group(1), line[match.end():]))
        elif fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
    return fields
