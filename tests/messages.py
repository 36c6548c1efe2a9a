"""Messages the pipe receives, made to order for the pipe and store tests.

Each function returns the bytes of one message as the MTA that writes it would, with
the VERP address, recipient and IDs given, so tests can make thousands of distinct ones.
"""

from __future__ import annotations

import secrets
from datetime import date

from bouncefilter.core import verp

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"
DOMAIN = "bounces.example.com"


def token(message_key: bytes | None = None, issued: date | None = None, key: str = KEY) -> str:
    """A token signed with ``key`` (default: the tests' key), issued ``issued`` (today)."""
    return verp.make_token(message_key or secrets.token_bytes(verp.KEY_BYTES), issued or date.today(), key.encode())


def address(token_: str) -> str:
    return verp.address("b", DOMAIN, token_)


def postfix_dsn(token_: str, recipient: str = "nobody@example.net", queue_id: str = "4Vq4Zx6Pt8z",
                status: str = "5.1.1", message_id: str = "<order-1@shop.example.com>",
                diagnostic: str = "550 5.1.1 <{r}>: Recipient address rejected: User unknown") -> bytes:
    """A Postfix non-delivery report (or delay notice for a 4.x.x status) to the VERP address."""
    text = diagnostic.format(r=recipient)
    action = "delayed" if status.startswith("4") else "failed"
    subject = "Delayed Mail (still being retried)" if action == "delayed" else "Undelivered Mail Returned to Sender"
    return f"""\
Return-Path: <>
Received: by mx.example.test (Postfix) id {queue_id}; Thu, 16 May 2024 06:02:31 +0000 (UTC)
Date: Thu, 16 May 2024 06:02:31 +0000 (UTC)
From: MAILER-DAEMON@mx.example.test (Mail Delivery System)
Subject: {subject}
To: {address(token_)}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="{queue_id}.1715839351/mx.example.test"
Message-Id: <20240516060231.{queue_id}@mx.example.test>

This is a MIME-encapsulated message.

--{queue_id}.1715839351/mx.example.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.net[192.0.2.1] said: {text} (in reply to RCPT TO command)

--{queue_id}.1715839351/mx.example.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test
X-Postfix-Queue-ID: {queue_id}
X-Postfix-Sender: rfc822; {address(token_)}
Arrival-Date: Thu, 16 May 2024 06:02:30 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; {text}

--{queue_id}.1715839351/mx.example.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{address(token_)}>
From: Shop <orders@shop.example.com>
To: {recipient}
Subject: Your order
Message-ID: {message_id}
X-Bouncefilter-Token: {token_}

--{queue_id}.1715839351/mx.example.test--
""".encode()


def arf(token_: str, recipient: str = "reader@example.net") -> bytes:
    """An ARF abuse report about a message carrying ``token_`` in its tracking header."""
    return f"""\
From: <fbl@fbl.example.net>
To: <fbl@{DOMAIN}>
Subject: Abuse Report
Date: Thu, 16 May 2024 06:02:30 +0000
Message-ID: <{token_[:8]}.arf@fbl.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain; charset="us-ascii"

This is an email abuse report for a message received from IP 192.0.2.27.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: {recipient}
Source-IP: 192.0.2.27

--ARF
Content-Type: text/rfc822-headers

Return-Path: <{address(token_)}>
From: Shop <orders@shop.example.com>
To: {recipient}
Subject: Weekly offers
Message-ID: <offers-7@shop.example.com>
X-Bouncefilter-Token: {token_}

--ARF--
""".encode()


def vacation(token_: str, sender: str = "holiday@example.net") -> bytes:
    """An RFC 3834 out-of-office answer sent to the VERP address."""
    return f"""\
From: Pat <{sender}>
To: {address(token_)}
Subject: Out of office: Your order
Date: Thu, 16 May 2024 06:02:30 +0000
Message-ID: <ooo-{token_[:8]}@example.net>
Auto-Submitted: auto-replied
Precedence: bulk
X-Autoreply: yes

I am away until June 3rd and will read your message when I am back.
""".encode()


def challenge(token_: str, sender: str = "guarded@example.net") -> bytes:
    """A challenge/response request sent to the VERP address: the mail waits for proof
    that a person sent it."""
    return f"""\
From: Guarded <{sender}>
To: {address(token_)}
Subject: Re: Your order (please confirm your message)
Date: Thu, 16 May 2024 06:02:30 +0000
Message-ID: <challenge-{token_[:8]}@example.net>
Auto-Submitted: auto-replied

I protect my mailbox with a challenge-response filter. Your message is held until you
confirm that you are a human: please reply to this message and it will be delivered.
""".encode()


def reply(token_: str) -> bytes:
    """A person's answer to the VERP address: not a bounce."""
    return f"""\
From: Someone <someone@example.net>
To: {address(token_)}
Subject: Re: Your order
Date: Thu, 16 May 2024 06:02:30 +0000
Message-ID: <reply-{token_[:8]}@example.net>

Thank you, but where is my parcel?
""".encode()
