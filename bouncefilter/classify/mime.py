"""A small MIME parser that never raises, and helpers to read what it gives.

:func:`parse` splits a message into :class:`Part` objects with C-speed string
operations: one regular expression finds a header block, ``bytes.find`` finds the
boundary lines of a multipart, and bodies stay undecoded bytes until asked for. It
reads messages the way ``email.policy.compat32`` does (the same headers, the same parts,
the same payloads, also for broken MIME) at a fraction of the cost: a header block ends
at the first line that is not a field, every enclosing boundary ends a part, a multipart
whose first boundary is missing is one text, ``message/*`` parts hold the message they
carry and ``message/delivery-status`` parts hold one part per field block.

Hostile input (truncated MIME, unknown charsets, 8-bit headers, deep nesting, huge
parts) gives a best-effort answer, never an exception, in time bounded by the limits
below.
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections.abc import Iterator, Sequence

#: Only this much of a message is parsed for classification, unless a report part
#: lies further (:func:`parse_limit`): a 25 MB returned attachment must not cost seconds.
MAX_PARSE_BYTES = 1 << 20
#: The media types of the machine-readable reports, which are always parsed whole.
_REPORT_TYPES = (b"message/delivery-status", b"message/global-delivery-status", b"message/feedback-report")
#: Nesting and part-count limits for walking a message.
MAX_DEPTH = 12
MAX_PARTS = 256
#: Nesting the parser builds; deeper containers are kept whole, as one leaf (nothing
#: below MAX_DEPTH + 1 is ever read).
MAX_NESTING = 32
#: Longest body text decoded from one part.
MAX_TEXT = 256 * 1024

_ENCODED_WORD = "=?"
#: The stand-ins for undecodable 8-bit bytes in text read as ASCII.
_SURROGATE_RE = re.compile("[\udc80-\udcff]")

#: The lines of a header block: a field, a continuation, or a Unix ``From `` line.
_HEADER_LINES_RE = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[\t ])[^\n]*\n)*")
_HEADER_LINE_RE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
#: One field of a header block with its continuation lines, white space after the
#: colon left out. A line starting with a colon matches with an empty name and is
#: dropped with its continuations.
_FIELD_RE = re.compile(r"^([\x21-\x39\x3b-\x7e]*):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
#: What may follow ``--boundary`` on a boundary line.
_BOUNDARY_TAIL_RE = re.compile(rb"(--)?[ \t]*(?:\n|\Z)")
#: A field's value after its colon (as :data:`_FIELD_RE` reads it).
_VALUE_RE = re.compile(r"[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)")
_RFC2231_NAME_RE = re.compile(r"^(\w+)\*(?:([0-9]+)\*?)?$", re.ASCII)
_UUENCODED = ("x-uuencode", "uuencode", "uue", "x-uue")

Headers = list[tuple[str, str]]
#: A parameter value: a string, or for RFC 2231 ``(charset, language, value)``.
ParamValue = str | tuple[str | None, str | None, str]


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode the bytes UTF-8 rejects as Latin-1: text that mixes both stays readable."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


_LATIN1_FALLBACK = "bouncefilter-latin1"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


class Part:
    """One part of a parsed message: its header fields, then either its children
    (a multipart's parts, the message a ``message/*`` part carries, the field blocks of
    a delivery-status part) or its body as undecoded bytes.

    Header values are kept as written (unfolded lines joined by newlines), 8-bit bytes
    as surrogate escapes, as ``email`` keeps them.
    """

    __slots__ = ("children", "body", "content_type", "_block", "_lower", "_headers", "_type", "_params")

    def __init__(self, block: str, default_type: str = "text/plain") -> None:
        """A part whose header block is ``block`` (as text, 8-bit bytes as surrogate
        escapes); its fields are read on first use."""
        self.children: list[Part] | None = None
        self.body = b""
        self._block = block
        self._lower: str | None = None
        self._headers: Headers | None = None
        self._params: list[tuple[str, ParamValue]] | None = None
        self._type = self._find("content-type:") if block else None
        #: The lower-case MIME type: ``default_type`` when missing, ``text/plain``
        #: when malformed.
        self.content_type = _content_type(self._type, default_type)

    @property
    def headers(self) -> Headers:
        """``(name, value)`` for every field, in order."""
        if self._headers is None:
            self._headers = _fields(self._block)
        return self._headers

    def get(self, name: str) -> str | None:
        """The raw value of the first field called ``name`` (any case), or ``None``."""
        return self._find(name.lower() + ":") if name else None

    def _find(self, wanted: str) -> str | None:
        """The value of the first field whose lower-case name and colon are ``wanted``."""
        lower = self._lower
        if lower is None:
            lower = self._block.lower()
            lower = self._lower = lower if len(lower) == len(self._block) else ""
        if not lower:  # no fields, or a letter whose lower case is longer (U+0130)
            return next((value for key, value in self.headers if key.lower() + ":" == wanted), None)
        # A field name starts a line of the header block: nothing else there ends in ":".
        index = lower.find(wanted)
        while index > 0 and lower[index - 1] != "\n":
            index = lower.find(wanted, index + 1)
        if index < 0:
            return None
        return _VALUE_RE.match(self._block, index + len(wanted)).group(1)  # type: ignore[union-attr]  # matches anything

    def param(self, name: str, default: ParamValue | None = None) -> ParamValue | None:
        """A ``Content-Type`` parameter, unquoted: a string, or ``(charset, language,
        value)`` for an RFC 2231 value with a charset; ``default`` when absent."""
        if self._params is None:
            self._params = [] if self._type is None else _params(_sanitized(self._type))
        wanted = name.lower()
        for key, value in self._params:
            if key.lower() == wanted:
                return (value[0], value[1], _unquote(value[2])) if isinstance(value, tuple) else _unquote(value)
        return default

    def boundary(self) -> str | None:
        """The multipart boundary, or ``None``."""
        value = self.param("boundary")
        if value is None:
            return None
        return _collapse(value).rstrip()

    def charset(self) -> str | None:
        """The declared charset in lower case, or ``None`` (also when not ASCII)."""
        value = self.param("charset")
        if value is None:
            return None
        if isinstance(value, tuple):
            try:
                value = value[2].encode("raw-unicode-escape").decode(value[0] or "us-ascii")
            except (LookupError, UnicodeError):
                value = value[2]
            except ValueError:
                return None
        if not value.isascii():
            return None
        return value.lower()

    def decoded(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone (``b""`` for a container);
        as it is when the encoding is unknown or the data does not decode."""
        if self.children is not None:
            return b""
        encoding = _sanitized(self.get("content-transfer-encoding") or "").lower()
        if encoding == "quoted-printable":
            return binascii.a2b_qp(self.body)
        if encoding == "base64":
            return _base64(self.body)
        if encoding in _UUENCODED:
            return _uudecoded(self.body)
        return self.body

    def payload(self) -> str:
        """The undecoded body as text: 8-bit bytes read in the declared charset, each
        undecodable one as U+FFFD (``""`` for a container)."""
        if self.children is not None:
            return ""
        if self.body.isascii():
            return self.body.decode("ascii")
        charset = self.param("charset", "ascii")
        try:
            return self.body.decode(charset if isinstance(charset, str) else "ascii", "replace")
        except (LookupError, ValueError):
            return self.body.decode("ascii", "replace")


def _sanitized(value: str) -> str:
    """A header value as ``email`` hands it out: 8-bit bytes as U+FFFD."""
    if value.isascii() or not _SURROGATE_RE.search(value):
        return value
    return _SURROGATE_RE.sub("\ufffd", value)


def _content_type(value: str | None, default_type: str) -> str:
    if value is None:
        return default_type
    ctype = _sanitized(value).partition(";")[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _params(value: str) -> list[tuple[str, ParamValue]]:
    """``(name, value)`` for each ``;``-separated item of a header value, the first
    being the value itself; later values quoted again, RFC 2231 values joined and
    given as ``(charset, language, value)`` when they name a charset."""
    pieces = value.split(";")
    items: list[tuple[str, str]] = []
    index = 0
    while index < len(pieces):
        item = pieces[index]
        index += 1
        # A semicolon inside a quoted string does not end the item.
        while item and '"' in item and (item.count('"') - item.count('\\"')) % 2 and index < len(pieces):
            item += ";" + pieces[index]
            index += 1
        name, sep, val = item.partition("=")
        items.append((name.strip().lower(), val.strip()) if sep else (item.strip(), ""))
    return _decoded_params(items)


def _decoded_params(items: list[tuple[str, str]]) -> list[tuple[str, ParamValue]]:
    out: list[tuple[str, ParamValue]] = [items[0]]
    continued: dict[str, list[tuple[int, str, bool]]] = {}
    for name, value in items[1:]:
        value = _unquote(value)
        match = _RFC2231_NAME_RE.match(name) if "*" in name else None
        if match:
            number = int(match.group(2)) if match.group(2) is not None else -1
            continued.setdefault(match.group(1), []).append((number, value, name.endswith("*")))
        else:
            out.append((name, f'"{_quote(value)}"'))
    for name, pieces in continued.items():
        pieces.sort()
        extended = any(encoded for _, _, encoded in pieces)
        if extended:
            from urllib.parse import unquote  # only for RFC 2231 values

            joined = _quote("".join(unquote(s, encoding="latin-1") if enc else s for _, s, enc in pieces))
            parts = joined.split("'", 2)
            if len(parts) <= 2:
                out.append((name, (None, None, f'"{joined}"')))
            else:
                out.append((name, (parts[0], parts[1], f'"{parts[2]}"')))
        else:
            out.append((name, '"' + _quote("".join(s for _, s, _ in pieces)) + '"'))
    return out


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unquote(value: str) -> str:
    if len(value) > 1:
        if value[0] == '"' and value[-1] == '"':
            return value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        if value[0] == "<" and value[-1] == ">":
            return value[1:-1]
    return value


def _collapse(value: ParamValue) -> str:
    """A parameter value as one string (an RFC 2231 value decoded in its charset)."""
    if not isinstance(value, tuple):
        return _unquote(value)
    charset, _, text = value
    try:
        return text.encode("raw-unicode-escape").decode("us-ascii" if charset is None else charset, "replace")
    except LookupError:
        return _unquote(text)
    except (ValueError, UnicodeError):
        return text


def _base64(data: bytes) -> bytes:
    """Base64 decoded leniently: missing padding added, stray characters skipped;
    the data itself when it cannot be decoded."""
    encoded = b"".join(data.splitlines())
    missing = len(encoded) % 4
    try:
        return binascii.a2b_base64(encoded + b"==="[: 4 - missing] if missing else encoded, strict_mode=True)
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(encoded)
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(encoded + b"==")
    except binascii.Error:
        return encoded


def _uudecoded(data: bytes) -> bytes:
    """A uuencoded body decoded; the data itself when it is not uuencoded."""
    lines = iter(data.splitlines())
    for line in lines:
        if line.startswith(b"begin "):
            try:
                int(line[6:].partition(b" ")[0], 8)
            except ValueError:
                continue
            break
    else:
        return data
    out = []
    for line in lines:
        if not line:
            return data
        if line.strip(b" \t\r\n\f") == b"end":
            break
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            try:
                out.append(binascii.a2b_uu(line[: (((line[0] - 32) & 63) * 4 + 5) // 3]))
            except binascii.Error:
                return data
    return b"".join(out)


class _Parser:
    """One parse: the data and the part made last (whose body loses the line end
    that belongs to the boundary after it)."""

    def __init__(self) -> None:
        self.last: Part | None = None

    def entity(self, data: bytes, start: int, end: int, default_type: str, depth: int) -> Part:
        """The part in ``data[start:end]``: header block, then body."""
        block, body_start, data, end = _header_block(data, start, end)
        part = self.last = Part(block, default_type)
        ctype = part.content_type
        if depth < MAX_NESTING:
            if ctype == "message/delivery-status":
                part.children = self.blocks(data, body_start, end, depth + 1)
                return part
            if ctype.startswith("message/"):
                part.children = [self.entity(data, body_start, end, "text/plain", depth + 1)]
                return part
            if ctype.startswith("multipart/"):
                boundary = part.boundary()
                if boundary is not None and boundary.isascii() and "\n" not in boundary:
                    self.multipart(part, data, body_start, end, b"--" + boundary.encode("ascii"), depth + 1)
                    return part
        part.body = data[body_start:end]
        return part

    def blocks(self, data: bytes, start: int, end: int, depth: int) -> list[Part]:
        """The field blocks of a delivery-status part, split at blank lines."""
        blocks = []
        while True:
            if start < end and data[start] == 10:
                blank = start
            else:
                blank = data.find(b"\n\n", start, end)
                blank = end if blank < 0 else blank + 1
            blocks.append(self.entity(data, start, blank, "text/plain", depth))
            start = blank + 1
            if start >= end:
                return blocks

    def multipart(self, part: Part, data: bytes, start: int, end: int, separator: bytes, depth: int) -> None:
        """Split ``data[start:end]`` at ``separator`` lines into the parts of ``part``;
        with no opening boundary line, the whole is the part's body."""
        found = _boundary_line(data, start, end, separator)
        if found is None or found[2]:
            part.body = data[start : found[0] if found else end]
            return
        child_type = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
        children: list[Part] = []
        part.children = children
        line: tuple[int, int, bool] | None = found
        while line is not None and not line[2]:
            position = line[1]
            while position < end:  # repeated boundary lines delimit nothing
                repeated = _boundary_at(data, position, end, separator)
                if repeated is None:
                    break
                position = repeated[1]
            line = _boundary_line(data, position, end, separator)
            children.append(self.entity(data, position, line[0] if line else end, child_type, depth))
            last = self.last
            if last is not None and last.children is None and not last.content_type.startswith("multipart/"):
                if last.body.endswith(b"\n"):
                    last.body = last.body[:-1]
            self.last = part


def _header_block(data: bytes, start: int, end: int) -> tuple[str, int, bytes, int]:
    """The header block at ``start`` as text, where the body starts, and the data
    and end the body is read from (a Unix ``From `` line ending the block starts it)."""
    stop = _header_lines_end(data, start, end)
    body_start = stop
    if stop < end:
        if data[stop] == 10:
            body_start = stop + 1
        elif data.find(b"\n", stop, end) < 0 and _HEADER_LINE_RE.match(data, stop, end):
            stop = body_start = end
    if stop == start:
        return "", body_start, data, end
    block = data[start:stop].decode("ascii", "surrogateescape")
    last_line = block.rfind("\n", 0, len(block) - 1) + 1
    if last_line > 0 and block.startswith("From ", last_line):
        # A Unix From line last in the block is the body's first line.
        pushed = data[start + last_line : stop]
        block = block[:last_line]
        if body_start == stop + 1:
            data = pushed + data[body_start:end]
            body_start, end = 0, len(data)
        else:
            body_start = start + last_line
    return block, body_start, data, end


def _header_lines_end(data: bytes, start: int, end: int) -> int:
    """Where the run of header lines (each ending in a line end) at ``start`` ends."""
    match = _HEADER_LINES_RE.match(data, start, end)
    return match.end() if match else start


def _boundary_at(data: bytes, position: int, end: int, separator: bytes) -> tuple[int, int, bool] | None:
    """``(line start, next line start, closing)`` when the line at ``position`` is a
    boundary line, else ``None``."""
    if not data.startswith(separator, position, end):
        return None
    tail = _BOUNDARY_TAIL_RE.match(data, position + len(separator), end)
    if tail is None:
        return None
    return position, min(tail.end(), end), tail.group(1) is not None


def _boundary_line(data: bytes, start: int, end: int, separator: bytes) -> tuple[int, int, bool] | None:
    """The first boundary line at or after ``start`` (a line start), or ``None``."""
    found = _boundary_at(data, start, end, separator)
    if found is not None:
        return found
    needle = b"\n" + separator
    index = data.find(needle, start, end)
    while index >= 0:
        found = _boundary_at(data, index + 1, end, separator)
        if found is not None:
            return found
        index = data.find(needle, index + 1, end)
    return None


def parse(raw: bytes) -> Part:
    """Parse a message from bytes (any line ends), limited to :func:`parse_limit`."""
    limit = parse_limit(raw)
    if len(raw) > limit:
        raw = raw[:limit]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return _Parser().entity(raw, 0, len(raw), "text/plain", 0)


def parse_limit(raw: bytes) -> int:
    """How much of ``raw`` to parse: :data:`MAX_PARSE_BYTES`, or up to the end of the
    last report part (a DSN's delivery status, an ARF report) that begins or ends beyond
    it. What makes a bounce a bounce is never cut, however large the notification before
    it, the headers above it or the report itself (20,000 recipients take megabytes);
    parsing leaves bodies undecoded, so a long way to the report costs little."""
    if len(raw) <= MAX_PARSE_BYTES:
        return len(raw)
    start = max(_last_report_type(raw, name) for name in _REPORT_TYPES)
    if start < 0:
        return MAX_PARSE_BYTES
    end = raw.find(b"\n--", start)  # no field of a report begins with "--": a boundary does
    return max(MAX_PARSE_BYTES, len(raw) if end < 0 else end + 1)


def _last_report_type(raw: bytes, name: bytes) -> int:
    """Where the last ``Content-Type: NAME`` field of ``raw`` is, or -1 (case-insensitive
    in the field name; the media type as MTAs write it, in lower case)."""
    index = raw.rfind(name)
    while index >= 0:
        line = raw.rfind(b"\n", 0, index) + 1
        if raw[line:index].lower().replace(b" ", b"").replace(b"\t", b"").startswith(b"content-type:"):
            return index
        index = raw.rfind(name, 0, index)
    return -1


def parse_headers(text: str) -> Part:
    """Parse a header block given as text (returned headers, a text/rfc822-headers part);
    the rest of the text is left out."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8", "surrogatepass")
    stop = _header_lines_end(data, 0, len(data))
    if stop < len(data) and data[stop] != 10 and data.find(b"\n", stop) < 0 and _HEADER_LINE_RE.match(data, stop):
        stop = len(data)
    block = data[:stop].decode("utf-8", "surrogatepass")
    last_line = block.rfind("\n", 0, len(block) - 1) + 1
    if last_line > 0 and block.startswith("From ", last_line):
        block = block[:last_line]
    return Part(block)


def _fields(block: str) -> Headers:
    """``(name, value)`` for each field of a header block."""
    fields: Headers = _FIELD_RE.findall(block)
    if block[:1] == ":" or "\n:" in block:
        return [field for field in fields if field[0]]
    return fields


def header(part: Part, name: str) -> str:
    """The decoded, unfolded value of header ``name``, or ``""``."""
    value = part.get(name)
    return decode_value(value) if value is not None else ""


def decode_value(value: object) -> str:
    """Decode RFC 2047 words and stray 8-bit bytes in a header value; unfold it."""
    text = str(value) if not isinstance(value, str) else value
    if not text.isascii() and _SURROGATE_RE.search(text) is not None:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", _LATIN1_FALLBACK)
    if _ENCODED_WORD in text:
        text = _decode_words(text)
    return " ".join(text.split())


def _decode_words(text: str) -> str:
    # Imported on first need: most bounces have no encoded words.
    from email.errors import HeaderParseError
    from email.header import decode_header

    try:
        pieces = decode_header(text)
    except (ValueError, LookupError, AssertionError, HeaderParseError):  # a broken word
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
        except (LookupError, ValueError):  # ValueError: a NUL in the name
            charset = None
    if charset:
        try:
            return data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("utf-8", _LATIN1_FALLBACK)


def text(part: Part) -> str:
    """The decoded body of a part as text (``""`` for a container)."""
    if part.children is not None:
        return ""
    return decode_bytes(part.decoded()[:MAX_TEXT], part.charset())


def walk(msg: Part) -> list[Part]:
    """Every part of ``msg`` (``msg`` first) in document order, depth-first, within the
    limits above; containers (``multipart/*``, ``message/*``, delivery-status blocks)
    included."""
    found: list[Part] = []
    stack: list[tuple[Part, int]] = [(msg, 0)]
    while stack and len(found) < MAX_PARTS:
        part, depth = stack.pop()
        found.append(part)
        if depth < MAX_DEPTH and part.children:
            stack.extend((child, depth + 1) for child in reversed(part.children))
    return found


def all_text(msg: Part) -> str:
    """Every ``text/*`` part's text outside returned messages, joined by blank lines.

    A ``multipart/*`` part whose boundary is lost (a folded parameter not indented)
    is read as text: its nested parts are then raw lines, but their words are there.
    """
    out = []
    for part in _top_parts(msg):
        ctype = part.content_type
        if ctype.startswith("text/") and ctype != "text/rfc822-headers":
            body = text(part)
            out.append(strip_html(body) if ctype == "text/html" else body)
        elif ctype.startswith("multipart/") and part.children is None:
            out.append(text(part))
    return "\n\n".join(out)


def _top_parts(msg: Part) -> Iterator[Part]:
    """Parts of ``msg`` without descending into attached messages."""
    stack: list[tuple[Part, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        if part.children is not None and part.content_type.startswith("multipart/"):
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(part.children))
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


_RETURNED_MESSAGES = ("message/rfc822", "message/global", "message/rfc822-headers")
_RETURNED_HEADERS = ("text/rfc822-headers", "message/global-headers")


def returned_headers(parts: Sequence[Part]) -> Part | None:
    """The returned original's headers, given the message's parts (:func:`walk`): a
    ``message/rfc822`` (or global) part, or a ``text/rfc822-headers`` part; ``None``
    when the bounce returns neither.
    """
    for part in parts[1:]:
        ctype = part.content_type
        if ctype in _RETURNED_MESSAGES:
            if part.children:
                inner = part.children[0]
                if not inner.headers and inner.children is None:
                    # A blank line before the returned headers made them its body.
                    return parse_headers(inner.payload().lstrip())
                return inner
            return parse_headers(part.payload().lstrip())
        if ctype in _RETURNED_HEADERS:
            return parse_headers(text(part))
    return None


def mtaname(value: str) -> str:
    """``dns; mx.example.com (comment)`` -> ``mx.example.com``."""
    value = value.strip()
    if ";" in value:
        value = value.split(";", 1)[1]
    value = value.strip().split(None, 1)[0] if value.strip() else ""
    return value.strip("[]<>();,").lower()
