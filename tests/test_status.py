"""RFC 3463 status codes and SMTP reply codes found in diagnostic text."""

from __future__ import annotations

import time

import pytest

from bouncefilter.classify.status import find_replycode, find_status, klass, normalize


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("550 5.1.1 <a@example.com>: Recipient address rejected", "5.1.1"),
        ("550-5.7.1 [192.0.2.1 13] Messages with multiple addresses", "5.7.1"),
        ("550 #5.1.0 Address rejected.", "5.1.0"),
        # The remote's own pair beats the reporting MTA's summary code.
        ("5.1.0 - Unknown address error 550-'5.2.2 <a@example.jp>... Mailbox Full'", "5.2.2"),
        ("220-mx 421 4.2.1 Service refused, please try later.", "4.2.1"),
        # X.0.0 gives way to a specific code later on.
        ("554 5.0.0 Service unavailable; 550 5.1.1 user unknown", "5.1.1"),
        ("451 4.0.0 Temporary failure", "4.0.0"),
        # Not status codes: versions, addresses, IPs, out-of-range subjects.
        ("Exim 4.96.2 said no", ""),
        ("host 192.0.2.1 said no", ""),
        ("version 5.10.2 of the filter", ""),
        ("5.9.1 is no subject", ""),
        ("", ""),
        ("550 5.4.312 Message expired, DNS query failed", "5.4.312"),
        ("Sorry, I couldn't find any host named example.net. (#5.1.2)", "5.1.2"),
    ],
)
def test_find_status(text: str, status: str) -> None:
    assert find_status(text) == status


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("550 5.1.1 user unknown", "550"),
        ("host mx.example.net[192.0.2.1] said: 452 4.2.2 Mailbox full", "452"),
        ("Remote host said: 554 delivery error", "554"),
        ("220-laposte 421 4.2.1 Service refuse.", "421"),
        ("550-5.7.26 Unauthenticated email 550-5.7.26 is not accepted", "550"),
        ("smtp; 250 2.0.0 Ok: queued as 41A7C9F0012", "250"),
        ("mailbox is full: retry timeout exceeded", ""),
        ("port 25 of 192.0.2.240 failed", ""),
        ("X-Unix; 255", ""),
    ],
)
def test_find_replycode(text: str, code: str) -> None:
    assert find_replycode(text) == code


@pytest.mark.parametrize(
    ("value", "status"),
    [("5.1.1", "5.1.1"), ("5.0.0 (permanent failure)", "5.0.0"), ("4.4.7", "4.4.7"), ("", ""), ("failed", "")],
)
def test_normalize_a_status_field(value: str, status: str) -> None:
    assert normalize(value) == status


def test_class() -> None:
    assert klass("5.1.1") == "5"
    assert klass("") == ""


def test_bounded_time_on_hostile_text() -> None:
    hostile = "5." * 20000 + "550-" * 20000 + "5.5.5." * 5000
    started = time.perf_counter()
    find_status(hostile)
    find_replycode(hostile)
    assert time.perf_counter() - started < 1.0
