"""Hostile input: the classifier always answers, never raises, and answers in bounded time.

Random bytes, mutated fixture messages (truncated at many points, bytes flipped) and
message-shaped noise must all give a well-formed :class:`Classification`. Pathological
inputs (a 25 MB attachment, 100,000 lines of address-like or code-like tokens, very long
lines, deep nesting) must each be classified within a loose time bound: the bound catches
a runaway regular expression or a quadratic loop, not a slow machine. Speed targets are
measured in ``bench/``, not here.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bouncefilter.classify.pipeline import classify
from bouncefilter.core.reason import Reason
from bouncefilter.core.record import Classification, Kind

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE_PATHS = [path for path in sorted(FIXTURES.glob("*/*.eml")) if path.stat().st_size]
SAMPLES = [path.read_bytes() for path in SAMPLE_PATHS]
OUTCOMES = {"bounce", "complaint", "autoreply", "challenge", "unknown"}
#: Seconds any one pathological message may take; generous on purpose.
TIME_BOUND = 2.0
#: How many cut points each fixture is truncated at.
CUTS = 48

FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def well_formed(result: Classification) -> None:
    """Fail unless ``result`` is a consistent classification."""
    assert isinstance(result, Classification)
    assert result.outcome in OUTCOMES
    assert (result.outcome == "unknown") == (not result.records)
    for record in result.records:
        assert record.kind in set(Kind)
        assert record.reason in set(Reason)
        assert isinstance(record.hard, bool)
        assert isinstance(record.recipient, str)


@FUZZ
@given(st.binary(max_size=8192))
def test_random_bytes(raw: bytes) -> None:
    well_formed(classify(raw))


#: Pieces messages are made of: header lines, boundaries, report fields, bounce words.
PIECES = [
    b"From: MAILER-DAEMON@mx.example.com\n", b"From: Postmaster <postmaster@example.net>\n",
    b"Subject: Undelivered Mail Returned to Sender\n", b"Subject: Automatic reply: x\n",
    b"Subject: Re: Undeliverable: hello\n", b"Auto-Submitted: auto-replied\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n",
    b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n",
    b"Content-Type: multipart/mixed; boundary=\"b\"\n", b"Content-Type: message/rfc822\n",
    b"Content-Type: message/delivery-status\n", b"Content-Type: message/feedback-report\n",
    b"Content-Type: text/rfc822-headers\n", b"Content-Type: text/plain; charset=x-none\n",
    b"Content-Type: text/html\n", b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n", b"\n", b"--b\n", b"--b--\n",
    b"Final-Recipient: rfc822; user@example.org\n", b"Original-Recipient: rfc822;<>\n",
    b"Action: failed\n", b"Action: delayed\n", b"Status: 5.1.1\n", b"Status: 4.\n",
    b"Diagnostic-Code: smtp; 550 5.1.1 <user@example.org>: User unknown\n", b"  folded\n",
    b"Feedback-Type: abuse\n", b"Original-Rcpt-To: <a@example.org>\n",
    b"X-Bouncefilter-Token: abc123\n", b"Message-ID: <id@example.com>\n",
    b"<user@example.org>: host mx.example.org said: 550 5.1.1 unknown\n",
    b"user@example.org\n", b"could not be delivered\n", b"=?utf-8?b?w6k=?=\n",
    b"=?iso-2022-jp?b?GyRC?=\n", b"\xff\xfe\x00", b"@@@@", b"5.5.5.5", b"<<<<", b"\r", b"\r\n",
]


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=60))
def test_message_shaped_noise(pieces: list[bytes]) -> None:
    well_formed(classify(b"".join(pieces)))


@FUZZ
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=16),
)
def test_flipped_bytes(raw: bytes, flips: list[tuple[float, int]]) -> None:
    data = bytearray(raw)
    for where, value in flips:
        data[int(where * len(data))] = value
    well_formed(classify(bytes(data)))


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_truncated_fixtures(path: Path) -> None:
    raw = path.read_bytes()
    step = max(1, len(raw) // CUTS)
    for cut in range(0, len(raw), step):
        well_formed(classify(raw[:cut]))


BOUNCE_HEADERS = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\n"
    b"To: b+t0k3n@bounces.example.com\n"
    b"Subject: Undelivered Mail Returned to Sender\n"
)
LINES = 100_000


def _text_bounce(body: bytes) -> bytes:
    return BOUNCE_HEADERS + b"\nThis message could not be delivered.\n\n" + body


def _report(body: bytes) -> bytes:
    return BOUNCE_HEADERS + (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\n" + body + b"\n--b\nContent-Type: message/delivery-status\n\n"
        b"Final-Recipient: rfc822; " + body[:200_000] + b"\nAction: failed\n\n--b--\n"
    )


def _nested(depth: int) -> bytes:
    opening = b"".join(b"--n%d\nContent-Type: multipart/mixed; boundary=n%d\n\n" % (i, i + 1) for i in range(depth))
    return BOUNCE_HEADERS + b"Content-Type: multipart/mixed; boundary=n0\n\n" + opening


def _attachment(megabytes: int) -> bytes:
    blob = base64.encodebytes(bytes(range(256)) * (megabytes * 3 * 1024))
    return BOUNCE_HEADERS + (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
        b"<user@example.org>: 550 5.1.1 user unknown\n\n--b\n"
        b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + blob + b"--b--\n"
    )


PATHOLOGICAL = {
    "attachment-25mb": lambda: _attachment(25),
    "at-signs": lambda: _text_bounce(b"@@@@@@@@@@\n" * LINES),
    "dotted-codes": lambda: _text_bounce(b"5.5.5.5.5.5.5.5.5.5\n" * LINES),
    "angle-brackets": lambda: _text_bounce(b"<<<<<<<<<<<<<<<<\n" * LINES),
    "address-tokens": lambda: _text_bounce(b"<u@example.org>: 550 5.1.1 a@b.example.com c@d\n" * LINES),
    "address-paragraphs": lambda: _text_bounce(b"u@example.org\n\n" * LINES),
    "long-line-at": lambda: _text_bounce(b"a@" * 2_000_000),
    "long-line-dots": lambda: _text_bounce(b"a.b." * 1_000_000 + b"@example.org"),
    "long-line-spaces": lambda: _text_bounce(b" " * 5_000_000 + b"user@example.org"),
    "long-header": lambda: b"Subject: " + b"Undelivered " * 200_000 + b"\n\nbody",
    "many-headers": lambda: b"".join(b"X-H%d: v\n" % i for i in range(LINES)) + b"\nbody",
    "folded-header": lambda: b"Subject: x\n" + b" undelivered\n" * LINES + b"\nbody",
    "report-at-signs": lambda: _report(b"@" * 1_000_000),
    "report-colons": lambda: _report(b":" * 1_000_000),
    "report-recipients": lambda: _report(b"Final-Recipient: rfc822; a@b.example.com\nAction: failed\n\n" * 20_000),
    "html-tags": lambda: BOUNCE_HEADERS + b"Content-Type: text/html\n\n" + b"<p " * 300_000 + b"<style>" * 10_000,
    "nested-200": lambda: _nested(200),
    "nested-5000": lambda: _nested(5000),
    "nested-messages": lambda: b"Content-Type: message/rfc822\n\n" * 5000,
    "many-parts": lambda: BOUNCE_HEADERS + b"Content-Type: multipart/mixed; boundary=b\n\n"
    + b"--b\nContent-Type: text/plain\n\nuser@example.org: 550 5.1.1\n" * 20_000 + b"--b--\n",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_is_bounded(name: str) -> None:
    raw = PATHOLOGICAL[name]()
    for variant in (raw, raw.replace(b"\n", b"\r\n")):
        started = time.perf_counter()
        result = classify(variant)
        elapsed = time.perf_counter() - started
        well_formed(result)
        assert elapsed < TIME_BOUND, f"{name}: {elapsed:.2f} s"


def test_a_charset_name_with_a_nul_byte_costs_no_parser() -> None:
    """Found by fuzzing: a NUL in a text part's charset made every parser that reads the
    text raise (``codecs.lookup`` raises ValueError for it), and the bounce was lost."""
    raw = (b"From: MAILER-DAEMON@mx.example.com\nSubject: Undelivered Mail Returned to Sender\n"
           b'Content-Type: text/plain; charset="utf\x008"\n\n'
           b"<user@example.org>: host mx.example.org said: 550 5.1.1 user unknown\n")
    result = classify(raw)
    well_formed(result)
    assert result.outcome == "bounce"


@pytest.mark.parser_bug_expected
def test_a_bug_while_completing_records_gives_unknown(
    monkeypatch: pytest.MonkeyPatch, parser_bugs: list[logging.LogRecord]
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a bug in the reason rules")

    monkeypatch.setattr("bouncefilter.classify.reasons.decide", broken)
    result = classify((FIXTURES / "autoreply" / "postfix-dsn-auto-submitted.eml").read_bytes())
    well_formed(result)
    assert result.outcome == "unknown"
    (logged,) = parser_bugs
    assert logged.getMessage() == "could not complete the findings of parser dsn"
    assert logged.exc_info is not None and str(logged.exc_info[1]) == "a bug in the reason rules"
