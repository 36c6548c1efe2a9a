"""Received bounces: one pipe delivery stored in one transaction (its raw message once, its rows,
their outbox rows), recognised again by :func:`dedup_key` when the MTA delivers it twice.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from bouncefilter.core.record import NAMED, BounceRecord
from bouncefilter.store.db import Writing
from bouncefilter.store.outbox import PENDING
from bouncefilter.store.suppressions import Setting, count_record

#: Header fields our own MX hosts (and their filters) add on the way in, dropped from the
#: digest so that two copies of one bounce are recognised as one.
TRACE_HEADERS = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"received-spf",
    b"authentication-results", b"x-spam-status", b"x-spam-score", b"x-spam-level",
    b"x-spam-flag", b"x-spam-checker-version", b"x-virus-scanned",
})


class Delivery(NamedTuple):
    """One message as the pipe received it (``raw`` at most ``pipe.max_bytes`` octets)."""

    raw: bytes
    received_at: float
    size: int = -1  # octets received, -1 for len(raw)
    truncated: bool = False
    queue_id: str = ""
    mail_from: str = ""
    rcpt_to: str = ""


class Bounce(NamedTuple):
    """One row of the ``bounces`` table before it is stored: the classifier's record
    (the recipient event) and what the pipe learnt around it. ``targets`` are the outbox
    targets to queue if the row is new."""

    record: BounceRecord
    outcome: str
    account: str = ""
    message_key: str = ""
    bounce_address: str = ""
    targets: tuple[str, ...] = ()


#: The columns a row takes from its record, then from the rest of :class:`Bounce`.
_RECORD_COLUMNS = BounceRecord._fields


_BOUNCE_COLUMNS = (*_RECORD_COLUMNS, "outcome", "account", "message_key", "bounce_address")


_DELIVERY_COLUMNS = ("dedup_key", "received_at", "queue_id", "mail_from", "rcpt_to", "raw_id", "truncated")


_INSERT_BOUNCE = (
    f"INSERT INTO bounces ({', '.join(_BOUNCE_COLUMNS + _DELIVERY_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(_BOUNCE_COLUMNS) + len(_DELIVERY_COLUMNS)))})"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)


def message_digest(raw: bytes) -> str:
    """The SHA-256 (hex) that identifies a received message across deliveries.

    The same bounce can reach the pipe more than once: Postfix delivers it again after a
    75, and a remote MTA that lost a connection may hand it to a second MX host. Those
    copies differ only in what our side added on the way in, so the digest covers the
    message with: line ends made LF; a leading mbox ``From `` line dropped; and in the
    top-level header only, every field named in :data:`TRACE_HEADERS` dropped (trace
    fields such as ``Received``, ``Return-Path``, ``Delivered-To``, ``X-Original-To``,
    and the filters' ``Authentication-Results``, ``X-Spam-*`` ...). Everything the remote
    MTA wrote (its Message-ID, Date, the report) stays, so two distinct bounces about one
    recipient never share a digest.
    """
    text = raw.replace(b"\r\n", b"\n")
    if text.startswith(b"From "):
        text = text.partition(b"\n")[2]
    head, blank, body = text.partition(b"\n\n")
    kept = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):
            dropping = line.partition(b":")[0].strip().lower() in TRACE_HEADERS
        if not dropping:
            kept.append(line)
    return hashlib.sha256(b"\n".join(kept) + blank + body).hexdigest()


def dedup_key(digest: str, rcpt_to: str, recipient: str, kind: str) -> str:
    """The key under which one recipient event of a received message is stored once.

    ``digest`` is :func:`message_digest` of the message and ``rcpt_to`` the envelope
    recipient it was delivered to (one message sent to two of our addresses is two
    deliveries: two tokens, or a forged copy of a real bounce). The recipient the record
    is about (case folded) and its kind name the event inside the message, so a DSN
    listing three recipients gives three keys, and a report naming one address twice
    with the same kind gives one. A message with no records (a reply, mail to a bare
    address) has one event with an empty recipient and kind. The order of the records
    is left out on purpose: a newer classifier may list them in another order when
    Postfix delivers the message again.
    """
    text = f"{digest}\0{rcpt_to.strip().strip('<>').lower()}\0{recipient.lower()}\0{kind}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def event_key(row: Bounce) -> str:
    """The key of a counted event: one per sent message, recipient and kind, however many
    bounces report it and however their bytes differ (a second DSN about the same
    recipient, another MTA's copy, a replay); ``""`` for a row that counts for nothing
    (its outcome is not its kind, or its kind names no recipient), which
    :func:`dedup_key` keys by the delivery instead."""
    record = row.record
    if not (row.message_key and record.recipient and row.outcome == record.kind and record.kind in NAMED):
        return ""
    text = f"event\0{row.message_key}\0{record.recipient.lower()}\0{record.kind}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def store_delivery(conn: sqlite3.Connection, delivery: Delivery, rows: Sequence[Bounce],
                   keep_raw: bool = True, suppressing: Mapping[str, Setting] | None = None) -> list[int | None]:
    """Store a received message and its rows in one transaction; the new rows' ids.

    The raw message is stored once per digest (not at all without ``keep_raw``: the rows
    then name none); each row whose :func:`dedup_key` is
    already stored is skipped (its place in the returned list is ``None``), and a new
    row gets one ``pending`` outbox row per target, due at once. Either all of it is
    committed or none (a ``sqlite3.Error`` is raised after the rollback).

    A new counted event (:func:`event_key`: a verified token, an address the message was
    sent to, once per message, recipient and kind) of an account in ``suppressing`` is
    counted towards suppressing its address (:func:`~bouncefilter.store.suppressions.count_record`)
    in the same transaction, so a bounce delivered twice never counts twice.
    """
    digest = message_digest(delivery.raw)
    size = len(delivery.raw) if delivery.size < 0 else delivery.size
    envelope = tuple(_storable(text) for text in (delivery.queue_id, delivery.mail_from, delivery.rcpt_to))
    ids: list[int | None] = []
    with Writing(conn):
        raw_id = _raw_id(conn, digest, delivery, size) if keep_raw else None
        for row in rows:
            values = (*(_storable(getattr(row.record, name)) for name in _RECORD_COLUMNS),
                      row.outcome, row.account, row.message_key, row.bounce_address)
            event = event_key(row)
            key = event or dedup_key(digest, delivery.rcpt_to, row.record.recipient, row.record.kind)
            stored = conn.execute(_INSERT_BOUNCE, (*values, key, delivery.received_at, *envelope, raw_id,
                                                   int(delivery.truncated))).fetchone()
            ids.append(stored[0] if stored else None)
            if stored and event and suppressing and row.account in suppressing:
                record = row.record
                count_record(conn, row.account, record.recipient, stored[0], record.kind, record.reason, record.hard,
                             delivery.received_at, suppressing[row.account])
            for target in row.targets if stored else ():
                conn.execute(
                    "INSERT INTO outbox (bounce_id, target, state, due_at, queued_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (bounce_id, target) DO NOTHING",
                    (stored[0], target, PENDING, delivery.received_at, delivery.received_at),
                )
    return ids


def _storable(value: object) -> object:
    """``value``, with a string that UTF-8 cannot hold (lone surrogates from undecodable
    bytes in a header or an argument) made storable: each such character becomes ``?``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _raw_id(conn: sqlite3.Connection, digest: str, delivery: Delivery, size: int) -> int:
    """The id of the stored raw message with ``digest``, storing it first if it is new."""
    row = conn.execute(
        "INSERT INTO raw_messages (sha256, received_at, size, truncated, data) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (sha256) DO NOTHING RETURNING id",
        (digest, delivery.received_at, size, int(delivery.truncated), zlib.compress(delivery.raw, 6)),
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM raw_messages WHERE sha256 = ?", (digest,)).fetchone()
    return int(row[0])


def message_rows(conn: sqlite3.Connection, message_key: str) -> int:
    """How many rows are stored about the sent message ``message_key``."""
    return int(conn.execute("SELECT count(*) FROM bounces WHERE message_key = ?", (message_key,)).fetchone()[0])


def raw_message(conn: sqlite3.Connection, raw_id: int) -> bytes | None:
    """The stored raw message with this id (decompressed), or ``None`` (purged, unknown)."""
    row = conn.execute("SELECT data FROM raw_messages WHERE id = ?", (raw_id,)).fetchone()
    return None if row is None else zlib.decompress(row[0])
