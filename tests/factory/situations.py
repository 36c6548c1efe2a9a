"""The factory's situations: what the remote side does to one recipient, and what it means.

Each :class:`Situation` is one message with one recipient, ``NAME@DOMAIN``. The peer
(:mod:`factory.peer`) answers that recipient as the situation says, at ``RCPT TO`` or at
the end of ``DATA``; a few situations instead live in the name server or the network
(a domain that does not exist, a host that never speaks, a closed port). The MTA under
test then writes its own bounce, and the bounce must classify as :attr:`Situation.reason`
with :attr:`Situation.hard`: ground truth by construction.

How the expectation is decided, the same way for every MTA:

- A permanent (5xx) reply stands for the reason its words and status give, in sisimai's
  taxonomy; ``hard`` is true only for userunknown and hostunknown with a 5.x status.
- A temporary (4xx) reply that the MTA retries until it gives up keeps its meaning when
  its words name one: a full mailbox is still ``mailboxfull``, a rate limit ``speeding``,
  too many connections ``toomanyconn`` (never hard: the address was never found bad).
- When the MTA gave up after temporary failures whose words name no reason (greylisting,
  a host that takes the connection and never answers), the reason is ``expired``:
  sisimai defines it as "delivery time has expired due to connection failure or network
  error", which is what happened, and the session was made each time.
- When no connection could be made at all (connection refused), the words name a network
  failure: ``networkerror``, sisimai's "SMTP connection failed due to DNS look up failure
  or other network problems".
- A delay notice for a temporary situation stands for the same reason as the bounce
  that follows it, with kind ``delay`` and never hard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Where the peer gives the situation's reply.
Stage = Literal["rcpt", "data", "network"]

#: The domain whose exchanger is the ordinary peer (answers by recipient local part).
PEER_DOMAIN = "peer.example.test"
#: Its exchanger advertises a small SIZE limit in EHLO.
SMALL_DOMAIN = "small.example.test"
#: Its exchanger is a peer of its own address: a 421 there (which ends the session and may
#: make an MTA wait before it tries that host again) holds up no other situation.
BUSY_DOMAIN = "busy.example.test"
#: Its exchanger accepts the TCP connection and never says a word.
SILENT_DOMAIN = "silent.example.test"
#: Its exchanger's address has nothing listening: connection refused.
CLOSED_DOMAIN = "closed.example.test"
#: Does not exist in DNS (NXDOMAIN).
NXDOMAIN_DOMAIN = "nxdomain.example.test"
#: Exists in DNS with no MX and no address record.
NOMX_DOMAIN = "nomx.example.test"
#: Where bounces go: the envelope senders' domain, whose exchanger is the peer.
RETURN_DOMAIN = "return.example.test"

#: The SIZE the small exchanger advertises, and the size of the messages sent there.
SMALL_LIMIT = 10_000
BIG_MESSAGE = 40_000

GMAIL_UNAUTHENTICATED = (
    "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\r\n"
    "550-5.7.26 sender and Gmail users, and has been blocked. The sender must\r\n"
    "550-5.7.26 authenticate with at least one of SPF or DKIM. For this message,\r\n"
    "550-5.7.26 DKIM checks did not pass and SPF check for [return.example.test]\r\n"
    "550-5.7.26 did not pass with ip: [127.0.0.1]. The sender should visit\r\n"
    "550 5.7.26 https://support.example.com/mail/answer/81126 for instructions."
)


@dataclass(frozen=True)
class Situation:
    """One recipient's fate. ``reply`` is the peer's full SMTP reply at ``stage``
    (CRLF between the lines of a multi-line reply); empty for ``network`` situations.
    ``temporary``: the MTA must retry until it gives up (and may send a delay notice
    first). ``size``: the message body's size in octets."""

    name: str
    stage: Stage
    reply: str
    reason: str
    hard: bool
    why: str
    domain: str = PEER_DOMAIN
    temporary: bool = False
    size: int = 200

    @property
    def recipient(self) -> str:
        """The one envelope recipient of this situation's message."""
        return f"{self.name}@{self.domain}"


@dataclass(frozen=True)
class Expectation:
    """What one MTA's notices for one situation must classify as: the final bounce's
    ``reason`` and ``hard``; ``delay_reason`` for the delay notice that comes first, or
    ``None`` when none is expected; ``delay_also``, reasons the delay notice may stand for
    instead when the MTA does not always pass the remote's words on; ``note`` says why it
    differs from the situation's."""

    reason: str
    hard: bool
    delay_reason: str | None = None
    note: str = ""
    delay_also: tuple[str, ...] = ()


SITUATIONS: tuple[Situation, ...] = (
    Situation(
        "userunknown", "rcpt", "550 5.1.1 <userunknown@peer.example.test>: Recipient address rejected: User unknown",
        "userunknown", True, "the mailbox does not exist, refused at RCPT with 5.1.1",
    ),
    Situation(
        "nosuchdomain", "rcpt", "550 5.1.2 <nosuchdomain@peer.example.test>: Domain not found",
        "hostunknown", True, "the remote says the recipient's domain does not exist (5.1.2)",
    ),
    Situation(
        "mailboxfull", "rcpt", "552 5.2.2 <mailboxfull@peer.example.test>: Mailbox full, quota exceeded",
        "mailboxfull", False, "over quota, said permanently (552 5.2.2)",
    ),
    Situation(
        "suspend", "rcpt", "550 5.2.1 <suspend@peer.example.test>: This account has been disabled",
        "suspend", False, "the mailbox exists but is disabled (5.2.1)",
    ),
    Situation(
        "blocked", "rcpt",
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using dnsbl.example.com",
        "blocked", False, "our sending IP is on a DNS blocklist: the client is refused, not the address",
    ),
    Situation(
        "spamdetected", "data", "550 5.7.1 Message rejected as spam by content filter",
        "spamdetected", False, "the content was judged spam at end of DATA",
    ),
    Situation(
        "mesgtoobig", "data", "552 5.3.4 Message size exceeds fixed maximum message size",
        "mesgtoobig", False, "refused at end of DATA for its size (5.3.4)", size=BIG_MESSAGE,
    ),
    Situation(
        "sizelimit", "network", "", "mesgtoobig", False,
        "the exchanger advertises SIZE 10000 in EHLO and the message is 40000 octets: the MTA "
        "honours the limit (or the peer refuses the SIZE= or the data)",
        domain=SMALL_DOMAIN, size=BIG_MESSAGE,
    ),
    Situation(
        "authfailure", "data", GMAIL_UNAUTHENTICATED, "authfailure", False,
        "neither SPF nor DKIM passed, worded as Gmail words it (5.7.26)",
    ),
    Situation(
        "norelaying", "rcpt", "550 5.7.1 <norelaying@peer.example.test>: Relaying denied",
        "norelaying", False, "the host is not a relay for that domain",
    ),
    Situation(
        "virusdetected", "data", "554 5.7.1 Message rejected: virus found in attachment (Eicar-Test-Signature)",
        "virusdetected", False, "a virus scanner refused the content at end of DATA",
    ),
    Situation(
        "speeding", "rcpt",
        "450 4.7.1 <speeding@peer.example.test>: Rate limit exceeded, too many messages, slow down",
        "speeding", False, "a sending rate limit, retried until the MTA gave up: the words keep their meaning",
        temporary=True,
    ),
    Situation(
        "toomanyconn", "rcpt", "421 4.7.0 Too many concurrent SMTP connections from this IP address, try again later",
        "toomanyconn", False, "a connection limit (421 closes the session), retried until give-up",
        domain=BUSY_DOMAIN, temporary=True,
    ),
    Situation(
        "greylisted", "rcpt", "451 4.7.1 <greylisted@peer.example.test>: Recipient address rejected: Greylisted, please try again later",
        "expired", False, "greylisting until the MTA gave up: no verdict on anything, the message expired in the queue",
        temporary=True,
    ),
    Situation(
        "mailboxfull-temp", "rcpt", "452 4.2.2 <mailboxfull-temp@peer.example.test>: Mailbox full, try again later",
        "mailboxfull", False, "a temporarily full mailbox, retried until give-up: still a full mailbox",
        temporary=True,
    ),
    Situation(
        "timeout", "network", "", "expired", False,
        "the exchanger accepts the connection and never greets: the MTA times out, retries, gives up",
        domain=SILENT_DOMAIN, temporary=True,
    ),
    Situation(
        "refused", "network", "", "networkerror", False,
        "nothing listens on the exchanger's address: the connection itself fails (refused) until "
        "the MTA gives up; the words name a network failure, sisimai's networkerror",
        domain=CLOSED_DOMAIN, temporary=True,
    ),
    Situation(
        "nxdomain", "network", "", "hostunknown", True,
        "the recipient's domain does not exist in DNS (NXDOMAIN): a permanent failure of the address",
        domain=NXDOMAIN_DOMAIN,
    ),
    Situation(
        "nomx", "network", "", "hostunknown", True,
        "the domain exists but has neither MX nor address records: nowhere to deliver, permanently",
        domain=NOMX_DOMAIN,
    ),
)

BY_NAME: dict[str, Situation] = {situation.name: situation for situation in SITUATIONS}
BY_RECIPIENT: dict[str, Situation] = {situation.recipient: situation for situation in SITUATIONS}


def sender(mta: str, situation: Situation) -> str:
    """The envelope sender of ``mta``'s message for ``situation``: its bounce comes back here."""
    return f"{mta}+{situation.name}@{RETURN_DOMAIN}"


def parse_sender(address: str) -> tuple[str, str] | None:
    """``(mta, situation name)`` from an address made by :func:`sender`, else ``None``."""
    local, _, domain = address.lower().rpartition("@")
    mta, plus, name = local.partition("+")
    if domain != RETURN_DOMAIN or not plus or name not in BY_NAME:
        return None
    return mta, name
