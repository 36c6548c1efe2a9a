"""The SQLite store: every read and write of bouncefilter's records goes through here.

One database file, opened in WAL mode with a busy timeout (the milter's threads and
several pipe processes write at once) and ``synchronous = FULL`` (a row committed
before the pipe tells Postfix "delivered" survives a power cut). The schema carries a
version (``PRAGMA user_version``) and moves forward by numbered migrations written in
plain SQL, so a PostgreSQL backend can later take the same statements; SQLite-only
statements (PRAGMA, ``BEGIN IMMEDIATE``) stay in this module.

Tables: ``messages`` (what the milter sent), ``bounces`` (one row per recipient event
the pipe received, whatever its outcome), ``raw_messages`` (each received message once,
zlib-compressed, kept ``retention.raw_days``) and ``outbox`` (what the forwarder must
still hand on; the pipe only inserts). A delivery is stored in one transaction: its raw
message, its rows and their outbox rows, or nothing. Duplicates are recognised by
:func:`dedup_key`. :func:`purge` applies the retention settings.

Everything uses the standard library's ``sqlite3`` and plain SQL: sqlite-utils, once a
dependency, costs 60 to 130 ms to import (measured 2026-12-03) with six packages of its
own, which the pipe would pay on every bounce, and a PostgreSQL backend will speak the
same SQL. People who like it can still query the file with it (README).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from bouncefilter.record import BounceRecord

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

#: Forward migrations: (version reached, SQL). Never edit a released one; append.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS messages (
            message_key    TEXT PRIMARY KEY,   -- the VERP token's random message key (hex)
            token          TEXT NOT NULL,
            account        TEXT NOT NULL,
            queue_id       TEXT NOT NULL DEFAULT '',
            message_id     TEXT NOT NULL DEFAULT '',
            subject        TEXT NOT NULL DEFAULT '',
            sender         TEXT NOT NULL DEFAULT '',   -- the original envelope sender
            bounce_address TEXT NOT NULL DEFAULT '',   -- from a submitted Return-Path header
            recipients     TEXT NOT NULL DEFAULT '[]', -- JSON array
            sent_at        REAL NOT NULL               -- epoch seconds, UTC
        );
        CREATE INDEX IF NOT EXISTS messages_account_sent ON messages (account, sent_at);
        CREATE INDEX IF NOT EXISTS messages_sent ON messages (sent_at);
        """,
    ),
    (
        2,
        """
        CREATE TABLE raw_messages (
            id          INTEGER PRIMARY KEY,
            sha256      TEXT NOT NULL UNIQUE,  -- message_digest(): without our own trace headers
            received_at REAL NOT NULL,
            size        INTEGER NOT NULL,      -- octets as received, before any truncation
            truncated   INTEGER NOT NULL DEFAULT 0,
            data        BLOB NOT NULL          -- zlib of the first pipe.max_bytes octets
        );
        CREATE INDEX raw_messages_received ON raw_messages (received_at);
        CREATE TABLE bounces (
            id                  INTEGER PRIMARY KEY,
            dedup_key           TEXT NOT NULL UNIQUE,
            received_at         REAL NOT NULL,    -- epoch seconds, UTC
            account             TEXT NOT NULL DEFAULT '',
            message_key         TEXT NOT NULL DEFAULT '',
            token               TEXT NOT NULL DEFAULT '',
            outcome             TEXT NOT NULL,
            kind                TEXT NOT NULL DEFAULT '',
            recipient           TEXT NOT NULL DEFAULT '',
            reason              TEXT NOT NULL DEFAULT '',
            hard                INTEGER NOT NULL DEFAULT 0,
            status              TEXT NOT NULL DEFAULT '',
            replycode           TEXT NOT NULL DEFAULT '',
            action              TEXT NOT NULL DEFAULT '',
            diagnostic          TEXT NOT NULL DEFAULT '',
            reporting_mta       TEXT NOT NULL DEFAULT '',
            remote_mta          TEXT NOT NULL DEFAULT '',
            original_recipient  TEXT NOT NULL DEFAULT '',
            feedback_type       TEXT NOT NULL DEFAULT '',
            arrival_date        TEXT NOT NULL DEFAULT '',
            source_ip           TEXT NOT NULL DEFAULT '',
            original_message_id TEXT NOT NULL DEFAULT '',
            subject             TEXT NOT NULL DEFAULT '',
            return_path         TEXT NOT NULL DEFAULT '',
            envelope_sender     TEXT NOT NULL DEFAULT '',  -- the bounced message's sender
            bounce_address      TEXT NOT NULL DEFAULT '',  -- the sent message's own bounce address
            parser              TEXT NOT NULL DEFAULT '',
            mail_from           TEXT NOT NULL DEFAULT '',  -- the bounce's envelope: pipe SENDER
            rcpt_to             TEXT NOT NULL DEFAULT '',  -- and pipe RECIPIENT
            queue_id            TEXT NOT NULL DEFAULT '',
            raw_id              INTEGER REFERENCES raw_messages (id)
        );
        CREATE INDEX bounces_account_received ON bounces (account, received_at);
        CREATE INDEX bounces_received ON bounces (received_at);
        CREATE INDEX bounces_recipient ON bounces (recipient);
        CREATE INDEX bounces_message ON bounces (message_key);
        CREATE TABLE outbox (
            id         INTEGER PRIMARY KEY,
            bounce_id  INTEGER NOT NULL REFERENCES bounces (id),
            target     TEXT NOT NULL,
            state      TEXT NOT NULL DEFAULT 'pending',
            due_at     REAL NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            UNIQUE (bounce_id, target)
        );
        CREATE INDEX outbox_due ON outbox (state, due_at);
        """,
    ),
    (
        3,
        """
        CREATE TABLE api_tokens (
            id         INTEGER PRIMARY KEY,
            key_id     TEXT NOT NULL UNIQUE,  -- the token's public part: looked up, listed, revoked
            sha256     TEXT NOT NULL,         -- of the whole token (the token itself is never stored)
            account    TEXT,                  -- NULL: an admin token, which sees every account
            note       TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX bounces_account_outcome_received ON bounces (account, outcome, received_at);
        """,
    ),
    (
        4,
        """
        ALTER TABLE outbox ADD COLUMN claim TEXT NOT NULL DEFAULT '';  -- the forwarder sending it
        ALTER TABLE outbox ADD COLUMN queued_at REAL NOT NULL DEFAULT 0;  -- forward.max_age counts from here
        ALTER TABLE outbox ADD COLUMN done_at REAL;
        UPDATE outbox SET queued_at = due_at;
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class StoreError(Exception):
    """The database cannot be used as it is (newer schema, not migrated, unreadable)."""


#: An open database, as the other modules hold it: they never run SQL on it themselves.
Connection = sqlite3.Connection
#: What a database that is locked, full or broken raises: callers that must answer for it
#: (the pipe's 75, the CLI's 1) catch this, not sqlite3's names.
DatabaseError = sqlite3.Error
#: What a write raises when it would repeat a unique key (:func:`add_token`).
DuplicateKey = sqlite3.IntegrityError
#: The database is there but cannot serve now (locked past the busy timeout, disk full).
Unavailable = sqlite3.OperationalError


def abandon(conn: sqlite3.Connection) -> None:
    """Roll back the transaction ``conn`` is in, if any (after a failure inside one)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def answers(conn: sqlite3.Connection) -> None:
    """Read the store once, raising :data:`DatabaseError` if it cannot (a health check)."""
    conn.execute("SELECT count(*) FROM api_tokens").fetchone()


class SentMessage(NamedTuple):
    """One outbound message as the milter records it."""

    message_key: str
    token: str
    account: str
    sent_at: float
    queue_id: str = ""
    message_id: str = ""
    subject: str = ""
    sender: str = ""
    bounce_address: str = ""
    recipients: tuple[str, ...] = ()


def connect(path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS, durable: bool = True) -> sqlite3.Connection:
    """Open the database with the settings every writer needs.

    Autocommit mode (``isolation_level=None``): callers open transactions explicitly,
    so no statement holds a lock longer than it must. A writer that finds the database
    locked waits up to ``busy_timeout_ms``, then gets ``sqlite3.OperationalError``.
    ``durable``: every commit waits for the disk (``synchronous = FULL``), so that what
    was acknowledged survives a power cut; otherwise (``NORMAL``) the last commits may
    be lost in a power cut or an OS crash, never in a crash of the process, and the
    database stays consistent.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    return conn


def skip_fsync(conn: sqlite3.Connection) -> None:
    """Let ``conn``'s commits skip the fsync (``synchronous = NORMAL`` in WAL mode): a
    killed process still keeps every commit, only a power cut may lose the last ones.
    For the forwarder, whose lost "done" marks only mean a row is sent again."""
    conn.execute("PRAGMA synchronous = NORMAL")


class Writing:
    """``with Writing(conn):`` a write transaction, taken at once (``BEGIN IMMEDIATE``:
    the busy timeout applies at the start, never half-way), committed at the end, and
    rolled back if anything in it raises, the COMMIT itself included."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            try:
                self._conn.execute("COMMIT")
                return
            except BaseException:
                abandon(self._conn)  # a failed COMMIT may have ended it already
                raise
        abandon(self._conn)


def version(conn: sqlite3.Connection) -> int:
    """The schema version the database is at (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration the database lacks; returns the version reached.

    Raises :class:`StoreError` for a database newer than this program.
    """
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(f"database schema {current} is newer than this bouncefilter ({SCHEMA_VERSION}); upgrade bouncefilter")
    for target, sql in MIGRATIONS:
        if target <= current:
            continue
        with Writing(conn):
            if version(conn) < target:  # another process may have migrated meanwhile
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
        log.info("database migrated to schema %d", target)
    return version(conn)


def ensure_schema(conn: sqlite3.Connection, auto_migrate: bool) -> None:
    """Refuse a database newer than this program; migrate an older one only if allowed."""
    current = version(conn)
    if current == SCHEMA_VERSION:
        return
    if current > SCHEMA_VERSION or not auto_migrate:
        if current > SCHEMA_VERSION:
            raise StoreError(f"database schema {current} is newer than this bouncefilter ({SCHEMA_VERSION})")
        raise StoreError(f"database schema {current} is older than {SCHEMA_VERSION}: run 'bouncefilter db migrate'")
    migrate(conn)


#: Rows in one INSERT of sent messages (10 values each: within SQLite's oldest limit of
#: 999 variables). One statement for many rows lets the milter's writer thread take
#: Python's interpreter lock once per statement, not once per row, from the thread that
#: answers the MTA.
MESSAGE_ROWS = 90
_INSERT_MESSAGES = (
    "INSERT OR IGNORE INTO messages (message_key, token, account, queue_id, message_id, subject,"
    " sender, bounce_address, recipients, sent_at) VALUES "
)
_MESSAGE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def record_messages(conn: sqlite3.Connection, messages: Sequence[SentMessage]) -> None:
    """Store sent messages; a message key already stored (or earlier in ``messages``)
    keeps its first record."""
    for start in range(0, len(messages), MESSAGE_ROWS):
        chunk = messages[start:start + MESSAGE_ROWS]
        values = [value for message in chunk for value in _message_values(message)]
        conn.execute(_INSERT_MESSAGES + ", ".join([_MESSAGE_VALUES] * len(chunk)), values)


def _message_values(message: SentMessage) -> tuple[object, ...]:
    return (
        message.message_key,
        message.token,
        message.account,
        message.queue_id,
        message.message_id,
        message.subject,
        message.sender,
        message.bounce_address,
        json.dumps(list(message.recipients)),
        message.sent_at,
    )


def sent_message(conn: sqlite3.Connection, message_key: str) -> SentMessage | None:
    """The recorded message with this key, or ``None``."""
    row = conn.execute(
        "SELECT message_key, token, account, sent_at, queue_id, message_id, subject, sender,"
        " bounce_address, recipients FROM messages WHERE message_key = ?",
        (message_key,),
    ).fetchone()
    if row is None:
        return None
    *fields, recipients = row
    return SentMessage(*fields, recipients=tuple(json.loads(recipients)))


# -- received bounces ----------------------------------------------------------------

#: Header fields our own MX hosts (and their filters) add on the way in, dropped from the
#: digest so that two copies of one bounce are recognised as one.
TRACE_HEADERS = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"received-spf",
    b"authentication-results", b"x-spam-status", b"x-spam-score", b"x-spam-level",
    b"x-spam-flag", b"x-spam-checker-version", b"x-virus-scanned",
})
#: Outbox states; the pipe writes ``pending`` rows, the forwarder moves them on:
#: ``sending`` (claimed; ``due_at`` is then when the claim lapses), ``done``, ``dead``.
PENDING = "pending"
SENDING = "sending"
DONE = "done"
DEAD = "dead"


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
_DELIVERY_COLUMNS = ("dedup_key", "received_at", "queue_id", "mail_from", "rcpt_to", "raw_id")
_INSERT_BOUNCE = (
    f"INSERT INTO bounces ({', '.join(_BOUNCE_COLUMNS + _DELIVERY_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(_BOUNCE_COLUMNS) + len(_DELIVERY_COLUMNS)))})"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)
#: The columns :func:`bounces` returns, in order.
BOUNCE_COLUMNS = ("id", "received_at", *_BOUNCE_COLUMNS, "queue_id", "mail_from", "rcpt_to", "raw_id")


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


def store_delivery(conn: sqlite3.Connection, delivery: Delivery, rows: Sequence[Bounce]) -> list[int | None]:
    """Store a received message and its rows in one transaction; the new rows' ids.

    The raw message is stored once per digest; each row whose :func:`dedup_key` is
    already stored is skipped (its place in the returned list is ``None``), and a new
    row gets one ``pending`` outbox row per target, due at once. Either all of it is
    committed or none (a ``sqlite3.Error`` is raised after the rollback).
    """
    digest = message_digest(delivery.raw)
    size = len(delivery.raw) if delivery.size < 0 else delivery.size
    envelope = tuple(_storable(text) for text in (delivery.queue_id, delivery.mail_from, delivery.rcpt_to))
    ids: list[int | None] = []
    with Writing(conn):
        raw_id = _raw_id(conn, digest, delivery, size)
        for row in rows:
            values = (*(_storable(getattr(row.record, name)) for name in _RECORD_COLUMNS),
                      row.outcome, row.account, row.message_key, row.bounce_address)
            key = dedup_key(digest, delivery.rcpt_to, row.record.recipient, row.record.kind)
            stored = conn.execute(_INSERT_BOUNCE, (*values, key, delivery.received_at, *envelope, raw_id)).fetchone()
            ids.append(stored[0] if stored else None)
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


def raw_message(conn: sqlite3.Connection, raw_id: int) -> bytes | None:
    """The stored raw message with this id (decompressed), or ``None`` (purged, unknown)."""
    row = conn.execute("SELECT data FROM raw_messages WHERE id = ?", (raw_id,)).fetchone()
    return None if row is None else zlib.decompress(row[0])


def bounces(
    conn: sqlite3.Connection, since: float | None = None, until: float | None = None, account: str | None = None
) -> Iterator[dict[str, object]]:
    """Stored rows received in ``[since, until)`` (epoch seconds), of one account if
    given, oldest first, as dicts keyed by :data:`BOUNCE_COLUMNS` (``hard`` a bool)."""
    for values in _select(conn, BounceQuery(since, until, account), BOUNCE_COLUMNS):
        row = dict(zip(BOUNCE_COLUMNS, values))
        row["hard"] = bool(row["hard"])
        yield row


def _window(column: str, since: float | None, until: float | None, account: str | None) -> tuple[str, list[object]]:
    """A WHERE clause (with its parameters) for a time range on ``column`` and an account."""
    clauses, params = _conditions(
        ((f"{column} >= ?", since), (f"{column} < ?", until), ("account = ?", account)))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _conditions(pairs: Iterable[tuple[str, object]]) -> tuple[list[str], list[object]]:
    """The conditions (each with one ``?``) whose value is not ``None``, and those values."""
    kept = [(condition, value) for condition, value in pairs if value is not None]
    return [condition for condition, _ in kept], [value for _, value in kept]


def outbox(conn: sqlite3.Connection, bounce_id: int) -> list[tuple[str, str]]:
    """The outbox rows of one stored bounce, as (target, state) pairs."""
    return conn.execute("SELECT target, state FROM outbox WHERE bounce_id = ? ORDER BY id", (bounce_id,)).fetchall()


# -- the outbox, as the forwarder works it ----------------------------------------------


class OutboxItem(NamedTuple):
    """One claimed outbox row and what forwarding it needs: the stored bounce row (as
    :func:`bounces` gives it) and the bounced message's original envelope sender."""

    id: int
    target: str
    attempts: int  # this one included
    queued_at: float
    bounce: dict[str, object]
    sender: str = ""
    dedup_key: str = ""


_CLAIM = (
    f"UPDATE outbox SET state = '{SENDING}', claim = ?, due_at = ?, attempts = attempts + 1 WHERE id IN"
    f" (SELECT id FROM outbox WHERE state IN ('{PENDING}', '{SENDING}') AND due_at <= ? ORDER BY due_at LIMIT ?)"
)
_CLAIMED = (
    "SELECT o.id, o.target, o.attempts, o.queued_at, coalesce(m.sender, ''), b.dedup_key, "
    + ", ".join(f"b.{column}" for column in BOUNCE_COLUMNS)
    + " FROM outbox o JOIN bounces b ON b.id = o.bounce_id LEFT JOIN messages m"
    f" ON m.message_key = b.message_key AND b.message_key != '' WHERE o.claim = ? AND o.state = '{SENDING}'"
    " ORDER BY o.due_at, o.id"
)


def claim_due(conn: sqlite3.Connection, claim: str, now: float, lease: float, limit: int) -> list[OutboxItem]:
    """Claim up to ``limit`` rows due at ``now`` for the forwarder ``claim`` (a string no
    other forwarder uses) until ``now + lease``, oldest due first, and return them.

    Due rows are ``pending`` ones whose time has come and ``sending`` ones whose claim
    has lapsed (their forwarder died). Claiming is one write transaction, so two
    forwarders never claim one row at once; each claim counts as an attempt.
    """
    with Writing(conn):
        conn.execute(_CLAIM, (claim, now + lease, now, limit))
    items = []
    for oid, target, attempts, queued_at, sender, key, *values in conn.execute(_CLAIMED, (claim,)):
        bounce = dict(zip(BOUNCE_COLUMNS, values))
        bounce["hard"] = bool(bounce["hard"])
        items.append(OutboxItem(oid, target, attempts, queued_at, bounce, sender, key))
    return items


def extend_claim(conn: sqlite3.Connection, claim: str, until: float) -> None:
    """Keep the rows ``claim`` still holds claimed until ``until``."""
    conn.execute(f"UPDATE outbox SET due_at = ? WHERE claim = ? AND state = '{SENDING}'", (until, claim))


def mark_done(conn: sqlite3.Connection, row_id: int, claim: str, now: float) -> bool:
    """Row ``row_id``, held by ``claim``, was delivered; ``False`` if the claim was lost."""
    return _settle(conn, row_id, claim, f"state = '{DONE}', done_at = ?, last_error = ''", (now,))


def mark_retry(conn: sqlite3.Connection, row_id: int, claim: str, due_at: float, error: str,
               count_attempt: bool = True) -> bool:
    """Row ``row_id`` failed for now: pending again, due at ``due_at``, with ``error``.
    ``count_attempt`` false takes back the attempt its claim counted (it was never
    tried: its target failed on an earlier row)."""
    undo = "" if count_attempt else ", attempts = attempts - 1"
    return _settle(conn, row_id, claim, f"state = '{PENDING}', due_at = ?, last_error = ?{undo}", (due_at, error))


def mark_dead(conn: sqlite3.Connection, row_id: int, claim: str, error: str, count_attempt: bool = True) -> bool:
    """Row ``row_id`` is given up: ``dead``, with ``error``, until an administrator retries
    it (``count_attempt`` as for :func:`mark_retry`)."""
    undo = "" if count_attempt else ", attempts = attempts - 1"
    return _settle(conn, row_id, claim, f"state = '{DEAD}', last_error = ?{undo}", (error,))


def _settle(conn: sqlite3.Connection, row_id: int, claim: str, assignments: str, values: tuple[object, ...]) -> bool:
    cursor = conn.execute(
        f"UPDATE outbox SET {assignments}, claim = '' WHERE id = ? AND claim = ? AND state = '{SENDING}'",
        (*values, row_id, claim),
    )
    return cursor.rowcount == 1


def next_due(conn: sqlite3.Connection) -> float | None:
    """When the next row falls due (pending, or a claim lapses), or ``None`` for an
    empty outbox. Cheap: one look into the ``(state, due_at)`` index."""
    row = conn.execute(f"SELECT min(due_at) FROM outbox WHERE state IN ('{PENDING}', '{SENDING}')").fetchone()
    return row[0]


def dead_letters(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """The given-up rows, oldest first: id, target, attempts, queued_at, last_error and
    their bounce's id, account, recipient and outcome."""
    columns = ("id", "target", "attempts", "queued_at", "last_error", "bounce_id", "account", "recipient", "outcome")
    rows = conn.execute(
        "SELECT o.id, o.target, o.attempts, o.queued_at, o.last_error, b.id, b.account, b.recipient, b.outcome"
        f" FROM outbox o JOIN bounces b ON b.id = o.bounce_id WHERE o.state = '{DEAD}' ORDER BY o.id"
    )
    return [dict(zip(columns, row)) for row in rows]


def retry_dead(conn: sqlite3.Connection, now: float, row_id: int | None = None) -> int:
    """Make row ``row_id`` (``None``: every dead row) pending again, due ``now``, with a
    fresh ``forward.max_age`` and no attempts; the number of rows changed (0 for an id
    that is not dead)."""
    where, params = (" AND id = ?", (row_id,)) if row_id is not None else ("", ())
    with Writing(conn):
        cursor = conn.execute(
            f"UPDATE outbox SET state = '{PENDING}', due_at = ?, queued_at = ?, attempts = 0"
            f" WHERE state = '{DEAD}'{where}",
            (now, now, *params),
        )
    return cursor.rowcount


# -- totals for the report -----------------------------------------------------------


def sent_totals(conn: sqlite3.Connection, since: float | None, until: float | None,
                account: str | None = None) -> dict[str, tuple[int, int]]:
    """Per account (or of ``account`` alone), the messages sent in ``[since, until)`` and
    their recipients."""
    where, params = _window("sent_at", since, until, account)
    rows = conn.execute(
        f"SELECT account, count(*), coalesce(sum(json_array_length(recipients)), 0) FROM messages{where}"
        " GROUP BY account",
        params,
    )
    return {account: (messages, recipients) for account, messages, recipients in rows}


def outcome_totals(conn: sqlite3.Connection, since: float | None, until: float | None,
                   account: str | None = None) -> list[tuple[str, str, bool, int]]:
    """(account, outcome, hard, rows) for the rows received in ``[since, until)`` (of
    ``account`` alone if given)."""
    where, params = _window("received_at", since, until, account)
    rows = conn.execute(f"SELECT account, outcome, hard, count(*) FROM bounces{where} GROUP BY account, outcome, hard",
                        params)
    return [(account, outcome, bool(hard), count) for account, outcome, hard, count in rows]


#: What :func:`top_values` can count: a column, or an expression on one.
_TOP_EXPRESSIONS = {
    "reason": "reason",
    "domain": "lower(substr(recipient, instr(recipient, '@') + 1))",
}


def top_values(conn: sqlite3.Connection, what: str, outcome: str, since: float | None, until: float | None,
               limit: int = 5, account: str | None = None) -> dict[str, list[tuple[str, int]]]:
    """Per account (or of ``account`` alone), the ``limit`` most frequent ``what``
    (``reason`` or ``domain`` of the recipient) among rows of ``outcome`` received in
    ``[since, until)``, most first."""
    expression = _TOP_EXPRESSIONS[what]
    where, params = _window("received_at", since, until, account)
    where = f"{where} AND outcome = ?" if where else " WHERE outcome = ?"
    rows = conn.execute(
        f"SELECT account, value, n FROM (SELECT account, {expression} AS value, count(*) AS n,"
        f" row_number() OVER (PARTITION BY account ORDER BY count(*) DESC, {expression}) AS rank"
        f" FROM bounces{where} GROUP BY account, {expression}) AS counted WHERE rank <= ? ORDER BY account, rank",
        (*params, outcome, limit),
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for account, value, count in rows:
        found.setdefault(account, []).append((value, count))
    return found


def latest_hard_bounces(conn: sqlite3.Connection, since: float | None, until: float | None,
                        limit: int = 5) -> dict[str, list[tuple[float, str, str, str]]]:
    """Per account, the ``limit`` latest hard bounces in ``[since, until)``, newest
    first: (received_at, recipient, reason, status)."""
    found = latest(conn, "hard", since, until, limit)
    return {account: [(row["received_at"], row["recipient"], row["reason"], row["status"]) for row in rows]
            for account, rows in found.items()}  # type: ignore[misc]


#: What :func:`latest` can list.
_LATEST_CONDITIONS = {"hard": "outcome = 'bounce' AND hard = 1", "complaint": "outcome = 'complaint'"}
_LATEST_COLUMNS = ("id", "received_at", "recipient", "reason", "status", "raw_id")


def latest(conn: sqlite3.Connection, what: str, since: float | None, until: float | None, limit: int = 5,
           account: str | None = None) -> dict[str, list[dict[str, object]]]:
    """Per account (or of ``account`` alone), the ``limit`` latest rows received in
    ``[since, until)`` that are ``what`` (``hard`` bounces or ``complaint`` rows), newest
    first, as dicts with id, received_at, recipient, reason, status and raw_id."""
    where, params = _window("received_at", since, until, account)
    condition = _LATEST_CONDITIONS[what]
    where = f"{where} AND {condition}" if where else f" WHERE {condition}"
    columns = ", ".join(_LATEST_COLUMNS)
    rows = conn.execute(
        f"SELECT account, {columns} FROM (SELECT account, {columns}, row_number() OVER"
        " (PARTITION BY account ORDER BY received_at DESC, id DESC) AS rank"
        f" FROM bounces{where}) AS ranked WHERE rank <= ? ORDER BY account, rank",
        (*params, limit),
    )
    found: dict[str, list[dict[str, object]]] = {}
    for account_name, *values in rows:
        found.setdefault(account_name, []).append(dict(zip(_LATEST_COLUMNS, values)))
    return found


def daily_counts(conn: sqlite3.Connection, since: float | None, until: float | None,
                 account: str | None = None) -> dict[str, list[tuple[str, str, int]]]:
    """Per account (or of ``account`` alone), the rows received in ``[since, until)`` per
    UTC day and outcome: (``YYYY-MM-DD``, outcome, rows), oldest day first."""
    where, params = _window("received_at", since, until, account)
    rows = conn.execute(
        "SELECT account, date(received_at, 'unixepoch') AS day, outcome, count(*)"
        f" FROM bounces{where} GROUP BY account, day, outcome ORDER BY account, day, outcome",
        params,
    )
    found: dict[str, list[tuple[str, str, int]]] = {}
    for account_name, day, outcome, count in rows:
        found.setdefault(account_name, []).append((day, outcome, count))
    return found


# -- retention ------------------------------------------------------------------------

#: Rows deleted per transaction, so a purge never holds the write lock for long (pipes
#: wait at most their busy timeout for it).
PURGE_BATCH = 2000


class Purged(NamedTuple):
    """How many rows :func:`purge` deleted, per table (outbox rows go with their bounce)."""

    bounces: int = 0
    raw_messages: int = 0
    messages: int = 0


#: Raw messages older than the cut-off that no pending outbox row still needs.
_OLD_RAW = (
    "SELECT r.id FROM raw_messages r WHERE r.received_at < ? AND NOT EXISTS ("
    " SELECT 1 FROM bounces b JOIN outbox o ON o.bounce_id = b.id"
    f" WHERE b.raw_id = r.id AND o.state IN ('{PENDING}', '{SENDING}')) LIMIT ?"
)


def purge(conn: sqlite3.Connection, now: float, days: int, raw_days: int) -> Purged:
    """Delete bounces (with their outbox rows) and sent messages older than ``days``, and
    raw messages older than ``raw_days``, counted back from ``now`` (epoch seconds).

    A raw message that a pending outbox row still needs (the forwarder re-sends it) is
    kept until that row is done; rows that pointed at a deleted raw message keep
    everything else. Works in batches of :data:`PURGE_BATCH` rows, each its own short
    transaction, so pipes never wait long for it.
    """
    before, raw_before = now - days * 86400, now - raw_days * 86400
    return Purged(
        bounces=_in_batches(
            conn, "SELECT id FROM bounces WHERE received_at < ? LIMIT ?", before,
            ("DELETE FROM outbox WHERE bounce_id = ?", "DELETE FROM bounces WHERE id = ?"),
        ),
        raw_messages=_in_batches(
            conn, _OLD_RAW, raw_before,
            ("UPDATE bounces SET raw_id = NULL WHERE raw_id = ?", "DELETE FROM raw_messages WHERE id = ?"),
        ),
        messages=_in_batches(
            conn, "SELECT message_key FROM messages WHERE sent_at < ? LIMIT ?", before,
            ("DELETE FROM messages WHERE message_key = ?",),
        ),
    )


def _in_batches(conn: sqlite3.Connection, select: str, before: float, statements: Sequence[str]) -> int:
    """Until ``select`` (parameters: cut-off, batch size) finds no more ids, run each of
    ``statements`` for each id found, one transaction per batch; the number of ids."""
    total = 0
    while True:
        with Writing(conn):
            ids = conn.execute(select, (before, PURGE_BATCH)).fetchall()
            for statement in statements:
                conn.executemany(statement, ids)
        total += len(ids)
        if len(ids) < PURGE_BATCH:
            return total


def _statements(sql: str) -> Sequence[str]:
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


# -- reading for the API -----------------------------------------------------------------


class BounceQuery(NamedTuple):
    """Which stored rows to read: received in ``[since, until)`` (epoch seconds), of one
    account (``None``: every account), narrowed by the filters that are not ``None``
    (``recipient`` and ``domain`` without regard to case), from the position ``start_at``
    (a row's ``(received_at, id)``, inclusive) on. Rows come oldest first."""

    since: float | None = None
    until: float | None = None
    account: str | None = None
    recipient: str | None = None
    domain: str | None = None
    reason: str | None = None
    kind: str | None = None
    hard: bool | None = None
    start_at: tuple[float, int] | None = None


#: The exported record, the one definition of it: the download API's records and the web
#: hook events (:func:`export_record`) alike. (field name, SQL expression on the bounces
#: table); ``timestamp`` to the millisecond, ``envelope`` the sender the milter recorded
#: for the bounced message (else the one the bounce names).
EXPORT_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("time", "strftime('%Y-%m-%dT%H:%M:%SZ', received_at, 'unixepoch')"),
    ("timestamp", "round(received_at, 3)"),
    ("account", "account"),
    ("recipient", "recipient"),
    ("kind", "kind"),
    ("reason", "reason"),
    ("hard", "hard"),
    ("status", "status"),
    ("replycode", "replycode"),
    ("diagnostic", "diagnostic"),
    ("reporting_mta", "reporting_mta"),
    ("remote_mta", "remote_mta"),
    ("feedback_type", "feedback_type"),
    ("message_id", "original_message_id"),
    ("subject", "subject"),
    ("envelope", "coalesce(nullif((SELECT sender FROM messages WHERE message_key = bounces.message_key"
                 " AND bounces.message_key != ''), ''), envelope_sender)"),
    ("bounce_address", "bounce_address"),
    ("outcome", "outcome"),
)
#: One exported record as a JSON object, built by SQLite (its C encoder is several times
#: faster than a Python loop building dicts for ``json.dumps``).
_EXPORT_JSON = "json_object({})".format(", ".join(
    f"'{name}', " + ("json(iif(hard, 'true', 'false'))" if name == "hard" else expression)
    for name, expression in EXPORT_FIELDS))


def export_rows(conn: sqlite3.Connection, query: BounceQuery, limit: int | None = None) -> Iterator[tuple[object, ...]]:
    """The rows ``query`` selects (at most ``limit``) as tuples in :data:`EXPORT_FIELDS`
    order (``hard`` 0 or 1), read one by one as the caller iterates."""
    return _select(conn, query, [expression for _, expression in EXPORT_FIELDS], limit)


def export_json(conn: sqlite3.Connection, query: BounceQuery, limit: int | None = None) -> Iterator[str]:
    """The rows ``query`` selects (at most ``limit``), each one JSON object (the fields
    of :data:`EXPORT_FIELDS`, ``hard`` a boolean), read one by one as the caller iterates."""
    return (text for (text,) in _select(conn, query, [_EXPORT_JSON], limit))


def export_record(conn: sqlite3.Connection, bounce_id: int) -> dict[str, object] | None:
    """The exported record (as :func:`export_json` gives it) of the stored row
    ``bounce_id``, or ``None`` if there is none."""
    row = conn.execute(f"SELECT {_EXPORT_JSON} FROM bounces WHERE id = ?", (bounce_id,)).fetchone()
    return None if row is None else json.loads(row[0])


def position(conn: sqlite3.Connection, query: BounceQuery, offset: int) -> tuple[float, int] | None:
    """The ``(received_at, id)`` of the row ``offset`` rows past the first that ``query``
    selects (the start of the next page), or ``None`` if there are no more rows."""
    rows = _select(conn, query, ["received_at", "id"], 1, offset)
    found = next(rows, None)
    return None if found is None else (float(found[0]), int(found[1]))


def _select(conn: sqlite3.Connection, query: BounceQuery, columns: Sequence[str], limit: int | None = None,
            offset: int = 0) -> Iterator[tuple[object, ...]]:
    """A cursor over ``columns`` of the rows ``query`` selects, oldest first."""
    since = query.since
    start = None
    if query.start_at is not None:
        since = query.start_at[0] if since is None else max(since, query.start_at[0])
        start = query.start_at
    clauses, params = _conditions((
        ("received_at >= ?", since), ("received_at < ?", query.until), ("account = ?", query.account),
        ("recipient = ? COLLATE NOCASE", query.recipient),
        (f"{_TOP_EXPRESSIONS['domain']} = ?", None if query.domain is None else query.domain.lower()),
        ("reason = ?", query.reason), ("kind = ?", query.kind),
        ("hard = ?", None if query.hard is None else int(query.hard)),
    ))
    if start is not None:
        clauses.append("(received_at > ? OR id >= ?)")
        params += [start[0], start[1]]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    page = ""
    if limit is not None:
        page = " LIMIT ? OFFSET ?"
        params += [limit, offset]
    return conn.execute(f"SELECT {', '.join(columns)} FROM bounces{where} ORDER BY received_at, id{page}", params)


def bounce_source(conn: sqlite3.Connection, bounce_id: int) -> tuple[str, int | None] | None:
    """``(account, raw_id)`` of the stored row ``bounce_id``, or ``None`` if there is none."""
    row = conn.execute("SELECT account, raw_id FROM bounces WHERE id = ?", (bounce_id,)).fetchone()
    return None if row is None else (row[0], row[1])


# -- API tokens ----------------------------------------------------------------------------


class ApiToken(NamedTuple):
    """A stored API token: its public ``key_id``, the SHA-256 (hex) of the whole token,
    its account (``None`` for an admin token) and when it was made and revoked."""

    key_id: str
    sha256: str
    account: str | None
    created_at: float
    revoked_at: float | None = None
    note: str = ""


def add_token(conn: sqlite3.Connection, token: ApiToken) -> None:
    """Store a new token; ``sqlite3.IntegrityError`` if its key id is taken."""
    conn.execute(
        "INSERT INTO api_tokens (key_id, sha256, account, note, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
        (token.key_id, token.sha256, token.account, token.note, token.created_at, token.revoked_at),
    )


def api_token(conn: sqlite3.Connection, key_id: str) -> ApiToken | None:
    """The token with this key id (revoked or not), or ``None``."""
    rows = _tokens(conn, " WHERE key_id = ?", (key_id,))
    return rows[0] if rows else None


def api_tokens(conn: sqlite3.Connection) -> list[ApiToken]:
    """Every stored token, oldest first."""
    return _tokens(conn, "", ())


def _tokens(conn: sqlite3.Connection, where: str, params: Sequence[object]) -> list[ApiToken]:
    """The tokens that ``where`` (a WHERE clause or nothing) selects, oldest first."""
    rows = conn.execute(
        f"SELECT key_id, sha256, account, created_at, revoked_at, note FROM api_tokens{where} ORDER BY id", params)
    return [ApiToken(*row) for row in rows]


def revoke_token(conn: sqlite3.Connection, key_id: str, at: float) -> bool:
    """Mark the token revoked at ``at``; ``False`` if there is no such token not yet revoked."""
    cursor = conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id))
    return cursor.rowcount == 1
