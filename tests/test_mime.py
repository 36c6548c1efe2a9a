"""bouncefilter.classify.mime reads a message as ``email`` with ``policy.compat32`` does.

mime.py promises the same headers, parts and payloads as
``email.message_from_bytes(raw, policy=email.policy.compat32)``, also for broken MIME,
at a fraction of the cost. This is a differential test of that promise: every fixture
message (in LF, CRLF and CR line ends) and many messages made by hypothesis (nested
multiparts, attached messages, delivery-status parts, and broken ones: a closing
boundary or the first boundary missing, junk before the headers, 8-bit bytes, encoded
words) are parsed by both, and the two trees are compared part by part: the MIME type,
the shape (container or leaf, how many children), every header field as written, the
body as written, the body with its transfer encoding undone, and the body as text.

Where the two may differ by design, the comparison says why:

- mime.py turns every line end into LF before it parses (``email`` keeps them), so
  ``email``'s side is compared with its line ends made LF too.
- Quoted-printable with CR-only line ends: ``email`` hands the CRs to
  ``binascii.a2b_qp``, which knows no CR-only soft line breaks; mime.py decodes after
  making them LF. Compared only for LF and CRLF messages.
- :data:`~bouncefilter.classify.mime.MAX_PARSE_BYTES`: mime.py reads only the start of a huge
  message; ``email`` is given the same start.
- :data:`~bouncefilter.classify.mime.MAX_NESTING`: deeper containers stay one leaf in mime.py;
  below that depth only the MIME type and the header fields are compared.
- ``MAX_PARTS``, ``MAX_DEPTH`` and ``MAX_TEXT`` bound :func:`~bouncefilter.classify.mime.walk`
  and :func:`~bouncefilter.classify.mime.text`, not the parse, and are not involved here.
"""

from __future__ import annotations

import email
import email.policy
import os
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bouncefilter.classify import mime

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MESSAGES = sorted(FIXTURES.glob("*/*.eml"))
LINE_ENDS = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}
#: Transfer encodings whose decoded bytes are data: a CR in them is no line end.
BINARY_ENCODINGS = {"base64", "x-uuencode", "uuencode", "uue", "x-uue"}


def with_line_ends(raw: bytes, style: str) -> bytes:
    """``raw`` with every line end (LF, CRLF or CR) made ``style``'s."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", LINE_ENDS[style])


def lf(value: str) -> str:
    """``value`` with CRLF and CR made LF, as mime.py reads every message."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def lf_bytes(value: bytes) -> bytes:
    """:func:`lf` for bytes."""
    return value.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def compat32(raw: bytes) -> Message:
    """The standard library's reading of the part of ``raw`` that mime.py reads."""
    return email.message_from_bytes(raw[: mime.MAX_PARSE_BYTES], policy=email.policy.compat32)


def differences(
    part: mime.Part, msg: Message, cr_only: bool = False, depth: int = 0, where: str = "message"
) -> list[str]:
    """Every way the part mime.py made differs from the one ``email`` made, and so on
    down the tree, each as a readable line (empty: the same)."""
    found: list[str] = []

    def compare(what: str, ours: object, theirs: object) -> None:
        if ours != theirs:
            found.append(f"{where}: {what}: mime {ours!r}, email {theirs!r}")

    compare("content type", part.content_type, msg.get_content_type())
    compare("header fields", part.headers, [(name, lf(value)) for name, value in msg.raw_items()])
    for name in {name for name, _ in part.headers}:
        compare(f"get({name!r})", part.get(name), next((lf(v) for n, v in msg.raw_items() if n.lower() == name.lower()), None))
    compare("boundary", part.boundary(), msg.get_boundary())
    compare("charset", part.charset(), msg.get_content_charset())
    if depth >= mime.MAX_NESTING:  # mime.py keeps what is deeper as one leaf
        return found
    theirs = msg.get_payload() if msg.is_multipart() else None
    compare("is a container", part.children is not None, theirs is not None)
    if part.children is not None and isinstance(theirs, list):
        compare("number of children", len(part.children), len(theirs))
        for index, (child, their_child) in enumerate(zip(part.children, theirs)):
            found += differences(child, their_child, cr_only, depth + 1, f"{where}[{index}]")
    elif part.children is None and theirs is None:
        body: str = msg._payload  # type: ignore[attr-defined]  # compat32 keeps the body as written, nowhere public
        compare("body", part.body, lf_bytes(body.encode("ascii", "surrogateescape")))
        compare("body as text", part.payload(), lf(msg.get_payload(decode=False)))
        encoding = str(msg.get("content-transfer-encoding", "")).lower()
        decoded = msg.get_payload(decode=True)
        as_written = body.encode("ascii", "surrogateescape")
        if encoding not in BINARY_ENCODINGS or decoded == as_written:  # line ends are the text's, not data
            decoded = lf_bytes(decoded)
        if not (cr_only and encoding == "quoted-printable"):  # email cannot decode QP with CR-only line ends
            compare("decoded body", part.decoded(), decoded)
    return found


def assert_reads_as_compat32(raw: bytes, style: str = "lf") -> None:
    """Fail, listing the differences, unless mime.py reads ``raw`` as compat32 does."""
    problems = differences(mime.parse(raw), compat32(raw), cr_only=style == "cr")
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("style", list(LINE_ENDS))
@pytest.mark.parametrize("path", MESSAGES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_fixture_reads_as_compat32_reads_it(path: Path, style: str) -> None:
    assert_reads_as_compat32(with_line_ends(path.read_bytes(), style), style)


def test_the_comparison_sees_a_difference() -> None:
    """The differential test can fail: a part whose body mime.py read wrongly is named."""
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b--\n"
    ours = mime.parse(raw)
    assert ours.children is not None
    ours.children[0].body = b"changed"
    assert differences(ours, compat32(raw)) == [
        "message[0]: body: mime b'changed', email b'first'",
        "message[0]: body as text: mime 'changed', email 'first'",
        "message[0]: decoded body: mime b'changed', email b'first'",
    ]


def test_only_the_first_megabyte_is_read() -> None:
    """The limit the comparison allows for: the rest of a huge message is not parsed."""
    raw = b"Subject: big\n\n" + b"x" * mime.MAX_PARSE_BYTES + b"tail"
    assert not mime.parse(raw).body.endswith(b"tail")
    assert_reads_as_compat32(raw)


def test_a_charset_with_a_nul_byte_reads_as_utf8() -> None:
    """codecs.lookup raises ValueError, not LookupError, for a name with a NUL in it."""
    part = mime.parse(b'Content-Type: text/plain; charset="utf\x008"\n\ncaf\xc3\xa9\n')
    assert mime.text(part) == "caf\u00e9\n"


# Messages made by hypothesis. Small alphabets on purpose: boundaries that collide with
# body text, field names that repeat and values that fold are what break parsers.
FIELD_NAMES = st.sampled_from([
    "Subject", "From", "To", "X-Note", "Content-Description", "Received", "Content-Transfer-Encoding",
    "Subject ", "", "no colon here", "Content-Type", "CONTENT-TYPE", "X-\xe9",
])
VALUE_PIECES = st.sampled_from([
    "hello", "Undelivered Mail", "=?utf-8?b?w6k=?=", "=?iso-8859-1?q?caf=E9?=", "=?bogus?q?x?=", "\xe9t\xe9",
    "a; b=c", '"quoted; text"', "<user@example.org>", "(comment)", "  ", "--b", ":", "\udcff",
])
BOUNDARIES = st.sampled_from(["b", "=_Part_1", "b'()+_,-./:=?", "outer", "inner", "b b"])
BODY_LINES = st.sampled_from([
    "plain words", "", "  indented", "--b", "--b--", "--outer", "--inner--", "From the start", "Key: value",
    "=3D=20soft=", "w6k=", "Zm9v\nYmFy", "begin 644 x\n#86)C\n`\nend", "\xff\xfe 8-bit", "caf\xe9",
])
ENCODINGS = st.sampled_from(["", "7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "BASE64", "bogus"])
CHARSETS = st.sampled_from(["", "us-ascii", "utf-8", "iso-8859-1", "x-unknown", '"utf-8"', "utf-8*"])


def _encode(text: str) -> bytes:
    """Text as message bytes: U+0080..U+00FF and escaped surrogates as one 8-bit byte each."""
    return text.encode("latin-1", "surrogateescape")


@st.composite
def fields(draw: st.DrawFn) -> bytes:
    """One header field, maybe folded."""
    name = draw(FIELD_NAMES)
    pieces = draw(st.lists(VALUE_PIECES, min_size=0, max_size=4))
    fold = draw(st.sampled_from(["", "\n ", "\n\t"]))
    if name == "no colon here":  # a line that is no field ends the header block
        return b"no colon here\n"
    return _encode(f"{name}: " + (fold or " ").join(pieces)) + b"\n"


@st.composite
def entities(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A MIME entity: fields, a content type, then its body or its parts."""
    head = b"".join(draw(st.lists(fields(), max_size=3)))
    kinds = ["text/plain", "text/html", "application/octet-stream", "text", "Text/Plain"]
    if depth < 3:
        kinds += ["multipart/mixed", "multipart/report", "multipart/digest"]
        kinds += ["message/rfc822", "message/delivery-status"]
    kind = draw(st.sampled_from(kinds))
    if kind.startswith("multipart/"):
        boundary = draw(BOUNDARIES)
        quoted = draw(st.booleans()) or " " in boundary or "'" in boundary
        quote = '"' if quoted else ""
        head += draw(st.sampled_from([
            f"Content-Type: {kind}; boundary={quote}{boundary}{quote}\n",
            f"Content-Type: {kind};\n\tboundary={quote}{boundary}{quote}\n",
            f"Content-Type: {kind}; charset=x;\nboundary={quote}{boundary}{quote}\n",  # unindented: lost
            f"Content-Type: {kind}; boundary*0=\"{boundary[:1]}\"; boundary*1=\"{boundary[1:]}\"\n",
            f"Content-Type: {kind}; boundary*=us-ascii''{boundary.replace(' ', '%20')}\n",
        ])).encode()
        parts = draw(st.lists(entities(depth + 1), min_size=1, max_size=3))
        separator = b"--" + boundary.encode()
        body = b"".join(separator + b"\n" + part + b"\n" for part in parts)
        body = draw(st.sampled_from([b"", b"preamble\n"])) + body
        if draw(st.integers(0, 4)):  # sometimes the closing boundary is missing
            body += separator + b"--\n" + draw(st.sampled_from([b"", b"epilogue\n"]))
        if not draw(st.integers(0, 6)):  # sometimes the first boundary is missing
            body = body.replace(separator + b"\n", b"", 1)
        return head + b"\n" + body
    if kind == "message/rfc822":
        return head + b"Content-Type: message/rfc822\n\n" + draw(entities(depth + 1))
    if kind == "message/delivery-status":
        blocks = draw(st.lists(st.lists(st.sampled_from([
            b"Reporting-MTA: dns; mx.example.com", b"Final-Recipient: rfc822; user@example.org",
            b"Action: failed", b"Status: 5.1.1", b"Diagnostic-Code: smtp; 550 unknown", b" folded",
            b"not a field", b"",
        ]), max_size=4), min_size=1, max_size=3))
        return head + b"Content-Type: message/delivery-status\n\n" + b"\n\n".join(b"\n".join(b) for b in blocks) + b"\n"
    charset = draw(CHARSETS)
    encoding = draw(ENCODINGS)
    head += f"Content-Type: {kind}".encode() + (f"; charset={charset}".encode() if charset else b"") + b"\n"
    if encoding:
        head += f"Content-Transfer-Encoding: {encoding}\n".encode()
    body = b"\n".join(_encode(line) for line in draw(st.lists(BODY_LINES, max_size=5)))
    return head + b"\n" + body + draw(st.sampled_from([b"", b"\n"]))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A whole message, sometimes with junk before its headers, in some line-end style."""
    raw = draw(entities())
    junk = draw(st.sampled_from([b"", b"junk line\n", b"From sender@example.com Mon Jan  1 00:00:00 2024\n",
                                 b"\n", b" leading space\n", b":colon first\n", b"\xff\xfe\n"]))
    return junk + raw


#: How many messages hypothesis makes; ``MIME_EXAMPLES=20000`` for a longer hunt.
EXAMPLES = int(os.environ.get("MIME_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(messages(), st.sampled_from(list(LINE_ENDS)))
@example(b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nno closing boundary\n", "lf")
@example(b"Content-Type: multipart/mixed; boundary=b\n\nno first boundary\n--b--\n", "cr")
@example(b"junk\nSubject: x\n\nbody", "crlf")
@example(b"Subject: \xe9\nContent-Type: message/rfc822\n\nSubject: =?utf-8?b?w6k=?=\n\n\xff", "lf")
def test_made_messages_read_as_compat32_reads_them(raw: bytes, style: str) -> None:
    assert_reads_as_compat32(with_line_ends(raw, style), style)
