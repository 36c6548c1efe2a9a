"""What the milter changes in a message: pure, given what it learnt and the fresh key.

:func:`account_for` decides at MAIL FROM whether a message is an account's (null-sender
mail, mail already in the VERP domain and mail no account claims are left alone);
:func:`changes` decides at end of message what to change:

- tracking on: ``MAIL FROM`` becomes ``PREFIX+TOKEN@VERP_DOMAIN`` (with ``ENVID=TOKEN``
  when the client gave no envelope id), the tracking header carries the token, and the
  message's record names a submitted ``Return-Path:`` header's address as its own bounce
  address;
- tracking off: a submitted ``Return-Path:`` header's address becomes the envelope sender;
- either way every ``Return-Path:`` header goes.

The handler (:mod:`bouncefilter.milter.handler`) applies the result; the key and the
clock are given, so the same facts always give the same changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import NamedTuple, Protocol

from bouncefilter.classify import mime
from bouncefilter.core import accounts, verp
from bouncefilter.core.address import clean_address, domain_of
from bouncefilter.core.record import TRACKING_HEADER, SentMessage

#: Longest Subject or Message-ID recorded, in characters.
MAX_FIELD = 998


class Account(accounts.Matchable, Protocol):
    """What the decision reads of an account (the configuration's ``Account`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def tracking(self) -> bool: ...


class Policy(NamedTuple):
    """What the milter decides with, prepared once from the settings. ``enforce`` maps an
    account's name to its ``suppression.enforce`` (``reject``, ``discard``; an account
    not named is ``off``)."""

    accounts: tuple[Account, ...]
    verp_domain: str = ""
    prefix: str = "b"
    signing_key: bytes = b""
    on_error: str = "accept"
    envid: bool = True
    enforce: Mapping[str, str] = MappingProxyType({})


class Message:
    """What the milter learns about one message of an account, callback by callback."""

    __slots__ = ("account", "sender", "params", "queue_id", "recipients", "message_id", "subject", "return_paths",
                 "failed")

    def __init__(self, account: Account, sender: str, params: Sequence[str] = (), queue_id: str = "") -> None:
        self.account = account
        self.sender = sender
        self.params = tuple(params)
        self.queue_id = queue_id
        self.recipients: list[str] = []
        self.message_id = ""
        self.subject = ""
        self.return_paths: list[str] = []
        self.failed = False

    def read_header(self, name: str, value: str) -> None:
        """Keep what a header says that the milter uses (``name`` in lower case)."""
        if name == "return-path":
            self.return_paths.append(value)
        elif name == "message-id" and not self.message_id:
            self.message_id = mime.decode_value(value)[:MAX_FIELD]
        elif name == "subject" and not self.subject:
            self.subject = mime.decode_value(value)[:MAX_FIELD]


class Changes(NamedTuple):
    """What to do to a message at its end. ``sender`` (with its ESMTP parameters) is the
    new envelope sender, or ``None`` to keep it; ``header`` a header to add; the first
    ``drop_return_paths`` Return-Path headers go; ``sent`` is the record to keep."""

    sender: str | None = None
    esmtp: str | None = None
    header: tuple[str, str] | None = None
    drop_return_paths: int = 0
    sent: SentMessage | None = None


def account_for(policy: Policy, sender: str, login: str) -> Account | None:
    """The account whose message MAIL FROM ``sender`` (a bare address) starts, given the
    SASL ``login``; ``None`` for the null sender, the VERP domain's own mail and mail no
    account claims."""
    if not sender:
        return None
    if policy.verp_domain and domain_of(sender) == policy.verp_domain:
        return None
    return accounts.match(policy.accounts, login, sender)


def enforcement(policy: Policy, account: Account) -> str:
    """What the milter does with ``account``'s suppressed recipients: ``reject``,
    ``discard`` or ``off``."""
    return policy.enforce.get(account.name, "off")


def rejecting(policy: Policy) -> tuple[str, ...]:
    """The accounts whose suppressed recipients are refused at RCPT TO (while one of them
    has a listing, that step must take a reply)."""
    return tuple(name for name, enforce in policy.enforce.items() if enforce == "reject")


def changes(policy: Policy, message: Message, key: bytes, now: float) -> Changes:
    """The changes for ``message`` at its end; ``key`` is the fresh message key (random,
    :data:`verp.KEY_BYTES` long) a tracked message is signed with, ``now`` the time."""
    bounce_address = bounce_address_of(message.return_paths)
    drop = len(message.return_paths)
    if message.account.tracking and policy.verp_domain:
        token = verp.make_token(key, datetime.fromtimestamp(now, timezone.utc).date(), policy.signing_key)
        sent = SentMessage(
            message_key=key.hex(), token=token, account=message.account.name, sent_at=now,
            queue_id=message.queue_id, message_id=message.message_id, subject=message.subject,
            sender=message.sender, bounce_address=bounce_address, recipients=tuple(message.recipients),
        )
        return Changes(f"<{verp.address(policy.prefix, policy.verp_domain, token)}>",
                       esmtp(message.params, token if policy.envid else ""), (TRACKING_HEADER, token), drop, sent)
    if bounce_address and bounce_address.lower() != message.sender.lower():
        return Changes(f"<{bounce_address}>", esmtp(message.params, ""), drop_return_paths=drop)
    return Changes(drop_return_paths=drop)


def bounce_address_of(return_paths: Sequence[str]) -> str:
    """The first address found in the submitted Return-Path headers, or ``""``."""
    for value in return_paths:
        address = clean_address(clean(value))
        if address:
            return address
    return ""


def esmtp(params: Sequence[str], envid: str) -> str | None:
    """The MAIL FROM parameters for ``chgfrom``: the client's RET and ENVID kept, and
    ``ENVID=envid`` added when the client gave none and ``envid`` is set."""
    kept = [p for p in params if p.upper().startswith(("RET=", "ENVID="))]
    if envid and not any(p.upper().startswith("ENVID=") for p in kept):
        kept.append(f"ENVID={envid}")
    return " ".join(kept) or None


def clean(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) replaced: safe to log and store."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
