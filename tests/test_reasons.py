"""The reason taxonomy: diagnostic wordings, statuses and SMTP steps -> reason and hard.

Wordings are the ones MTAs and mailbox providers really write (names changed); each
case says which rule it exercises.
"""

from __future__ import annotations

import re
import time

import pytest

from bouncefilter.classify import phrases, wording
from bouncefilter.classify.dsntext import Notice, command_in
from bouncefilter.classify.reasons import HARD_REASONS, decide, is_hard
from bouncefilter.core.reason import Reason

# (status, diagnostic, reason): the text decides, read in context.
WORDINGS = [
    # A missing mailbox, with the evidence that proves it.
    ("5.1.1", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown in local recipient table", "userunknown"),
    ("5.1.1", "550-5.1.1 The email account that you tried to reach does not exist.", "userunknown"),
    ("5.0.0", "550 <a@example.com>: Recipient address rejected: User unknown", "userunknown"),
    ("5.0.0", "host mx.example.com said: 550 No such user (in reply to RCPT TO command)", "userunknown"),
    ("", "SMTP error from remote mail server after RCPT TO:<a@example.com>: 550 unknown user", "userunknown"),
    ("", "User some.one (a@example.com) not listed in Domino Directory", "userunknown"),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "userunknown"),
    # "User unknown" is trusted when the SMTP step is not known, with addresses,
    # quotes or brackets inside the phrase and the usual nouns.
    ("5.0.0", "550 Unknown user a@example.jp", "userunknown"),
    ("5.2.0", "550 : User unknown", "userunknown"),
    ("5.0.0", "550 User <a@example.jp> unknown", "userunknown"),
    ("5.0.0", 'mailbox "info" does not exist', "userunknown"),
    ("5.0.0", "550 Recipient a@example.jp not found in directory", "userunknown"),
    ("5.0.0", "550 rcpt <a@example.jp> does not exist here", "userunknown"),
    ("5.0.0", "550 The e-mail address [a@example.jp] is invalid", "userunknown"),
    ("5.0.0", "550 Account a@example.jp does not exist", "userunknown"),
    # Refused after the data was sent: the recipient had been accepted, a filter speaks.
    ("5.0.0", "550 Unknown user a@example.jp (in reply to end of DATA command)", "filtered"),
    ("5.2.0", "550 5.2.0 Message Filtered", "filtered"),
    # Refused before any address was sent: about our client, not the recipient.
    ("5.0.0", "Connected to 192.0.2.1 but my name was rejected. 501 5.0.0 Invalid domain name (in reply to HELO)", "blocked"),
    # Refused at MAIL FROM: our sender, not the recipient.
    ("5.1.7", "550 5.1.7 No such domain example.com.", "rejected"),
    ("", "SMTP error from remote mail server after MAIL FROM:<b@example.com>: 553 5.1.0 example.com does not exist", "rejected"),
    ("5.1.8", "501 5.1.8 Sender address rejected", "rejected"),
    ("5.0.0", "554 You're sending this from a different address or alias using the 'Send mail as' feature.", "rejected"),
    # Decisive statuses outrank words.
    ("5.2.2", "552 5.2.2 Over quota", "mailboxfull"),
    ("5.2.3", "552 5.2.3 Message size exceeds fixed maximum message size (10485760)", "exceedlimit"),
    ("5.3.4", "552 5.3.4 Message too large", "mesgtoobig"),
    ("5.7.13", "525 5.7.13 Disabled recipient address", "suspend"),
    ("5.7.25", "550 5.7.25 The IP address sending this message does not have a PTR record", "requireptr"),
    # Domains.
    ("5.1.2", "550 Host unknown (Name server: example.net.: host not found)", "hostunknown"),
    ("5.4.4", "Host or domain name not found. Name service error for name=example.net type=A: Host not found", "hostunknown"),
    ("5.4.4", "Name service error for name=example.net type=MX: Malformed or unexpected name server reply", "networkerror"),
    ("4.0.0", "DNS Error: DNS type 'mx' lookup of example.net responded with code NXDOMAIN Domain name not found", "networkerror"),
    ("", "<a@example.net>: Name service error for domain example.net: Host not found, try again", "networkerror"),
    ("5.0.0", "The domain example.net doesn't receive email according to the administrator: returned Null MX", "notaccept"),
    ("", "<a@example.net>: Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", "notaccept"),
    # The sending side: reputation, DNS, authentication, rate.
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "blocked"),
    ("4.7.1", "450 4.7.1 <h.example.com[192.0.2.1]>: Client host rejected: may not be mail exchanger", "blocked"),
    ("5.0.0", "554 mx.example.com ESMTP not accepting connections", "blocked"),
    ("4.7.1", "450 4.7.1 Access denied. IP name lookup failed [192.0.2.1]", "requireptr"),
    ("5.5.0", "550 domain [example.com] mismatches client ip 192.0.2.1.", "requireptr"),
    ("5.7.26", "550-5.7.26 The MAIL FROM domain has an SPF record with a hard fail policy. To best protect our users from spam", "authfailure"),
    ("5.7.1", "550 5.7.1 Email rejected per DMARC policy for example.com", "authfailure"),
    ("5.7.1", "550-5.7.1 Our system has detected that this message is likely suspicious due to the very low reputation of the sending IP", "badreputation"),
    ("4.7.650", "451 4.7.650 The mail server has been temporarily rate limited due to IP reputation.", "badreputation"),
    ("5.2.1", "550-5.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages", "speeding"),
    ("5.1.1", "550 5.1.1 <a@example.com> - 192.0.2.1 has sent to too many recipients this hour.", "speeding"),
    ("5.0.0", "552 Too many recipients", "toomanyconn"),
    ("5.0.0", "550 Connection frequency limited", "toomanyconn"),
    ("5.7.1", "554 5.7.1 <a@example.com>: Relay access denied", "norelaying"),
    ("5.0.0", "550 Unauthenticated senders not allowed", "securityerror"),
    ("5.0.0", "550-Please turn on SMTP Authentication in your mail client. is not permitted to relay", "securityerror"),
    ("5.0.0", "500 Remote server does not support TLS (state 6).", "failedstarttls"),
    # Content.
    ("5.7.1", "550 5.7.1 Message content rejected, UBE, id=00000-00-000", "spamdetected"),
    ("5.2.0", "550 5.2.0 Mail rejete. Mail rejected. ofr_506 [506]", "spamdetected"),
    ("5.6.0", "554 5.6.0 This message has been scored as spam with a probability of more than 90%", "spamdetected"),
    ("5.0.0", "550 Virus Detected; Content Rejected", "virusdetected"),
    ("5.7.1", "550-5.7.1 Messages with multiple addresses in From: header are not accepted.", "notcompliantrfc"),
    ("5.7.1", "550-5.7.1 This message is not RFC 5322 compliant. To reduce the amount of spam sent", "notcompliantrfc"),
    ("5.6.9", "550 5.6.9 improper use of 8-bit data in message header", "contenterror"),
    ("5.7.9", "554 5.7.9 Message not accepted for policy reasons.", "policyviolation"),
    ("5.0.0", "host mx.example.org said: 550 Protocol violation (in reply to DATA command)", "policyviolation"),
    # The recipient's mailbox and system.
    ("5.0.0", "550 Mailbox is frozen.", "suspend"),
    ("5.7.1", "550 5.7.1 <a@example.com>: Recipient address rejected: User a@example.com temporary locked.", "suspend"),
    ("5.5.0", "550 5.5.0 The recipient account is blocked.", "suspend"),
    ("5.1.6", "550 5.1.6 recipient no longer on server: a@example.com", "hasmoved"),
    ("5.0.0", "551 not our customer", "userunknown"),  # Comcast: the address is not valid
    ("4.4.5", "452 4.4.5 Insufficient disk space; try again later", "systemfull"),
    ("4.0.0", "451 Could not load DRD for domain (example.com)", "systemerror"),
    ("5.1.1", 'procmail: Couldn\'t create "/var/spool/mail/a" No such user', "mailererror"),
    ("5.0.0", "X-Unix; 255", "mailererror"),
    ("4.3.0", "X-Unix; Quota exceeded message delivery failed to /var/mail/a/INBOX", "mailboxfull"),
    # Expiry and the network.
    ("4.4.1", "connect to mx.example.net[192.0.2.1]:25: Connection timed out", "expired"),
    # Sendmail says so when the TCP connection is refused: no policy speaks; the cause
    # outranks the words of giving up, unless the message is said to have expired.
    ("4.4.7", "Deferred: Connection refused by mx.example.net. Message could not be delivered for 5 days", "networkerror"),
    ("5.4.316", "550 5.4.316 Message expired, connection refused", "expired"),
    ("4.4.7", "Deferred: Name server: example.net.: host name lookup failure", "networkerror"),
    ("4.4.2", "lost connection with mx.example.net[192.0.2.1] while performing the HELO handshake", "networkerror"),
    ("5.4.6", "554 5.4.6 Too many hops", "networkerror"),
    ("", "Sorry, I wasn't able to establish an SMTP connection. I'm not going to try again; this message has been in the queue too long.", "networkerror"),
    ("", "unable to connect to remote server: Operation timed out. I'm not going to try again; this message has been in the queue too long.", "expired"),
    ("5.0.0", "504 Command parameter not implemented", "syntaxerror"),
    # Near misses: the broader row must not take these.
    ("5.0.0", "554 Your IP address is blocked", "blocked"),
    ("5.0.0", "550 Your IP is spamhaus listed", "blocked"),
    ("5.0.0", "550 Daily mail quota exceeded for this account", "speeding"),
    ("5.0.0", "550 Sender domain must exist", "rejected"),
    # The words of an address are not the failure's words.
    ("5.0.0", "550 <spam-filtered@example.com>: Recipient address rejected: User unknown", "userunknown"),
]


@pytest.mark.parametrize(("status", "diagnostic", "expected"), WORDINGS, ids=[w[2] + ":" + w[1][:40] for w in WORDINGS])
def test_wording_gives_reason(status: str, diagnostic: str, expected: str) -> None:
    assert decide("bounce", status, diagnostic) == expected


# (kind, status, diagnostic, command, reason): what the words leave open.
FALLBACKS = [
    ("bounce", "5.1.1", "", "", "userunknown"),
    ("bounce", "5.2.1", "", "", "suspend"),
    ("bounce", "5.4.4", "", "", "hostunknown"),
    ("bounce", "5.7.27", "", "", "rejected"),
    ("delay", "4.4.7", "", "", "expired"),
    ("delay", "4.2.1", "", "", "blocked"),
    ("bounce", "5.0.0", "521 5.0.0 mx.example.net", "", "notaccept"),
    ("bounce", "5.0.0", "550 go elsewhere", "CONN", "blocked"),
    ("bounce", "5.0.0", "550 no thanks", "MAIL", "rejected"),
    ("bounce", "4.0.0", "450 4.0.0 Temporary failure", "", "onhold"),
    ("bounce", "5.0.0", "This is the mail system at host mail.example.com.", "", "undefined"),
    ("bounce", "", "", "", "undefined"),
    ("bounce", "5.0.0", "550 Unknown user a@example.net", "RCPT", "userunknown"),
    ("bounce", "5.1.1", "550 5.1.1 <a@example.net>... User Unknown", "DATA", "userunknown"),
    ("bounce", "5.0.0", "550 Unknown user a@example.net", "DATA", "filtered"),
]


@pytest.mark.parametrize(("kind", "status", "diagnostic", "command", "expected"), FALLBACKS)
def test_status_reply_and_command_fill_in(kind: str, status: str, diagnostic: str, command: str, expected: str) -> None:
    assert decide(kind, status, diagnostic, command=command) == expected


@pytest.mark.parametrize(("kind", "reason"), [
    ("complaint", "feedback"), ("autoreply", "vacation"), ("delivered", "delivered"), ("challenge", "challenge"),
])
def test_kind_decides_first(kind: str, reason: str) -> None:
    assert decide(kind, "5.1.1", "550 5.1.1 user unknown", code="ses:mailboxfull") == reason


def test_a_vendors_code_words_outrank_the_text_and_unknown_ones_do_not() -> None:
    assert decide("bounce", "5.1.1", "550 5.1.1 user unknown", code="ses:mailboxfull") == "mailboxfull"
    assert decide("bounce", "5.0.0", "Delivery failed", code="msexch:000c05a6") == "userunknown"
    assert decide("bounce", "5.1.1", "550 5.1.1 user unknown", code="ses:general") == "userunknown"


def test_the_mta_giving_up_is_expired_unless_the_words_say_more() -> None:
    assert decide("bounce", "5.0.0", "I'm not going to try again", expired=True) == "expired"
    assert decide("bounce", "5.0.0", "Connection refused. I'm not going to try again", expired=True) == "networkerror"


@pytest.mark.parametrize(
    ("reason", "status", "hard"),
    [
        ("userunknown", "5.1.1", True),
        ("hostunknown", "5.1.2", True),
        ("hasmoved", "5.1.6", True),
        ("notaccept", "5.1.10", True),
        ("notaccept", "4.0.0", False),
        ("userunknown", "4.1.1", False),
        ("filtered", "5.0.0", False),
        ("blocked", "5.7.1", False),
        ("mailboxfull", "5.2.2", False),
        ("userunknown", "", True),
    ],
)
def test_hard_means_the_address_is_bad_for_good(reason: str, status: str, hard: bool) -> None:
    assert is_hard(reason, status) is hard


def test_every_table_row_names_a_known_reason_and_its_sources() -> None:
    assert {row.reason for row in wording.TABLE} <= set(Reason)
    assert HARD_REASONS <= set(Reason)
    for row in wording.TABLE:
        assert row.sources, f"{row.reason}: a row without a source"
        assert set(row.sources) <= set(wording.SOURCES), f"{row.reason}: unknown sources {row.sources}"


def test_every_wording_is_reachable_through_its_anchors() -> None:
    """A wording whose anchors the scanner cannot see would never be tried."""
    for row in wording.TABLE:
        for pattern in row.wordings:
            anchors = phrases.anchors(pattern)
            assert anchors, f"{row.reason}: {pattern!r} has no anchor"
            compiled = re.compile(phrases.expand(pattern))
            assert compiled.pattern.count("(?:~ )?") == phrases.expand(pattern).count("(?:~ )?")


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("550 5.1.1 <A@Example.COM>: User  Unknown", "550 5.1.1 ~ user unknown"),
        ('mailbox "info" does not exist', "mailbox ~ does not exist"),
        ("user 'info' doesn\u2019t exist", "user ~ doesn't exist"),
        ("host [192.0.2.1] said: 554 [CS01] rejected", "host ~ said: 554 [cs01] rejected"),
        ("Account a@example.jp, does not exist", "account ~ does not exist"),
    ],
)
def test_normalise_replaces_inserted_items(text: str, normalised: str) -> None:
    assert phrases.normalise(text) == normalised


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("550 5.1.1 user unknown (in reply to RCPT TO command)", "RCPT"),
        ("550 unknown user (in reply to end of DATA\n    command)", "DATA"),
        ("SMTP error from remote mail server after MAIL FROM:<a@example.com> SIZE=10:", "MAIL"),
        ("SMTP error from remote mail server after initial connection:", "CONN"),
        ("mx.example.com [192.0.2.1] did not like our RCPT TO: 550 5.1.1", "RCPT"),
        ("SMTP error from remote server for TEXT command, host: mx.example.com", "DATA"),
        ("192.0.2.1 does not like recipient. Remote host said: 550 5.1.1", "RCPT"),
        ("Connected to 192.0.2.1 but my name was rejected.", "HELO"),
        ("SMTP:RCPT host 192.0.2.1: 553 5.3.0 <a@example.com>... No such user here", "RCPT"),
        ("550 user unknown", ""),
    ],
)
def test_command_in_words(text: str, command: str) -> None:
    assert command_in(text) == command


def test_notice_reads_a_transcript_for_the_command() -> None:
    notice = Notice(
        "   ----- Transcript of session follows -----\n"
        "... while talking to mx.example.net.:\n"
        ">>> RCPT To:<a@example.net>\n"
        "<<< 550 5.1.1 <a@example.net>... User unknown\n"
        ">>> DATA\n"
        "<<< 550 5.7.1 <b@example.net>... Message rejected\n"
    )
    assert notice.command("a@example.net") == "RCPT"
    assert notice.command("b@example.net") == "DATA"
    assert notice.command("c@example.net") == ""


def test_notice_notes_stop_at_the_next_recipient_and_skip_quoted_headers() -> None:
    notice = Notice(
        "  To: a@example.net\n\n"
        "<a@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 unknown\n"
        "    (in reply to RCPT TO command)\n"
        "<b@example.net>: host mx.example.net[192.0.2.1] said: 452 4.2.2 full\n\n"
        "Received: from x by y\n  for <a@example.net>; spam\n"
    )
    notes = notice.notes("a@example.net")
    assert notes == "<a@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 unknown (in reply to RCPT TO command)"


def test_the_text_rules_are_fast_and_bounded() -> None:
    """A long hostile diagnostic is classified in bounded time."""
    hostile = ("user " * 2000) + ("a" * 5000) + (" spam@" * 500)
    started = time.perf_counter()
    for _ in range(5):
        decide("bounce", "5.0.0", hostile)
    assert time.perf_counter() - started < 1.0
