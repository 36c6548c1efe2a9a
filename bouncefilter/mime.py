"""MIME helpers that never raise: parse bytes, read headers and bodies, walk parts.

Everything parses with ``email.policy.compat32`` (about seven times faster than the
modern policy) and decodes only what is asked for. Hostile input (truncated MIME,
unknown charsets, 8-bit headers, deep nesting, huge parts) gives a best-effort answer,
never an exception, in time bounded by the limits below.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
# email.policy would also import the modern policy's header machinery (~8 ms a process).
from email._policybase import compat32

#: Only this much of a message is parsed for classification; what identifies a bounce
#: always comes first, and a 25 MB returned attachment must not cost seconds.
MAX_PARSE_BYTES = 1 << 20
#: Nesting and part-count limits for walking a message.
MAX_DEPTH = 12
MAX_PARTS = 256
#: Longest body text decoded from one part.
MAX_TEXT = 256 * 1024

_ADDR_RE = re.compile(r"[^\s<>()\[\]\"',;:]{1,64}@[A-Za-z0-9\[\]_.:-]{1,255}")
_ENCODED_WORD = "=?"
#: The stand-ins the parser puts for undecodable 8-bit bytes in headers.
_SURROGATE_RE = re.compile("[\udc80-\udcff]")


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode the bytes UTF-8 rejects as Latin-1: text that mixes both stays readable."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_LATIN1_FALLBACK = "bouncefilter-latin1"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


def parse(raw: bytes) -> Message:
    """Parse a message from bytes (any line ends), limited to :data:`MAX_PARSE_BYTES`."""
    if len(raw) > MAX_PARSE_BYTES:
        raw = raw[:MAX_PARSE_BYTES]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        return BytesParser(policy=compat32).parsebytes(raw)
    except RecursionError:
        # Parts nested hundreds deep exhaust the parser's recursion: keep the headers
        # and read the body as one text part.
        return BytesParser(policy=compat32).parsebytes(raw, headersonly=True)


def parse_headers(text: str) -> Message:
    """Parse a header block given as text (returned headers, a text/rfc822-headers part)."""
    return HeaderParser(policy=compat32).parsestr(text, headersonly=True)


def header(msg: Message, name: str) -> str:
    """The decoded, unfolded value of header ``name``, or ``""``."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return decode_value(value)
    return ""


def decode_value(value: object) -> str:
    """Decode RFC 2047 words and stray 8-bit bytes in a header value; unfold it."""
    text = str(value) if not isinstance(value, str) else value
    if _has_surrogates(text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", _LATIN1_FALLBACK)
    if _ENCODED_WORD in text:
        text = _decode_words(text)
    return " ".join(text.split())


def _has_surrogates(text: str) -> bool:
    return _SURROGATE_RE.search(text) is not None


def _decode_words(text: str) -> str:
    try:
        pieces = decode_header(text)
    except (ValueError, LookupError, AssertionError):
        return text
    out = []
    for chunk, charset in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_bytes(chunk, charset))
    return "".join(out)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text: the declared charset if Python knows it, else UTF-8, else Latin-1."""
    if charset:
        charset = charset.strip().strip('"').lower()
        if charset in ("utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown"):
            charset = "utf-8"
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = None
    if charset:
        try:
            return data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("utf-8", _LATIN1_FALLBACK)


def text(part: Message) -> str:
    """The decoded body of a non-multipart part as text (``""`` for a multipart)."""
    if part.is_multipart():
        return ""
    payload = part.get_payload()
    if isinstance(payload, list):
        return ""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        data = None
    if not isinstance(data, bytes):
        return (payload or "")[:MAX_TEXT] if isinstance(payload, str) else ""
    try:
        charset = part.get_content_charset()
    except (ValueError, LookupError):
        charset = None
    return decode_bytes(data[:MAX_TEXT], charset)


def content_type(part: Message) -> str:
    """The lower-case MIME type of a part; ``text/plain`` when missing or malformed."""
    try:
        return part.get_content_type()
    except (ValueError, AttributeError):
        return "text/plain"


def walk(msg: Message) -> Iterator[Message]:
    """Every part of ``msg`` in document order, depth-first, within the limits above.

    Enters ``multipart/*`` and ``message/rfc822`` parts; yields containers too.
    """
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        if depth >= MAX_DEPTH:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def first_text(msg: Message, subtype: str = "plain") -> str:
    """The first ``text/SUBTYPE`` part's text (or the body of a non-MIME message)."""
    if not msg.is_multipart():
        return text(msg)
    wanted = f"text/{subtype}"
    for part in walk(msg):
        if content_type(part) == wanted and not part.is_multipart():
            return text(part)
    return ""


def all_text(msg: Message) -> str:
    """Every ``text/*`` part's text outside returned messages, joined by blank lines.

    A ``multipart/*`` part whose boundary is lost (a folded parameter not indented)
    is read as text: its nested parts are then raw lines, but their words are there.
    """
    out = []
    for part in _top_parts(msg):
        ctype = content_type(part)
        if ctype.startswith("text/") and ctype != "text/rfc822-headers":
            body = text(part)
            out.append(strip_html(body) if ctype == "text/html" else body)
        elif ctype.startswith("multipart/") and not part.is_multipart():
            out.append(text(part))
    return "\n\n".join(out)


def _top_parts(msg: Message) -> Iterator[Message]:
    """Parts of ``msg`` without descending into attached messages."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        if part.is_multipart() and content_type(part).startswith("multipart/"):
            if depth < MAX_DEPTH:
                children = [c for c in part.get_payload() if isinstance(c, Message)]
                stack.extend((c, depth + 1) for c in reversed(children))
            continue
        yield part


_TAG_RE = re.compile(r"<[^<>]{0,2000}>")
_BLOCK_TAG_RE = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d)\b[^<>]{0,200}>", re.I)
_ENTITIES = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
_ENTITY_RE = re.compile("|".join(map(re.escape, _ENTITIES)))
_HTML_DROP_RE = re.compile(r"<(style|script|head)\b.{0,100000}?</\1>", re.I | re.S)


def strip_html(html: str) -> str:
    """HTML to plain text, roughly: enough to read a bounce written in HTML."""
    html = _HTML_DROP_RE.sub(" ", html)
    html = _BLOCK_TAG_RE.sub("\n", html)
    html = _TAG_RE.sub("", html)
    return _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(0)], html)


def returned_headers(msg: Message) -> Message | None:
    """The returned original's headers: a ``message/rfc822`` (or global) part, or a
    ``text/rfc822-headers`` part; ``None`` when the bounce returns neither.
    """
    for part in walk(msg):
        if part is msg:
            continue
        ctype = content_type(part)
        if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                inner = payload[0]
                body = inner.get_payload()
                if not inner.keys() and isinstance(body, str):
                    # A blank line before the returned headers made them its body.
                    return parse_headers(body.lstrip())
                return inner
            if isinstance(payload, str):
                return parse_headers(payload.lstrip())
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            return parse_headers(text(part))
    return None


def addresses(text_: str) -> list[str]:
    """Every mail address in ``text_``, in order of appearance, without duplicates."""
    seen: dict[str, None] = {}
    for match in _ADDR_RE.finditer(text_):
        addr = clean_address(match.group(0))
        if addr and addr.lower() not in seen:
            seen[addr.lower()] = None
    return list(seen)


def clean_address(value: str) -> str:
    """``rfc822; <User@Example.COM>.`` -> ``User@example.com``; ``""`` if no address."""
    value = value.strip()
    if ";" in value:
        addr_type, _, rest = value.partition(";")
        if "@" not in addr_type:
            value = rest.strip()
    match = _ADDR_RE.search(value)
    if not match:
        return ""
    addr = match.group(0).strip(".:;,'\"`")
    if addr.lower().startswith("mailto:"):
        addr = addr[7:]
    local, _, domain = addr.rpartition("@")
    domain = domain.strip(".").rstrip("]").lstrip("[") if not domain.startswith("[") else domain
    if not local or not domain or "." not in domain and not domain.startswith("["):
        return ""
    return f"{local}@{domain.lower()}"


def mtaname(value: str) -> str:
    """``dns; mx.example.com (comment)`` -> ``mx.example.com``."""
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().split(None, 1)[0] if value.strip() else ""
    return value.strip("[]<>();,").lower()
